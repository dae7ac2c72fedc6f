using System.Diagnostics;
using System.Globalization;
using System.Net;
using Google.Protobuf;
using Google.Protobuf.WellKnownTypes;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace SharedRuntime.LoadTest;

/// <summary>
/// gRPC proxying: an app's own unary gRPC method (<c>sharedruntime.bench.Echo/Say</c>, the same bytes as the other
/// baselines) called on one HTTP/2 connection with a number of calls in flight for a fixed time, either straight at
/// the app or through the runtime's gRPC port with <c>dapr-app-id</c> (Dapr's gRPC proxying, as the SDK's invocation
/// invoker makes it); prints the calls answered per second.
/// </summary>
internal static class GrpcProxyScenario
{
    private static readonly Marshaller<BytesValue> Bytes = Marshallers.Create(
        static (BytesValue m) => m.ToByteArray(), static b => BytesValue.Parser.ParseFrom(b));

    internal static readonly Method<BytesValue, BytesValue> Say = new(MethodType.Unary, "sharedruntime.bench.Echo", "Say", Bytes, Bytes);

    /// <summary><c>--grpc-proxy http://127.0.0.1:PORT SECONDS CONCURRENCY [TOKEN APP-ID]</c>: prints "calls/s calls".</summary>
    public static async Task<int> RunAsync(string[] args)
    {
        var seconds = double.Parse(args[2], CultureInfo.InvariantCulture);
        var concurrency = int.Parse(args[3], CultureInfo.InvariantCulture);
        var headers = new Metadata();
        if (args.Length > 5)
        {
            headers.Add("dapr-api-token", args[4]);
            headers.Add("dapr-app-id", args[5]);
        }
        using var channel = GrpcChannel.ForAddress(args[1]);
        var invoker = channel.CreateCallInvoker();
        var request = new BytesValue { Value = UnsafeByteOperations.UnsafeWrap(BareKestrel.Body) };
        var first = await invoker.AsyncUnaryCall(Say, null, new CallOptions(headers), request);
        if (!first.Value.Span.SequenceEqual(BareKestrel.Body))
        {
            await Console.Error.WriteLineAsync("unexpected answer");
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
                    await invoker.AsyncUnaryCall(Say, null, new CallOptions(headers), request);
                    Interlocked.Increment(ref calls);
                }
                catch (RpcException)
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

    /// <summary>The app: a Grpc.AspNetCore service echoing its request, with the runtime's server settings.</summary>
    public static async Task ServeAppAsync(int port)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            BareKestrel.ConfigureLikeRuntime(k);
            k.Listen(IPAddress.Loopback, port, l => l.Protocols = HttpProtocols.Http2);
        });
        builder.Services.AddGrpc();
        var app = builder.Build();
        app.MapGrpcService<EchoService>();
        await app.RunAsync();
    }

    [BindServiceMethod(typeof(EchoService), nameof(BindService))]
    internal class EchoService
    {
        public static void BindService(ServiceBinderBase binder, EchoService? service) =>
            binder.AddMethod(GrpcProxyScenario.Say, service is null ? null : new UnaryServerMethod<BytesValue, BytesValue>(service.Say));

        public virtual Task<BytesValue> Say(BytesValue request, ServerCallContext context) => Task.FromResult(request);
    }
}
