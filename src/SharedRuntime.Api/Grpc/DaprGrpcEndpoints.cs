using Grpc.AspNetCore.Server;
using Grpc.AspNetCore.Server.Model;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using SharedRuntime.Http;

namespace SharedRuntime.Grpc;

internal static class DaprGrpcEndpoints
{
    public static IServiceCollection AddDaprGrpc(this IServiceCollection services)
    {
        // One service and one interceptor serve every call: gRPC takes them from the container instead of making them per call.
        services.AddSingleton<DaprGrpcService>();
        services.AddSingleton<DaprErrorInterceptor>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IServiceMethodProvider<DaprGrpcService>, DaprGrpcMethodProvider>());
        services.AddGrpc(options =>
        {
            options.Interceptors.Add<DaprErrorInterceptor>();
            options.MaxReceiveMessageSize = 16 * 1024 * 1024;
            options.IgnoreUnknownServices = true; // left to the proxy, which answers UNIMPLEMENTED without dapr-app-id
        });
        services.AddGrpcHealthChecks().AddCheck<RuntimeReadinessCheck>("runtime");
        return services;
    }

    /// <summary>The Dapr service (tenant methods), the gRPC health service (no token needed) and the proxy to apps, on the gRPC port only.</summary>
    public static IEndpointRouteBuilder MapDaprGrpc(this IEndpointRouteBuilder endpoints)
    {
        endpoints.MapGrpcService<DaprGrpcService>().Add(builder =>
        {
            var method = builder.Metadata.OfType<GrpcMethodMetadata>().FirstOrDefault()?.Method.Name ?? "";
            builder.Metadata.Add(new ApiEndpointMetadata(Listener.DaprGrpc, DaprServiceBinder.ApiOf(method)));
        });
        endpoints.MapGrpcHealthChecksService().WithMetadata(new ApiEndpointMetadata(Listener.DaprGrpc, "healthz", Anonymous: true));
        endpoints.MapGrpcProxy();
        return endpoints;
    }
}

/// <summary>Binds the Dapr service's methods without reflection (<see cref="DaprGrpcService.BindService"/>).</summary>
internal sealed class DaprGrpcMethodProvider : IServiceMethodProvider<DaprGrpcService>
{
    public void OnServiceMethodDiscovery(ServiceMethodProviderContext<DaprGrpcService> context) => DaprGrpcService.BindService(context);
}
