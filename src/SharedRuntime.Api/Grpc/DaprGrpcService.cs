using Google.Protobuf;
using Grpc.AspNetCore.Server;
using Grpc.AspNetCore.Server.Model;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using SharedRuntime.AppChannel;
using SharedRuntime.BuildingBlocks;
using SharedRuntime.Components;
using SharedRuntime.Diagnostics;
using SharedRuntime.Http;
using SharedRuntime.Tenancy;
using Autogen = Dapr.Client.Autogen.Grpc.v1;
using Empty = Google.Protobuf.WellKnownTypes.Empty;

namespace SharedRuntime.Grpc;

/// <summary>
/// The Dapr gRPC API for the calling tenant. Tenant resolution and admission happened before (the same middleware as
/// HTTP); every method calls the same building blocks as the HTTP API. One instance serves every call: it holds only
/// the building blocks, which are singletons.
/// </summary>
internal partial class DaprGrpcService(StateApi state, PublishApi publish, BindingApi bindings, SecretApi secrets, MetadataApi metadata, ConfigurationApi configurationApi, LockApi locks, ServiceInvocation invocation, StreamingSubscriptions streams, ILogger<DaprGrpcService> logger)
{
    private static readonly Empty None = new();

    /// <summary>No endpoint metadata of the service's own: the route builder adds the method's.</summary>
    private static readonly IList<object> NoMetadata = [];

    /// <summary>The Dapr service descriptor; gRPC reflection lists the service from it.</summary>
    public static Google.Protobuf.Reflection.ServiceDescriptor Descriptor => Autogen.Dapr.Descriptor;

