using System.Diagnostics;
using System.Globalization;
using System.Net;
using Dapr.Client;
using Google.Protobuf;
using Grpc.Core;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Autogen = Dapr.Client.Autogen.Grpc.v1;

namespace SharedRuntime.LoadTest;

/// <summary>
/// gRPC GetState through Dapr.Client, as an app makes it: one <see cref="DaprClient"/> (one HTTP/2 connection), a
/// number of calls in flight at once for a fixed time; prints the calls answered per second. Pointed at the runtime
/// (with the tenant's token) or at <see cref="BareGrpc"/>, the same answer with nothing in between.
/// </summary>
internal static class GrpcGetScenario
{
    /// <summary><c>--grpc-get http://127.0.0.1:PORT SECONDS CONCURRENCY [TOKEN]</c>: prints "calls/s".</summary>
    public static async Task<int> RunAsync(string[] args)
    {
        var address = args[1];
        var seconds = double.Parse(args[2], CultureInfo.InvariantCulture);
        var concurrency = int.Parse(args[3], CultureInfo.InvariantCulture);
        var builder = new DaprClientBuilder().UseGrpcEndpoint(address).UseHttpEndpoint(address);
        if (args.Length > 4)
        {
            builder.UseDaprApiToken(args[4]);
        }
        using var client = builder.Build();
        var expected = await client.GetByteStateAsync("store", "k");
        if (!expected.Span.SequenceEqual(BareKestrel.Body))
        {
            await Console.Error.WriteLineAsync($"unexpected value: {System.Text.Encoding.UTF8.GetString(expected.Span)}");
            return 1;
        }
        long calls = 0;
        long errors = 0;
        var clock = Stopwatch.StartNew();
        var until = TimeSpan.FromSeconds(seconds);
        var workers = Enumerable.Range(0, concurrency).Select(async _ =>
        {
            while (clock.Elapsed < until)
            {
                try
                {
                    await client.GetByteStateAsync("store", "k");
                    Interlocked.Increment(ref calls);
                }
                catch (Dapr.DaprException)
                {
                    Interlocked.Increment(ref errors);
                }
            }
        }).ToList();
        await Task.WhenAll(workers);
        var elapsed = clock.Elapsed.TotalSeconds;
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{calls / elapsed:F0} {calls}"));
        if (errors > 0)
        {
            await Console.Error.WriteLineAsync($"ERRORS: {errors} calls failed");
            return 1;
        }
        return 0;
    }
}

/// <summary>
/// A Grpc.AspNetCore service answering Dapr's GetState with the same bytes and etag as the runtime's state GET, with
/// the runtime's server and gRPC settings (HTTP/2 listener, Kestrel limits, message size) and nothing else.
/// </summary>
internal static class BareGrpc
{
    public static async Task ServeAsync(int port)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            BareKestrel.ConfigureLikeRuntime(k);
            k.Listen(IPAddress.Loopback, port, l => l.Protocols = HttpProtocols.Http2);
        });
        builder.Services.AddGrpc(o => o.MaxReceiveMessageSize = 16 * 1024 * 1024);
        var app = builder.Build();
        app.MapGrpcService<DaprService>();
        await app.RunAsync();
    }

    /// <summary>Dapr's GetState bound by hand (Dapr.Protos has no server base class), marshalled as the runtime does.</summary>
    [BindServiceMethod(typeof(DaprService), nameof(BindService))]
    internal class DaprService
    {
        private static readonly ByteString Value = UnsafeByteOperations.UnsafeWrap(BareKestrel.Body);

        public static void BindService(ServiceBinderBase binder, DaprService? service) =>
            binder.AddMethod(new Method<Autogen.GetStateRequest, Autogen.GetStateResponse>(MethodType.Unary, "dapr.proto.runtime.v1.Dapr", "GetState",
                Marshaller(Autogen.GetStateRequest.Parser), Marshaller(Autogen.GetStateResponse.Parser)), service is null ? null : service.GetState);

        public virtual Task<Autogen.GetStateResponse> GetState(Autogen.GetStateRequest request, ServerCallContext context) =>
            Task.FromResult(new Autogen.GetStateResponse { Data = Value, Etag = "1" });

        private static Marshaller<T> Marshaller<T>(MessageParser<T> parser)
            where T : class, IMessage<T> =>
            Marshallers.Create<T>(
                static (message, context) =>
                {
                    context.SetPayloadLength(message.CalculateSize());
                    message.WriteTo(context.GetBufferWriter());
                    context.Complete();
                },
                context => parser.ParseFrom(context.PayloadAsReadOnlySequence()));
    }
}
