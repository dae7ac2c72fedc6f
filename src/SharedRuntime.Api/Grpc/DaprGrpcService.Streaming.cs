using Google.Protobuf;
using Grpc.Core;
using SharedRuntime.AppChannel;
using SharedRuntime.BuildingBlocks;
using SharedRuntime.Components;
using AppCallback = Dapr.AppCallback.Autogen.Grpc.v1;
using Autogen = Dapr.Client.Autogen.Grpc.v1;

namespace SharedRuntime.Grpc;

/// <summary>Streaming subscriptions: <c>SubscribeTopicEventsAlpha1</c> over <see cref="StreamingSubscriptions"/>.</summary>
internal sealed partial class DaprGrpcService
{
    public async Task SubscribeTopicEventsAlpha1(IAsyncStreamReader<Autogen.SubscribeTopicEventsRequestAlpha1> requests,
        IServerStreamWriter<Autogen.SubscribeTopicEventsResponseAlpha1> responses, ServerCallContext context)
    {
        var tenant = Tenant(context);
        var token = context.CancellationToken;
        if (!await requests.MoveNext(token) || requests.Current.InitialRequest is not { } initial)
        {
            throw Errors.Malformed("the first message of a streaming subscription must be its initial request");
        }
        var writing = new SemaphoreSlim(1, 1);
        async Task SendAsync(Autogen.SubscribeTopicEventsResponseAlpha1 response, CancellationToken cancellationToken)
        {
            await writing.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                await responses.WriteAsync(response, cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                writing.Release();
            }
        }
        // The initial response goes first: an event the broker hands over while the stream opens waits for it.
        var opened = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        async Task SendEventAsync(Autogen.SubscribeTopicEventsResponseAlpha1 response, CancellationToken cancellationToken)
        {
            await opened.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
            await SendAsync(response, cancellationToken).ConfigureAwait(false);
        }
        await using var subscription = await streams.OpenAsync(tenant, initial.PubsubName, initial.Topic, initial.HasDeadLetterTopic ? initial.DeadLetterTopic : null,
            (streamed, cancellationToken) => SendEventAsync(new Autogen.SubscribeTopicEventsResponseAlpha1
            {
                EventMessage = new AppCallback.TopicEventRequest
                {
                    Id = streamed.Id,
                    Source = streamed.Source,
                    Type = streamed.Type,
                    SpecVersion = streamed.SpecVersion,
                    DataContentType = streamed.DataContentType,
                    Data = UnsafeByteOperations.UnsafeWrap(streamed.Data),
                    Topic = streamed.Topic,
                    PubsubName = streamed.PubsubName,
                },
            }, cancellationToken), token);
        await SendAsync(new Autogen.SubscribeTopicEventsResponseAlpha1 { InitialResponse = new Autogen.SubscribeTopicEventsResponseInitialAlpha1() }, token);
        opened.SetResult();
        try
        {
            while (await requests.MoveNext(token))
            {
                if (requests.Current.EventProcessed is { } processed)
                {
                    subscription.Answer(processed.Id, processed.Status?.Status switch
                    {
                        AppCallback.TopicEventResponse.Types.TopicEventResponseStatus.Success => DeliveryOutcome.Success,
                        AppCallback.TopicEventResponse.Types.TopicEventResponseStatus.Drop => DeliveryOutcome.Drop,
                        _ => DeliveryOutcome.Retry,
                    });
                }
            }
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
            // The app went away: what it did not answer goes back to the broker.
        }
    }
}