    /// <summary>
    /// Adds the methods below to the Dapr service's routes, each as a direct call on the service instance. gRPC's own
    /// binder would find each method by reflection and, in the native executable, build its generic handler types at
    /// start-up (about a fifth of the start-up time); here they are known to the compiler.
    /// </summary>
    public static void BindService(ServiceMethodProviderContext<DaprGrpcService> context)
    {
        context.AddUnaryMethod(DaprServiceBinder.Unary("GetState", Autogen.GetStateRequest.Parser, Autogen.GetStateResponse.Parser), NoMetadata, static (service, request, call) => service.GetState(request, call));
        context.AddUnaryMethod(DaprServiceBinder.Unary("GetBulkState", Autogen.GetBulkStateRequest.Parser, Autogen.GetBulkStateResponse.Parser), NoMetadata, static (service, request, call) => service.GetBulkState(request, call));
        context.AddUnaryMethod(DaprServiceBinder.Unary("SaveState", Autogen.SaveStateRequest.Parser, Google.Protobuf.WellKnownTypes.Empty.Parser), NoMetadata, static (service, request, call) => service.SaveState(request, call));
        context.AddUnaryMethod(DaprServiceBinder.Unary("DeleteState", Autogen.DeleteStateRequest.Parser, Google.Protobuf.WellKnownTypes.Empty.Parser), NoMetadata, static (service, request, call) => service.DeleteState(request, call));
        context.AddUnaryMethod(DaprServiceBinder.Unary("DeleteBulkState", Autogen.DeleteBulkStateRequest.Parser, Google.Protobuf.WellKnownTypes.Empty.Parser), NoMetadata, static (service, request, call) => service.DeleteBulkState(request, call));
        context.AddUnaryMethod(DaprServiceBinder.Unary("ExecuteStateTransaction", Autogen.ExecuteStateTransactionRequest.Parser, Google.Protobuf.WellKnownTypes.Empty.Parser), NoMetadata, static (service, request, call) => service.ExecuteStateTransaction(request, call));
        context.AddUnaryMethod(DaprServiceBinder.Unary("PublishEvent", Autogen.PublishEventRequest.Parser, Google.Protobuf.WellKnownTypes.Empty.Parser), NoMetadata, static (service, request, call) => service.PublishEvent(request, call));
        context.AddUnaryMethod(DaprServiceBinder.Unary("BulkPublishEvent", Autogen.BulkPublishRequest.Parser, Autogen.BulkPublishResponse.Parser), NoMetadata, static (service, request, call) => service.BulkPublishEvent(request, call));
        context.AddUnaryMethod(DaprServiceBinder.Unary("BulkPublishEventAlpha1", Autogen.BulkPublishRequest.Parser, Autogen.BulkPublishResponse.Parser), NoMetadata, static (service, request, call) => service.BulkPublishEventAlpha1(request, call));
        context.AddUnaryMethod(DaprServiceBinder.Unary("InvokeBinding", Autogen.InvokeBindingRequest.Parser, Autogen.InvokeBindingResponse.Parser), NoMetadata, static (service, request, call) => service.InvokeBinding(request, call));
        context.AddUnaryMethod(DaprServiceBinder.Unary("GetSecret", Autogen.GetSecretRequest.Parser, Autogen.GetSecretResponse.Parser), NoMetadata, static (service, request, call) => service.GetSecret(request, call));
        context.AddUnaryMethod(DaprServiceBinder.Unary("GetBulkSecret", Autogen.GetBulkSecretRequest.Parser, Autogen.GetBulkSecretResponse.Parser), NoMetadata, static (service, request, call) => service.GetBulkSecret(request, call));
        context.AddUnaryMethod(DaprServiceBinder.Unary("GetMetadata", Autogen.GetMetadataRequest.Parser, Autogen.GetMetadataResponse.Parser), NoMetadata, static (service, request, call) => service.GetMetadata(request, call));
        context.AddUnaryMethod(DaprServiceBinder.Unary("SetMetadata", Autogen.SetMetadataRequest.Parser, Google.Protobuf.WellKnownTypes.Empty.Parser), NoMetadata, static (service, request, call) => service.SetMetadata(request, call));
        context.AddUnaryMethod(DaprServiceBinder.Unary("GetConfiguration", Autogen.GetConfigurationRequest.Parser, Autogen.GetConfigurationResponse.Parser), NoMetadata, static (service, request, call) => service.GetConfiguration(request, call));
        context.AddUnaryMethod(DaprServiceBinder.Unary("GetConfigurationAlpha1", Autogen.GetConfigurationRequest.Parser, Autogen.GetConfigurationResponse.Parser), NoMetadata, static (service, request, call) => service.GetConfigurationAlpha1(request, call));
        context.AddServerStreamingMethod(DaprServiceBinder.ServerStreaming("SubscribeConfiguration", Autogen.SubscribeConfigurationRequest.Parser, Autogen.SubscribeConfigurationResponse.Parser), NoMetadata, static (service, request, responses, call) => service.SubscribeConfiguration(request, responses, call));
        context.AddServerStreamingMethod(DaprServiceBinder.ServerStreaming("SubscribeConfigurationAlpha1", Autogen.SubscribeConfigurationRequest.Parser, Autogen.SubscribeConfigurationResponse.Parser), NoMetadata, static (service, request, responses, call) => service.SubscribeConfigurationAlpha1(request, responses, call));
        context.AddUnaryMethod(DaprServiceBinder.Unary("UnsubscribeConfiguration", Autogen.UnsubscribeConfigurationRequest.Parser, Autogen.UnsubscribeConfigurationResponse.Parser), NoMetadata, static (service, request, call) => service.UnsubscribeConfiguration(request, call));
        context.AddUnaryMethod(DaprServiceBinder.Unary("UnsubscribeConfigurationAlpha1", Autogen.UnsubscribeConfigurationRequest.Parser, Autogen.UnsubscribeConfigurationResponse.Parser), NoMetadata, static (service, request, call) => service.UnsubscribeConfigurationAlpha1(request, call));
        context.AddUnaryMethod(DaprServiceBinder.Unary("TryLockAlpha1", Autogen.TryLockRequest.Parser, Autogen.TryLockResponse.Parser), NoMetadata, static (service, request, call) => service.TryLockAlpha1(request, call));
        context.AddUnaryMethod(DaprServiceBinder.Unary("UnlockAlpha1", Autogen.UnlockRequest.Parser, Autogen.UnlockResponse.Parser), NoMetadata, static (service, request, call) => service.UnlockAlpha1(request, call));
        context.AddUnaryMethod(DaprServiceBinder.Unary("InvokeService", Autogen.InvokeServiceRequest.Parser, Dapr.Client.Autogen.Grpc.v1.InvokeResponse.Parser), NoMetadata, static (service, request, call) => service.InvokeService(request, call));
        context.AddDuplexStreamingMethod(DaprServiceBinder.DuplexStreaming("SubscribeTopicEventsAlpha1", Autogen.SubscribeTopicEventsRequestAlpha1.Parser, Autogen.SubscribeTopicEventsResponseAlpha1.Parser), NoMetadata, static (service, requests, responses, call) => service.SubscribeTopicEventsAlpha1(requests, responses, call));
        context.AddUnaryMethod(DaprServiceBinder.Unary("Shutdown", Autogen.ShutdownRequest.Parser, Google.Protobuf.WellKnownTypes.Empty.Parser), NoMetadata, static (service, request, call) => service.Shutdown(request, call));
    }

