using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using SharedRuntime.AppChannel;
using static SharedRuntime.FunctionalTests.Http.HttpAssert;

namespace SharedRuntime.FunctionalTests.AppChannel;

/// <summary>
/// Whose fault a failed invocation is: a request the caller got wrong is that caller's 4xx and never moves the
/// target app's breakers (its channel breaker, or a Resiliency breaker), so no caller can cut an app off from others.
/// </summary>
public sealed class InvocationFaultTests : IAsyncLifetime
{
    private TestRuntime _runtime = null!;
    private TestApp _billingApp = null!;
    private int _served;

    public async Task InitializeAsync()
    {
        _billingApp = await TestApp.StartAsync(async context =>
        {
            var body = new MemoryStream();
            await context.Request.Body.CopyToAsync(body);
            Interlocked.Increment(ref _served);
            await context.Response.WriteAsync($"{context.Request.Method} {context.Request.Path} {body.Length}");
        });
        _runtime = await TestRuntime.StartAsync(
            AppResources.Tenant("attacker", "attacker-token", null) +
            AppResources.Tenant("orders", "orders-token", null) +
            AppResources.Tenant("small", "small-token", null, """
                limits:
                  maxRequestBodyBytes: 262144
                """) +
            AppResources.Tenant("billing", "billing-token", _billingApp.Address, """
                appChannel:
                  breakAfterFailures: 3
                  breakDuration: 60s
                """) +
            """
            apiVersion: dapr.io/v1alpha1
            kind: Resiliency
            metadata:
              name: attacker-policies
            spec:
              policies:
                retries:
                  twice:
                    policy: constant
                    duration: 10ms
                    maxRetries: 2
                circuitBreakers:
                  tight:
                    maxRequests: 1
                    timeout: 60s
                    trip: consecutiveFailures >= 2
              targets:
                apps:
                  billing:
                    retry: twice
                    circuitBreaker: tight
            scopes:
              - attacker
            """);
    }

    public async Task DisposeAsync()
    {
        await _runtime.DisposeAsync();
        await _billingApp.DisposeAsync();
    }

    private SharedRuntime.AppChannel.AppChannel Billing => _runtime.App.Services.GetRequiredService<AppChannels>().Find("billing")!;

    /// <summary>A client that sends header values as UTF-8, as a careless or hostile caller can.</summary>
    private HttpClient Utf8Client(string token)
    {
        var client = new HttpClient(new SocketsHttpHandler { RequestHeaderEncodingSelector = (_, _) => Encoding.UTF8 })
        {
            BaseAddress = _runtime.HttpAddress,
            Timeout = TimeSpan.FromSeconds(30),
        };
        client.DefaultRequestHeaders.Add("dapr-api-token", token);
        return client;
    }

    private async Task AssertBillingServedAsync()
    {
        // Both the other tenant and the caller itself (whose Resiliency breaker is its own) still reach the app.
        await StatusAsync(await _runtime.Client("orders-token").GetAsync("/v1.0/invoke/billing/method/status"), HttpStatusCode.OK);
        await StatusAsync(await _runtime.Client("attacker-token").GetAsync("/v1.0/invoke/billing/method/status"), HttpStatusCode.OK);
        Assert.Equal(CircuitState.Closed, Billing.BreakerState);
    }

    [Fact]
    public async Task A_header_the_client_cannot_send_is_the_callers_400_and_never_opens_the_apps_breaker()
    {
        using var attacker = Utf8Client("attacker-token");
        for (var i = 0; i < 10; i++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1.0/invoke/billing/method/orders") { Content = Json("{}") };
            request.Headers.TryAddWithoutValidation("X-Name", "h\u00e9llo w\u00f6rld \u2603");
            var message = await ErrorAsync(await attacker.SendAsync(request), HttpStatusCode.BadRequest, "ERR_DIRECT_INVOKE");
            Assert.Contains("X-Name", message);

            using var viaHeader = new HttpRequestMessage(HttpMethod.Get, "/orders");
            viaHeader.Headers.Add("dapr-app-id", "billing");
            viaHeader.Headers.TryAddWithoutValidation("X-Other", "\u00fcber");
            await ErrorAsync(await attacker.SendAsync(viaHeader), HttpStatusCode.BadRequest, "ERR_DIRECT_INVOKE");
        }
        Assert.Equal(0, Volatile.Read(ref _served));

        await AssertBillingServedAsync();
    }

