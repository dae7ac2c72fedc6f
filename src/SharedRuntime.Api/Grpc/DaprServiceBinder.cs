using Google.Protobuf;
using Google.Protobuf.Reflection;
using Grpc.Core;
using Autogen = Dapr.Client.Autogen.Grpc.v1;

namespace SharedRuntime.Grpc;

/// <summary>
/// Method definitions of the service <c>dapr.proto.runtime.v1.Dapr</c> over the message types of the Dapr.Protos
/// package, which has no server base class.
/// </summary>
internal static class DaprServiceBinder
{
    public const string ServiceName = "dapr.proto.runtime.v1.Dapr";

    internal static Method<TRequest, TResponse> Unary<TRequest, TResponse>(string name, MessageParser<TRequest> request, MessageParser<TResponse> response)
        where TRequest : class, IMessage<TRequest>
        where TResponse : class, IMessage<TResponse> =>
        new(MethodType.Unary, ServiceName, name, Marshaller(request), Marshaller(response));

    internal static Method<TRequest, TResponse> ServerStreaming<TRequest, TResponse>(string name, MessageParser<TRequest> request, MessageParser<TResponse> response)
        where TRequest : class, IMessage<TRequest>
        where TResponse : class, IMessage<TResponse> =>
        new(MethodType.ServerStreaming, ServiceName, name, Marshaller(request), Marshaller(response));

    internal static Method<TRequest, TResponse> DuplexStreaming<TRequest, TResponse>(string name, MessageParser<TRequest> request, MessageParser<TResponse> response)
        where TRequest : class, IMessage<TRequest>
        where TResponse : class, IMessage<TResponse> =>
        new(MethodType.DuplexStreaming, ServiceName, name, Marshaller(request), Marshaller(response));

    /// <summary>
    /// Messages are parsed from the received bytes where they lie and written straight into the connection's buffers:
    /// no whole-message array in between, in either direction.
    /// </summary>
    private static Marshaller<T> Marshaller<T>(MessageParser<T> parser)
        where T : class, IMessage<T> =>
        Marshallers.Create<T>(
            static (message, context) =>
            {
                context.SetPayloadLength(message.CalculateSize());
                message.WriteTo(context.GetBufferWriter());
                context.Complete();
            },
            context => Parse(parser, context.PayloadAsReadOnlySequence()));

    /// <summary>
    /// A message that is not valid protobuf (cut short, a bad wire type, a string that is not UTF-8) is the
    /// caller's error: INVALID_ARGUMENT with a Dapr error code, not the UNKNOWN status of a handler that threw.
    /// </summary>
    private static T Parse<T>(MessageParser<T> parser, System.Buffers.ReadOnlySequence<byte> bytes) where T : class, IMessage<T>
    {
        try
        {
            return parser.ParseFrom(bytes);
        }
        catch (InvalidProtocolBufferException ex)
        {
            throw SharedRuntime.BuildingBlocks.DaprErrors.ToRpcException(SharedRuntime.BuildingBlocks.Errors.Malformed($"the request is not a valid {typeof(T).Name}: {ex.Message}"));
        }
    }

    /// <summary>The building block a method belongs to, for metrics.</summary>
    public static string ApiOf(string method) => method switch
    {
        _ when method.Contains("State", StringComparison.Ordinal) => "state",
        _ when method.Contains("Publish", StringComparison.Ordinal) => "publish",
        _ when method.Contains("SubscribeTopicEvents", StringComparison.Ordinal) => "subscribe",
        "InvokeBinding" => "bindings",
        "InvokeService" => "invoke",
        _ when method.Contains("Secret", StringComparison.Ordinal) => "secrets",
        _ when method.Contains("Metadata", StringComparison.Ordinal) => "metadata",
        _ when method.Contains("Configuration", StringComparison.Ordinal) => "configuration",
        _ when method.Contains("Lock", StringComparison.Ordinal) => "lock",
        _ => "grpc",
    };
}