    private static TenantContext Tenant(ServerCallContext context) =>
        context.GetHttpContext().Features.Get<TenantContext>() ?? throw new DaprApiException(401, "ERR_TENANT_UNAUTHENTICATED", "no tenant");

    /// <summary>
    /// The call's metadata. Its binary (<c>-bin</c>) values are decoded from base64 on first use, and a value that is
    /// not base64 (or two values of one key, joined) is the caller's error, not the handler's.
    /// </summary>
    private static Metadata RequestHeaders(ServerCallContext context)
    {
        try
        {
            return context.RequestHeaders;
        }
        catch (FormatException ex)
        {
            throw Errors.Malformed($"a binary (-bin) metadata value is not valid base64: {ex.Message}");
        }
    }

    private static Dictionary<string, string> Map(IDictionary<string, string> map) => new(map, StringComparer.Ordinal);

    // ---- state

    public virtual async Task<Autogen.GetStateResponse> GetState(Autogen.GetStateRequest request, ServerCallContext context)
    {
        var entry = await state.GetAsync(Tenant(context), request.StoreName, request.Key, context.CancellationToken);
        var response = new Autogen.GetStateResponse();
        if (entry is not null)
        {
            // Stored values are never changed in place: the answer refers to the value instead of copying it.
            response.Data = UnsafeByteOperations.UnsafeWrap(entry.Value);
            response.Etag = entry.ETag;
        }
        return response;
    }

    public virtual async Task<Autogen.GetBulkStateResponse> GetBulkState(Autogen.GetBulkStateRequest request, ServerCallContext context)
    {
        var items = await state.GetBulkAsync(Tenant(context), request.StoreName, request.Keys, request.Parallelism,
            context.GetHttpContext().Memory(), context.CancellationToken);
        var response = new Autogen.GetBulkStateResponse();
        foreach (var item in items)
        {
            var bulk = new Autogen.BulkStateItem { Key = item.Key, Error = item.Error ?? "" };
            if (item.Entry is { } entry)
            {
                bulk.Data = UnsafeByteOperations.UnsafeWrap(entry.Value);
                bulk.Etag = entry.ETag;
            }
            response.Items.Add(bulk);
        }
        return response;
    }

    private static StateConcurrency Concurrency(Autogen.StateOptions? options) => options?.Concurrency switch
    {
        Autogen.StateOptions.Types.StateConcurrency.ConcurrencyFirstWrite => StateConcurrency.FirstWrite,
        Autogen.StateOptions.Types.StateConcurrency.ConcurrencyLastWrite => StateConcurrency.LastWrite,
        _ => StateConcurrency.Unspecified,
    };

    private static StateSaveItem ToItem(Autogen.StateItem item) =>
        new(item.Key, item.Value.Memory, item.Etag?.Value, Concurrency(item.Options), Map(item.Metadata), item.Metadata.GetValueOrDefault("contentType"));

    public virtual async Task<Empty> SaveState(Autogen.SaveStateRequest request, ServerCallContext context)
    {
        await state.SaveAsync(Tenant(context), request.StoreName, request.States.Select(ToItem).ToList(), context.CancellationToken);
        return None;
    }

    public virtual async Task<Empty> DeleteState(Autogen.DeleteStateRequest request, ServerCallContext context)
    {
        await state.DeleteAsync(Tenant(context), request.StoreName, request.Key, request.Etag?.Value, Concurrency(request.Options), context.CancellationToken);
        return None;
    }

    public virtual async Task<Empty> DeleteBulkState(Autogen.DeleteBulkStateRequest request, ServerCallContext context)
    {
        var tenant = Tenant(context);
        foreach (var item in request.States)
        {
            await state.DeleteAsync(tenant, request.StoreName, item.Key, item.Etag?.Value, Concurrency(item.Options), context.CancellationToken);
        }
        return None;
    }

    public virtual async Task<Empty> ExecuteStateTransaction(Autogen.ExecuteStateTransactionRequest request, ServerCallContext context)
    {
        var operations = request.Operations.Select(o => StateTransactionItem.Of(o.OperationType, o.Request is null ? null : ToItem(o.Request))).ToList();
        await state.TransactAsync(Tenant(context), request.StoreName, operations, context.CancellationToken);
        return None;
    }

    // ---- publish

