using System.Collections.Concurrent;
using System.Text.Json;
using Dapr.AppCallback.Autogen.Grpc.v1;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Grpc.AspNetCore.Server.Model;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Autogen = Dapr.Client.Autogen.Grpc.v1;

namespace SharedRuntime.SdkTests.GrpcApps;

/// <summary>
/// A real gRPC app on 127.0.0.1 (Kestrel, HTTP/2 without TLS): Dapr's AppCallback and AppCallbackHealthCheck services
/// from Dapr.Protos, and a test service <c>sharedruntime.test.Echo</c> with unary, server, client and duplex streaming
/// methods, plus methods that hang until their call is cancelled. What it was called with is recorded.
/// </summary>
public sealed class GrpcTestApp : IAsyncDisposable
{
    private readonly WebApplication _app;

    private GrpcTestApp(WebApplication app, Uri address, AppState state)
    {
        _app = app;
        Address = address;
        State = state;
    }

    public Uri Address { get; }

    public AppState State { get; }

    public static async Task<GrpcTestApp> StartAsync(string name)
    {
        for (var attempt = 1; ; attempt++)
        {
            var state = new AppState(name);
            var builder = TestHost.CreateSlimBuilder();
            builder.Logging.ClearProviders();
            var port = TestRuntime.FreePorts(1)[0];
            builder.WebHost.ConfigureKestrel(k => k.Listen(System.Net.IPAddress.Loopback, port, l => l.Protocols = HttpProtocols.Http2));
            builder.Services.AddGrpc();
            builder.Services.AddSingleton(state);
            var app = builder.Build();
            app.MapGrpcService<Callback>();
            app.MapGrpcService<Health>();
            app.MapGrpcService<EchoService>();
            try
            {
                await app.StartAsync();
                return new GrpcTestApp(app, new Uri($"http://127.0.0.1:{port}"), state);
            }
            catch (IOException) when (attempt < 5)
            {
                await app.DisposeAsync();
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        State.ReleaseHung();
        using (var stop = new CancellationTokenSource(TimeSpan.FromSeconds(5))) { await _app.StopAsync(stop.Token); }
        await _app.DisposeAsync();
    }

    /// <summary>What the app was asked and what it answers.</summary>
    public sealed class AppState(string name)
    {
        private TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public string Name { get; } = name;
        public ConcurrentQueue<(Autogen.InvokeRequest Request, Metadata Headers)> Invocations { get; } = new();
        public ConcurrentQueue<TopicEventRequest> Events { get; } = new();
        public ConcurrentQueue<TopicEventBulkRequest> Batches { get; } = new();
        public ConcurrentQueue<Metadata> EchoHeaders { get; } = new();
        public List<TopicSubscription> Subscriptions { get; } = [];

        /// <summary>How the app answers each event, in turn; SUCCESS once they are used up.</summary>
        public ConcurrentQueue<TopicEventResponse.Types.TopicEventResponseStatus> EventAnswers { get; } = new();

        /// <summary>Calls that hang until cancelled (or released), and how many saw their cancellation.</summary>
        public int Hanging;
        public int CancelledSeen;
        public TaskCompletionSource CancelSeen { get; private set; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public async Task HangAsync(CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref Hanging);
            try
            {
                await _release.Task.WaitAsync(cancellationToken);
            }
            catch (OperationCanceledException)
            {
                Interlocked.Increment(ref CancelledSeen);
                CancelSeen.TrySetResult();
                throw;
            }
            finally
            {
                Interlocked.Decrement(ref Hanging);
            }
        }

        public void ReleaseHung() => _release.TrySetResult();

        /// <summary>Whether AppCallbackHealthCheck/HealthCheck fails (UNAVAILABLE), and how often it was called.</summary>
        public volatile bool Unhealthy;
        public int HealthChecks;
    }

    private sealed class Callback(AppState state) : AppCallback.AppCallbackBase
    {
        public override async Task<Autogen.InvokeResponse> OnInvoke(Autogen.InvokeRequest request, ServerCallContext context)
        {
            state.Invocations.Enqueue((request, context.RequestHeaders));
            switch (request.Method)
            {
                case "hang":
                    await state.HangAsync(context.CancellationToken);
                    break;
                case "missing":
                    throw new RpcException(new Status(StatusCode.NotFound, "no such order"));
                case "crash":
                    throw new RpcException(new Status(StatusCode.Internal, "the app broke"));
            }
            var echo = JsonSerializer.Serialize(new
            {
                app = state.Name,
                method = request.Method,
                verb = request.HttpExtension?.Verb.ToString() ?? "",
                query = request.HttpExtension?.Querystring ?? "",
                contentType = request.ContentType,
                caller = context.RequestHeaders.GetValue("dapr-caller-app-id") ?? "",
                body = request.Data?.Value.ToStringUtf8() ?? "",
            });
            return new Autogen.InvokeResponse { ContentType = "application/json", Data = new Any { Value = ByteString.CopyFromUtf8(echo) } };
        }

        public override Task<TopicEventResponse> OnTopicEvent(TopicEventRequest request, ServerCallContext context)
        {
            state.Events.Enqueue(request);
            var status = state.EventAnswers.TryDequeue(out var next) ? next : TopicEventResponse.Types.TopicEventResponseStatus.Success;
            return Task.FromResult(new TopicEventResponse { Status = status });
        }

        public override Task<TopicEventBulkResponse> OnBulkTopicEvent(TopicEventBulkRequest request, ServerCallContext context)
        {
            state.Batches.Enqueue(request);
            var response = new TopicEventBulkResponse();
            response.Statuses.AddRange(request.Entries.Select(e => new TopicEventBulkResponseEntry
            {
                EntryId = e.EntryId,
                Status = TopicEventResponse.Types.TopicEventResponseStatus.Success,
            }));
            return Task.FromResult(response);
        }

        public override Task<ListTopicSubscriptionsResponse> ListTopicSubscriptions(Empty request, ServerCallContext context)
        {
            var response = new ListTopicSubscriptionsResponse();
            lock (state.Subscriptions)
            {
                response.Subscriptions.AddRange(state.Subscriptions);
            }
            return Task.FromResult(response);
        }
    }

    private sealed class Health(AppState state) : AppCallbackHealthCheck.AppCallbackHealthCheckBase
    {
        public override Task<HealthCheckResponse> HealthCheck(Empty request, ServerCallContext context)
        {
            Interlocked.Increment(ref state.HealthChecks);
            return state.Unhealthy
                ? throw new RpcException(new Status(StatusCode.Unavailable, "the app is not ready"))
                : Task.FromResult(new HealthCheckResponse());
        }
    }
}

/// <summary>The test service's methods, over well-known message types.</summary>
public static class Echo
{
    public const string Service = "sharedruntime.test.Echo";

    private static readonly Marshaller<StringValue> Text = Marshallers.Create(m => m.ToByteArray(), StringValue.Parser.ParseFrom);

    public static readonly Method<StringValue, StringValue> Say = new(MethodType.Unary, Service, "Say", Text, Text);
    public static readonly Method<StringValue, StringValue> Hang = new(MethodType.Unary, Service, "Hang", Text, Text);
    public static readonly Method<StringValue, StringValue> Count = new(MethodType.ServerStreaming, Service, "Count", Text, Text);
    public static readonly Method<StringValue, StringValue> Join = new(MethodType.ClientStreaming, Service, "Join", Text, Text);
    public static readonly Method<StringValue, StringValue> Chat = new(MethodType.DuplexStreaming, Service, "Chat", Text, Text);
}

/// <summary>Bound by hand, as generated code would: gRPC finds each handler as a virtual method of this class.</summary>
[BindServiceMethod(typeof(EchoService), nameof(BindService))]
public class EchoService(GrpcTestApp.AppState state)
{
    public static void BindService(ServiceBinderBase binder, EchoService? service)
    {
        binder.AddMethod(Echo.Say, (UnaryServerMethod<StringValue, StringValue>)null!);
        binder.AddMethod(Echo.Hang, (UnaryServerMethod<StringValue, StringValue>)null!);
        binder.AddMethod(Echo.Count, (ServerStreamingServerMethod<StringValue, StringValue>)null!);
        binder.AddMethod(Echo.Join, (ClientStreamingServerMethod<StringValue, StringValue>)null!);
        binder.AddMethod(Echo.Chat, (DuplexStreamingServerMethod<StringValue, StringValue>)null!);
    }

    public virtual Task<StringValue> Say(StringValue request, ServerCallContext context)
    {
        state.EchoHeaders.Enqueue(context.RequestHeaders);
        return Task.FromResult(new StringValue { Value = $"{state.Name}:{request.Value}:{context.RequestHeaders.GetValue("dapr-caller-app-id")}" });
    }

    public virtual async Task<StringValue> Hang(StringValue request, ServerCallContext context)
    {
        await state.HangAsync(context.CancellationToken);
        return request;
    }

    public virtual async Task Count(StringValue request, IServerStreamWriter<StringValue> responses, ServerCallContext context)
    {
        for (var i = 1; i <= int.Parse(request.Value, System.Globalization.CultureInfo.InvariantCulture); i++)
        {
            await responses.WriteAsync(new StringValue { Value = i.ToString(System.Globalization.CultureInfo.InvariantCulture) });
        }
    }

    public virtual async Task<StringValue> Join(IAsyncStreamReader<StringValue> requests, ServerCallContext context)
    {
        var parts = new List<string>();
        await foreach (var part in requests.ReadAllAsync(context.CancellationToken))
        {
            parts.Add(part.Value);
        }
        return new StringValue { Value = string.Join(",", parts) };
    }

    /// <summary>Answers every message as it comes: a caller waits for each answer before it sends the next.</summary>
    public virtual async Task Chat(IAsyncStreamReader<StringValue> requests, IServerStreamWriter<StringValue> responses, ServerCallContext context)
    {
        await foreach (var message in requests.ReadAllAsync(context.CancellationToken))
        {
            await responses.WriteAsync(new StringValue { Value = "re:" + message.Value });
        }
    }
}