    [Fact]
    public async Task A_caller_aborting_its_body_midway_never_opens_the_apps_breaker()
    {
        for (var i = 0; i < 12; i++)
        {
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await socket.ConnectAsync(IPAddress.Loopback, _runtime.HttpAddress.Port);
            using var stream = new NetworkStream(socket, ownsSocket: false);
            const string head = "POST /v1.0/invoke/billing/method/upload HTTP/1.1\r\nHost: localhost\r\ndapr-api-token: attacker-token\r\nContent-Type: application/octet-stream\r\n";
            if (i % 3 == 2)
            {
                // A chunked body whose framing breaks after the first chunk: the caller's malformed request, its 400.
                await socket.SendAsync(Encoding.ASCII.GetBytes(head + "Transfer-Encoding: chunked\r\n\r\n10000\r\n"));
                await socket.SendAsync(new byte[0x10000]);
                await socket.SendAsync(Encoding.ASCII.GetBytes("\r\nnot-a-chunk-size\r\n"));
                var answer = await ReadAnswerAsync(stream);
                Assert.True(answer.StartsWith("HTTP/1.1 400", StringComparison.Ordinal), answer);
                Assert.Contains("\"errorCode\"", answer);
                continue;
            }
            // Over the 1 MiB a retry policy buffers, the body streams to the app while the caller sends it.
            await socket.SendAsync(Encoding.ASCII.GetBytes(head + $"Content-Length: {2 * 1024 * 1024}\r\n\r\n"));
            await socket.SendAsync(new byte[64 * 1024]);
            if (i % 3 == 0)
            {
                socket.LingerState = new LingerOption(true, 0);
                socket.Close(); // a reset: the caller is gone
            }
            else
            {
                socket.Shutdown(SocketShutdown.Send); // the body ends short; Kestrel takes it as the caller leaving
                var answer = await ReadAnswerAsync(stream);
                Assert.True(answer.Length == 0 || answer.StartsWith("HTTP/1.1 4", StringComparison.Ordinal), answer);
            }
        }
        // The runtime has dealt with every aborted call once none is in flight into the app.
        await Eventually.TrueAsync(() => Task.FromResult(Billing.Calls.InFlight == 0), TimeSpan.FromSeconds(15), "aborted calls to end");

        await AssertBillingServedAsync();
    }

    [Fact]
    public async Task A_streamed_body_that_grows_past_the_callers_limit_is_its_413_and_never_opens_the_apps_breaker()
    {
        for (var i = 0; i < 4; i++)
        {
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await socket.ConnectAsync(IPAddress.Loopback, _runtime.HttpAddress.Port);
            using var stream = new NetworkStream(socket, ownsSocket: false);
            // A first chunk well within the limit, so the call to the app has begun when the body goes past it.
            await socket.SendAsync(Encoding.ASCII.GetBytes(
                "POST /v1.0/invoke/billing/method/upload HTTP/1.1\r\nHost: localhost\r\ndapr-api-token: small-token\r\n" +
                "Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n10000\r\n"));
            await socket.SendAsync(new byte[0x10000]);
            await socket.SendAsync("\r\n"u8.ToArray());
            await Eventually.TrueAsync(() => Task.FromResult(Billing.Calls.InFlight == 1), TimeSpan.FromSeconds(10), "the call to the app began");
            var rest = Task.Run(async () =>
            {
                try
                {
                    for (var chunk = 0; chunk < 8; chunk++)
                    {
                        await socket.SendAsync(Encoding.ASCII.GetBytes("10000\r\n"));
                        await socket.SendAsync(new byte[0x10000]);
                        await socket.SendAsync("\r\n"u8.ToArray());
                    }
                }
                catch (SocketException)
                {
                    // the runtime stopped reading and closed the connection once the body was over the limit
                }
            });
            var answer = await ReadAnswerAsync(stream);
            await rest;
            Assert.True(answer.StartsWith("HTTP/1.1 413", StringComparison.Ordinal), answer);
            Assert.Contains("ERR_TENANT_BODY_TOO_LARGE", answer);
        }
        await AssertBillingServedAsync();
    }