    public virtual async Task<Empty> PublishEvent(Autogen.PublishEventRequest request, ServerCallContext context)
    {
        var headers = RequestHeaders(context);
        await publish.PublishAsync(Tenant(context), new PublishRequest(request.PubsubName, request.Topic, request.Data.Memory,
            string.IsNullOrEmpty(request.DataContentType) ? null : request.DataContentType, Map(request.Metadata),
            headers.GetValue("traceparent"), headers.GetValue("tracestate")), context.CancellationToken);
        return None;
    }

    public virtual async Task<Autogen.BulkPublishResponse> BulkPublishEvent(Autogen.BulkPublishRequest request, ServerCallContext context)
    {
        var entries = request.Entries
            .Select(e => new BulkPublishEntry(e.EntryId, e.Event.Memory, string.IsNullOrEmpty(e.ContentType) ? null : e.ContentType, e.Metadata))
            .ToList();
        var failed = await publish.BulkPublishAsync(Tenant(context), request.PubsubName, request.Topic, entries, Map(request.Metadata), context.CancellationToken);
        var response = new Autogen.BulkPublishResponse();
        foreach (var (entryId, error) in failed)
        {
            response.FailedEntries.Add(new Autogen.BulkPublishResponseFailedEntry { EntryId = entryId, Error = error });
        }
        return response;
    }

    public virtual Task<Autogen.BulkPublishResponse> BulkPublishEventAlpha1(Autogen.BulkPublishRequest request, ServerCallContext context) => BulkPublishEvent(request, context);

    // ---- bindings, secrets, metadata

    public virtual async Task<Autogen.InvokeBindingResponse> InvokeBinding(Autogen.InvokeBindingRequest request, ServerCallContext context)
    {
        var result = await bindings.InvokeAsync(Tenant(context), request.Name, new BindingRequest(request.Operation, request.Data.Memory, Map(request.Metadata)), context.CancellationToken);
        var response = new Autogen.InvokeBindingResponse { Data = ByteString.CopyFrom(result.Data.Span) };
        response.Metadata.Add(result.Metadata.ToDictionary());
        return response;
    }

    public virtual async Task<Autogen.GetSecretResponse> GetSecret(Autogen.GetSecretRequest request, ServerCallContext context)
    {
        var secret = await secrets.GetAsync(Tenant(context), request.StoreName, request.Key, Map(request.Metadata), context.CancellationToken);
        var response = new Autogen.GetSecretResponse();
        response.Data.Add(secret.ToDictionary());
        return response;
    }

    public virtual async Task<Autogen.GetBulkSecretResponse> GetBulkSecret(Autogen.GetBulkSecretRequest request, ServerCallContext context)
    {
        var all = await secrets.GetBulkAsync(Tenant(context), request.StoreName, Map(request.Metadata), context.CancellationToken);
        var response = new Autogen.GetBulkSecretResponse();
        foreach (var (name, values) in all)
        {
            var secret = new Autogen.SecretResponse();
            secret.Secrets.Add(values.ToDictionary());
            response.Data.Add(name, secret);
        }
        return response;
    }

    public virtual Task<Autogen.GetMetadataResponse> GetMetadata(Autogen.GetMetadataRequest request, ServerCallContext context)
    {
        var view = metadata.Describe(Tenant(context));
        var response = new Autogen.GetMetadataResponse { Id = view.AppId, RuntimeVersion = MetadataApi.RuntimeVersion };
        foreach (var component in view.Components)
        {
            var registered = new Autogen.RegisteredComponents { Name = component.Name, Type = component.Type, Version = component.Version };
            registered.Capabilities.Add(component.Capabilities);
            response.RegisteredComponents.Add(registered);
        }
        response.ExtendedMetadata.Add(view.Extended.ToDictionary());
        foreach (var subscription in view.Subscriptions)
        {
            var item = new Autogen.PubsubSubscription { PubsubName = subscription.PubsubName, Topic = subscription.Topic, DeadLetterTopic = subscription.DeadLetterTopic ?? "", Rules = new Autogen.PubsubSubscriptionRules() };
            item.Metadata.Add(subscription.Metadata.ToDictionary());
            item.Rules.Rules.Add(subscription.Routes.Rules.Select(r => new Autogen.PubsubSubscriptionRule { Match = r.Match, Path = r.Path }));
            if (subscription.Routes.Default is { } fallback)
            {
                item.Rules.Rules.Add(new Autogen.PubsubSubscriptionRule { Match = "", Path = fallback });
            }
            response.Subscriptions.Add(item);
        }
        return Task.FromResult(response);
    }

    public virtual Task<Empty> SetMetadata(Autogen.SetMetadataRequest request, ServerCallContext context)
    {
        MetadataApi.Set(Tenant(context), request.Key, request.Value);
        return Task.FromResult(None);
    }

