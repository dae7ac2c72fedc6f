using Google.Protobuf;
using Grpc.AspNetCore.Server;
using Grpc.Core;
using Grpc.Core.Interceptors;
using Microsoft.AspNetCore.Http;
using SharedRuntime.BuildingBlocks;
using SharedRuntime.Http;

namespace SharedRuntime.Grpc;

/// <summary>
/// Turns the building blocks' Dapr errors into gRPC statuses through <see cref="DaprErrors"/>, and leaves the error on
/// the request for <see cref="TenantAdmissionMiddleware"/>, which logs and counts it as it does an HTTP one.
/// </summary>
internal sealed class DaprErrorInterceptor : Interceptor
{
    public override async Task<TResponse> UnaryServerHandler<TRequest, TResponse>(TRequest request, ServerCallContext context, UnaryServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            var response = await continuation(request, context);
            if (response is IMessage message)
            {
                // The answer is serialized whole into the connection's buffers before it is sent.
                context.GetHttpContext().Memory().Charge(message.CalculateSize(), "the gRPC answer");
            }
            return response;
        }
        catch (DaprApiException ex)
        {
            throw Answered(context, ex);
        }
    }

    public override async Task ServerStreamingServerHandler<TRequest, TResponse>(TRequest request, IServerStreamWriter<TResponse> responseStream, ServerCallContext context, ServerStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            await continuation(request, responseStream, context);
        }
        catch (DaprApiException ex)
        {
            throw Answered(context, ex);
        }
    }

    public override async Task DuplexStreamingServerHandler<TRequest, TResponse>(IAsyncStreamReader<TRequest> requestStream, IServerStreamWriter<TResponse> responseStream,
        ServerCallContext context, DuplexStreamingServerMethod<TRequest, TResponse> continuation)
    {
        try
        {
            await continuation(requestStream, responseStream, context);
        }
        catch (DaprApiException ex)
        {
            throw Answered(context, ex);
        }
    }

    private static RpcException Answered(ServerCallContext context, DaprApiException error)
    {
        context.GetHttpContext().Features.Set(error);
        return DaprErrors.ToRpcException(error);
    }
}