    [Fact]
    public async Task Made_up_app_ids_are_refused_without_caching_a_pipeline_for_them()
    {
        var policies = _runtime.App.Services.GetRequiredService<ResiliencyPolicies>();
        var attacker = _runtime.Client("attacker-token");
        await StatusAsync(await attacker.PostAsync("/v1.0/invoke/billing/method/warm", Json("{}")), HttpStatusCode.OK);
        var cached = policies.CachedPipelines;

        for (var i = 0; i < 2000; i++)
        {
            // A body with a length makes the runtime ask, before the app-id is checked, whether a retry could need it.
            await ErrorAsync(await attacker.PostAsync($"/v1.0/invoke/made-up-{i}/method/x", Json("{}")), HttpStatusCode.NotFound, "ERR_DIRECT_INVOKE");
        }
        Assert.Equal(cached, policies.CachedPipelines);
    }

    [Theory]
    [InlineData("GET", "/v1.0/invoke/billing/method/a%2Fb")]
    [InlineData("GET", "/v1.0/invoke/billing/method/a%5Cb")]
    [InlineData("GET", "/v1.0/invoke/billing/method/a\\b")]
    [InlineData("GET", "/v1.0/invoke/billing/method/x/%2E%2E%2Fadmin")]
    [InlineData("GET", "/v1.0/invoke/billing/method/a%3Fb")]
    [InlineData("GET", "/v1.0/invoke/billing/method/a%252Fb")]
    [InlineData("GET", "/v1.0/invoke/billing/method/a%FFb")]
    public async Task A_malformed_method_path_is_the_callers_400(string verb, string target)
    {
        var (status, body) = await RawAsync(_runtime.HttpAddress, $"{verb} {target} HTTP/1.1\r\nHost: localhost\r\ndapr-api-token: attacker-token\r\nConnection: close\r\n\r\n");
        Assert.True(status == 400, $"{target}: {status} {body}");
        Assert.Contains("\"errorCode\"", body);
        Assert.Equal(0, Volatile.Read(ref _served));
        await AssertBillingServedAsync();
    }

    private static async Task<string> ReadAnswerAsync(NetworkStream stream)
    {
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var answer = new MemoryStream();
        try
        {
            await stream.CopyToAsync(answer, cancel.Token);
        }
        catch (IOException)
        {
            // the runtime may reset a connection whose request it could not read to its end
        }
        return Encoding.UTF8.GetString(answer.ToArray());
    }

    /// <summary>Sends <paramref name="request"/> as it is, without a client's normalisation, and reads the status and body.</summary>
    internal static async Task<(int Status, string Body)> RawAsync(Uri address, string request)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(IPAddress.Loopback, address.Port);
        await socket.SendAsync(Encoding.Latin1.GetBytes(request));
        using var stream = new NetworkStream(socket, ownsSocket: false);
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var buffer = new MemoryStream();
        await stream.CopyToAsync(buffer, cancel.Token);
        var text = Encoding.UTF8.GetString(buffer.ToArray());
        var status = int.Parse(text.Split(' ', 3)[1], System.Globalization.CultureInfo.InvariantCulture);
        var bodyStart = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
        return (status, bodyStart < 0 ? "" : text[(bodyStart + 4)..]);
    }
}