    // ---- configuration and lock

    public virtual async Task<Autogen.GetConfigurationResponse> GetConfiguration(Autogen.GetConfigurationRequest request, ServerCallContext context)
    {
        var items = await configurationApi.GetAsync(Tenant(context), request.StoreName, request.Keys, context.CancellationToken);
        var response = new Autogen.GetConfigurationResponse();
        foreach (var (key, item) in items)
        {
            response.Items.Add(key, ToItem(item));
        }
        return response;
    }

    public virtual Task<Autogen.GetConfigurationResponse> GetConfigurationAlpha1(Autogen.GetConfigurationRequest request, ServerCallContext context) => GetConfiguration(request, context);

    private static Autogen.ConfigurationItem ToItem(ConfigurationItem item)
    {
        var result = new Autogen.ConfigurationItem { Value = item.Value, Version = item.Version };
        result.Metadata.Add(item.Metadata.ToDictionary());
        return result;
    }

    /// <summary>
    /// The first message carries the subscription id and the current items (Dapr sends the id alone; SDKs read both);
    /// every later message carries the items that changed since the one before. The stream ends when the app
    /// unsubscribes, goes away, or no longer sees the store.
    /// </summary>
    public virtual async Task SubscribeConfiguration(Autogen.SubscribeConfigurationRequest request, IServerStreamWriter<Autogen.SubscribeConfigurationResponse> stream, ServerCallContext context)
    {
        var tenant = Tenant(context);
        await using var subscription = await configurationApi.SubscribeAsync(tenant, request.StoreName, request.Keys, context.CancellationToken);
        var items = await configurationApi.GetAsync(tenant, request.StoreName, request.Keys, context.CancellationToken);
        var first = new Autogen.SubscribeConfigurationResponse { Id = subscription.Id };
        foreach (var (key, item) in items)
        {
            first.Items.Add(key, ToItem(item));
        }
        await stream.WriteAsync(first, context.CancellationToken);
        try
        {
            while (await subscription.NextAsync(context.CancellationToken) is { } changed)
            {
                var update = new Autogen.SubscribeConfigurationResponse { Id = subscription.Id };
                foreach (var (key, item) in changed)
                {
                    update.Items.Add(key, ToItem(item));
                }
                await stream.WriteAsync(update, context.CancellationToken);
            }
        }
        catch (OperationCanceledException) when (context.CancellationToken.IsCancellationRequested)
        {
            // The app went away.
        }
    }

    public virtual Task SubscribeConfigurationAlpha1(Autogen.SubscribeConfigurationRequest request, IServerStreamWriter<Autogen.SubscribeConfigurationResponse> stream, ServerCallContext context) =>
        SubscribeConfiguration(request, stream, context);

    public virtual Task<Autogen.UnsubscribeConfigurationResponse> UnsubscribeConfiguration(Autogen.UnsubscribeConfigurationRequest request, ServerCallContext context)
    {
        var ok = configurationApi.Unsubscribe(Tenant(context).AppId, string.IsNullOrEmpty(request.StoreName) ? null : request.StoreName, request.Id);
        return Task.FromResult(new Autogen.UnsubscribeConfigurationResponse { Ok = ok, Message = ok ? "" : $"subscription {request.Id} not found" });
    }

    public virtual Task<Autogen.UnsubscribeConfigurationResponse> UnsubscribeConfigurationAlpha1(Autogen.UnsubscribeConfigurationRequest request, ServerCallContext context) =>
        UnsubscribeConfiguration(request, context);

    public virtual async Task<Autogen.TryLockResponse> TryLockAlpha1(Autogen.TryLockRequest request, ServerCallContext context) =>
        new() { Success = await locks.TryLockAsync(Tenant(context), request.StoreName, request.ResourceId, request.LockOwner, request.ExpiryInSeconds, context.CancellationToken) };

    public virtual async Task<Autogen.UnlockResponse> UnlockAlpha1(Autogen.UnlockRequest request, ServerCallContext context) =>
        new() { Status = (Autogen.UnlockResponse.Types.Status)(int)await locks.UnlockAsync(Tenant(context), request.StoreName, request.ResourceId, request.LockOwner, context.CancellationToken) };

    public virtual Task<Empty> Shutdown(Autogen.ShutdownRequest request, ServerCallContext context)
    {
        ApiLog.ShutdownIgnored(logger, Tenant(context).AppId);
        return Task.FromResult(None);
    }
}
