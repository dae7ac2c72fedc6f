using System.Net;
using System.Net.Sockets;
using System.Text;
using Grpc.Core;
using Grpc.Net.Client;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using SharedRuntime.Http.Relay;
using Autogen = Dapr.Client.Autogen.Grpc.v1;

namespace SharedRuntime.FunctionalTests.AppChannel;

/// <summary>
/// Invocation over the Dapr HTTP port with the relay on and off: what the app receives and what the caller gets back
/// are the same either way, a connection moves to the HTTP API at a request the relay does not take, and a broken,
/// slow or hostile app fails only its own callers' calls.
/// </summary>
public sealed class InvokeRelayTests : IAsyncLifetime
{
    private TestApp _app = null!;
    private TestApp _h2App = null!;
    private RawApp _raw = null!;
    private int _abandoned;
    private readonly TaskCompletionSource _hangReached = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly List<(string Method, string PathAndQuery, Dictionary<string, string> Headers, string Body)> _seen = [];

    public async Task InitializeAsync()
    {
        // The same app over HTTP/1.1 and, on a port of its own, over h2c (HTTP/2 by prior knowledge).
        _app = await TestApp.StartAsync(HandleAsync, Microsoft.AspNetCore.Server.Kestrel.Core.HttpProtocols.Http1);
        _h2App = await TestApp.StartAsync(HandleAsync, Microsoft.AspNetCore.Server.Kestrel.Core.HttpProtocols.Http2);
        _raw = RawApp.Start();
        // The app's first request compiles its whole pipeline, which on a busy machine can take longer than the target's
        // 1 s timeout: it is made here, directly, so that no test's first call through the runtime pays for it.
        using var warm = new HttpClient();
        await warm.GetStringAsync(new Uri(_app.Address, "warm"));
        using var warmH2 = new HttpClient(new SocketsHttpHandler()) { DefaultRequestVersion = HttpVersion.Version20, DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact };
        await warmH2.GetStringAsync(new Uri(_h2App.Address, "warm"));
        lock (_seen)
        {
            _seen.Clear();
        }
    }

    private async Task HandleAsync(HttpContext context)
    {
        var body = await new StreamReader(context.Request.Body).ReadToEndAsync();
        lock (_seen)
        {
            _seen.Add((context.Request.Method, context.Request.Path + context.Request.QueryString,
                context.Request.Headers.ToDictionary(h => h.Key.ToLowerInvariant(), h => h.Value.ToString()), body));
        }
        switch (context.Request.Path.Value)
        {
            case "/created":
                context.Response.StatusCode = 201;
                context.Response.Headers["X-Order"] = "42";
                await context.Response.WriteAsync("made:" + body);
                break;
            case "/chunked":
                for (var i = 0; i < 5; i++)
                {
                    await context.Response.WriteAsync($"part{i};");
                    await context.Response.Body.FlushAsync();
                }
                break;
            case "/large":
                context.Response.ContentLength = 1 << 20;
                await context.Response.Body.WriteAsync(Enumerable.Range(0, 1 << 20).Select(i => (byte)(i % 251)).ToArray());
                break;
            case "/empty":
                context.Response.StatusCode = 204;
                break;
            case "/hang":
                _hangReached.TrySetResult();
                try
                {
                    await Task.Delay(Timeout.Infinite, context.RequestAborted);
                }
                catch (OperationCanceledException)
                {
                    Interlocked.Increment(ref _abandoned);
                }
                break;
            case "/slow":
                await Task.Delay(TimeSpan.FromSeconds(5), context.RequestAborted);
                break;
            default:
                await context.Response.WriteAsync($"{context.Request.Method} {context.Request.Path}");
                break;
        }
    }

    public async Task DisposeAsync()
    {
        await _app.DisposeAsync();
        await _h2App.DisposeAsync();
        _raw.Dispose();
    }

    /// <summary>The runtime with the relay on or off; <paramref name="protocol"/> "h2c" puts the target and narrow apps on the app's h2c port.</summary>
    private Task<TestRuntime> StartAsync(bool relay, string protocol = "http") => TestRuntime.StartAsync(
        AppResources.Tenant("caller", "caller-token", null) +
        AppResources.Tenant("other", "other-token", null) +
        AppResources.Tenant("target", "target-token", protocol == "h2c" ? _h2App.Address : _app.Address, $"""
            appProtocol: {protocol}
            config: target-acl
            appChannel:
              timeout: 1s
              breakAfterFailures: 3
              appApiToken:
                value: "target-app-token"
            """) +
        AppResources.Tenant("narrow", "narrow-token", protocol == "h2c" ? _h2App.Address : _app.Address, $"""
            appProtocol: {protocol}
            appChannel:
              maxConcurrency: 1
              maxQueue: 0
              timeout: 60s
            """) +
        AppResources.Tenant("raw", "raw-token", _raw.Address, """
            appChannel:
              timeout: 1s
              breakAfterFailures: 100
            """) +
        """
        apiVersion: dapr.io/v1alpha1
        kind: Configuration
        metadata:
          name: target-acl
        spec:
          accessControl:
            defaultAction: allow
            policies:
              - appId: other
                defaultAction: deny
        """,
        // Without the fair share, which a loaded test machine could switch on (its calls then go the long way).
        options => options with { InvokeRelay = relay, FairShare = false });

    private static long Relayed(TestRuntime runtime) => runtime.App.Services.GetRequiredService<InvokeRelay>().Relayed;

    /// <summary>
    /// One call first, tried up to three times: a first call slower than the target's 1 s timeout (the runtime's path to
    /// the app compiled on a busy machine) is not what the tests are about. Returns the relayed count after it.
    /// </summary>
    private static async Task<long> WarmAsync(TestRuntime runtime)
    {
        var warm = runtime.Client("caller-token");
        for (var attempt = 1; !(await warm.GetAsync("/v1.0/invoke/target/method/warm")).IsSuccessStatusCode; attempt++)
        {
            Assert.True(attempt < 3, "the warm-up call failed three times");
        }
        return Relayed(runtime);
    }

    [Theory]
    [InlineData(true, "http")]
    [InlineData(false, "http")]
    [InlineData(true, "h2c")]
    [InlineData(false, "h2c")]
    public async Task The_app_receives_the_call_and_the_caller_its_answer_the_same_way_relayed_or_not(bool relay, string protocol)
    {
        await using var runtime = await StartAsync(relay, protocol);
        var before = await WarmAsync(runtime);
        var client = runtime.Client("caller-token");

        var response = await client.PostAsync("/v1.0/invoke/target/method/created?x=1&y=%2F",
            new StringContent("{\"n\":1}", Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        Assert.Equal("42", response.Headers.GetValues("X-Order").Single());
        Assert.Equal("made:{\"n\":1}", await response.Content.ReadAsStringAsync());

        var seen = _seen.Last();
        Assert.Equal("POST", seen.Method);
        Assert.Equal("/created?x=1&y=%2F", seen.PathAndQuery);
        Assert.Equal("{\"n\":1}", seen.Body);
        Assert.Equal("application/json; charset=utf-8", seen.Headers["content-type"]);
        Assert.Equal("caller", seen.Headers["dapr-caller-app-id"]);
        Assert.Equal("target", seen.Headers["dapr-callee-app-id"]);
        Assert.Equal("target-app-token", seen.Headers["dapr-api-token"]); // the app's own token, never the caller's
        Assert.Matches("^00-[0-9a-f]{32}-[0-9a-f]{16}-01$", seen.Headers["traceparent"]);
        Assert.Equal("127.0.0.1", seen.Headers["x-forwarded-for"]);
        Assert.Equal("http", seen.Headers["x-forwarded-proto"]);

        // A caller's trace parent is passed on; its own dapr-caller-app-id is replaced by what the runtime knows.
        var request = new HttpRequestMessage(HttpMethod.Get, "/v1.0/invoke/target/method/plain");
        request.Headers.Add("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
        request.Headers.Add("dapr-caller-app-id", "someone-else");
        request.Headers.Add("X-Custom", "kept");
        Assert.Equal("GET /plain", await (await client.SendAsync(request)).Content.ReadAsStringAsync());
        seen = _seen.Last();
        Assert.Equal("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", seen.Headers["traceparent"]);
        Assert.Equal("caller", seen.Headers["dapr-caller-app-id"]);
        Assert.Equal("kept", seen.Headers["x-custom"]);

        Assert.Equal(relay ? 2 : 0, Relayed(runtime) - before);
    }

    [Theory]
    [InlineData(true, "http")]
    [InlineData(false, "http")]
    [InlineData(true, "h2c")]
    [InlineData(false, "h2c")]
    public async Task Chunked_large_and_empty_answers_come_back_whole(bool relay, string protocol)
    {
        await using var runtime = await StartAsync(relay, protocol);
        var before = await WarmAsync(runtime);
        var client = runtime.Client("caller-token");

        Assert.Equal("part0;part1;part2;part3;part4;", await client.GetStringAsync("/v1.0/invoke/target/method/chunked"));
        var large = await client.GetByteArrayAsync("/v1.0/invoke/target/method/large");
        Assert.Equal(Enumerable.Range(0, 1 << 20).Select(i => (byte)(i % 251)).ToArray(), large);
        var empty = await client.DeleteAsync("/v1.0/invoke/target/method/empty");
        Assert.Equal(HttpStatusCode.NoContent, empty.StatusCode);
        var head = await client.SendAsync(new HttpRequestMessage(HttpMethod.Head, "/v1.0/invoke/target/method/plain"));
        Assert.Equal(HttpStatusCode.OK, head.StatusCode);
        // A body larger than the relay takes goes the long way, and arrives whole.
        var big = new string('b', 100_000);
        var echoed = await client.PostAsync("/v1.0/invoke/target/method/created", new StringContent(big));
        Assert.Equal("made:" + big, await echoed.Content.ReadAsStringAsync());
        Assert.Equal(relay ? 4 : 0, Relayed(runtime) - before);
    }

    [Fact]
    public async Task A_connection_goes_on_through_the_http_api_after_a_request_the_relay_does_not_take()
    {
        await using var runtime = await StartAsync(relay: true);
        // One call first on a connection of its own, so that the target's channel is surely in place (and the runtime's
        // relay path compiled: a first call slower than the target's 1 s timeout is tried again, as it is not what is tested).
        var before = await WarmAsync(runtime);
        using var handler = new SocketsHttpHandler { MaxConnectionsPerServer = 1 };
        using var client = new HttpClient(handler) { BaseAddress = runtime.HttpAddress };
        client.DefaultRequestHeaders.Add("dapr-api-token", "caller-token");

        Assert.Equal("GET /one", await client.GetStringAsync("/v1.0/invoke/target/method/one"));
        Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/v1.0/metadata")).StatusCode);
        Assert.Equal("GET /two", await client.GetStringAsync("/v1.0/invoke/target/method/two"));
        Assert.True((await client.GetAsync("/v1.0/healthz")).IsSuccessStatusCode);
        Assert.Equal(1, Relayed(runtime) - before);
    }

    [Fact]
    public async Task A_connection_that_changes_its_token_is_judged_by_the_new_one()
    {
        await using var runtime = await StartAsync(relay: true);
        using var handler = new SocketsHttpHandler { MaxConnectionsPerServer = 1 };
        using var client = new HttpClient(handler) { BaseAddress = runtime.HttpAddress };

        async Task<HttpResponseMessage> CallAs(string token)
        {
            var request = new HttpRequestMessage(HttpMethod.Get, "/v1.0/invoke/target/method/x");
            request.Headers.Add("dapr-api-token", token);
            return await client.SendAsync(request);
        }

        // One connection: the tenant its first token named must not carry over to the next token's calls.
        Assert.Equal(HttpStatusCode.OK, (await CallAs("caller-token")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await CallAs("other-token")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await CallAs("no-such-token")).StatusCode);
        var seen = _seen.Count;
        Assert.Equal(HttpStatusCode.OK, (await CallAs("caller-token")).StatusCode);
        Assert.Equal(seen + 1, _seen.Count);
        Assert.Equal("caller", _seen.Last().Headers["dapr-caller-app-id"]);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Refusals_are_the_http_apis_own(bool relay)
    {
        await using var runtime = await StartAsync(relay);

        var stranger = await runtime.Client("no-such-token").GetAsync("/v1.0/invoke/target/method/x");
        Assert.Equal(HttpStatusCode.Unauthorized, stranger.StatusCode);
        var denied = await runtime.Client("other-token").GetAsync("/v1.0/invoke/target/method/x");
        Assert.Equal(HttpStatusCode.Forbidden, denied.StatusCode);
        Assert.Contains("ERR_DIRECT_INVOKE", await denied.Content.ReadAsStringAsync());
        var missing = await runtime.Client("caller-token").GetAsync("/v1.0/invoke/nobody/method/x");
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        var escaped = await runtime.Client("caller-token").GetAsync("/v1.0/invoke/target/method/a%2Fb");
        Assert.Equal(HttpStatusCode.BadRequest, escaped.StatusCode);
        Assert.Equal(0, Relayed(runtime));
    }

    [Theory]
    [InlineData(true, "http")]
    [InlineData(false, "http")]
    [InlineData(true, "h2c")]
    [InlineData(false, "h2c")]
    public async Task A_hung_app_times_out_for_its_callers_only(bool relay, string protocol)
    {
        await using var runtime = await StartAsync(relay, protocol);
        await WarmAsync(runtime);
        var slow = await runtime.Client("caller-token").GetAsync("/v1.0/invoke/target/method/slow");
        Assert.Equal(HttpStatusCode.InternalServerError, slow.StatusCode);
        var body = await slow.Content.ReadAsStringAsync();
        Assert.Contains("ERR_DIRECT_INVOKE", body);
        Assert.Contains("did not answer within 1s", body);
        // The other app and the same app's other methods are still served.
        Assert.Equal("GET /fine", await runtime.Client("caller-token").GetStringAsync("/v1.0/invoke/target/method/fine"));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_hostile_app_fails_its_own_calls_and_nothing_else(bool relay)
    {
        await using var runtime = await StartAsync(relay);
        var client = runtime.Client("caller-token");
        string[] answers =
        [
            "HTTP/1.1 200 OK\r\nX-Bad: a\u0001b\r\nContent-Length: 2\r\n\r\nok",
            "NOT HTTP AT ALL\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!",
            "HTTP/1.1 200 OK\r\nX-Huge: " + new string('h', 70_000) + "\r\n\r\n",
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
        ];
        foreach (var answer in answers)
        {
            _raw.Next = answer;
            var response = await client.GetAsync("/v1.0/invoke/raw/method/x");
            Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
            Assert.Contains("\"errorCode\":\"ERR_DIRECT_INVOKE\"", await response.Content.ReadAsStringAsync());
        }
        // A malformed chunked body after a good head: the caller's connection is cut, never a hang or a crash.
        _raw.Next = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nbad\r\n";
        await Assert.ThrowsAnyAsync<HttpRequestException>(() => client.GetStringAsync("/v1.0/invoke/raw/method/x"));
        // An answer with no framing ends with the app's connection.
        _raw.Next = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil-close";
        Assert.Equal("until-close", await client.GetStringAsync("/v1.0/invoke/raw/method/x"));
        // An answer that stops half-way: the caller's connection is cut once the app's timeout (1s) passes without a
        // byte, rather than held for as long as the caller would wait (this client: 30s, then a timeout of its own).
        _raw.Next = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly-part";
        var stalled = await Record.ExceptionAsync(() => client.GetStringAsync("/v1.0/invoke/raw/method/x"));
        Assert.IsType<HttpRequestException>(stalled);
        // The same with an answer that ends only when the app closes, and the app never does: cut, not passed off as
        // whole when the timeout closes the app's connection.
        _raw.Next = "HTTP/1.1 200 OK\r\n\r\nuntil-close-but-stalls";
        var stalledUntilClose = await Record.ExceptionAsync(() => client.GetStringAsync("/v1.0/invoke/raw/method/x"));
        Assert.IsType<HttpRequestException>(stalledUntilClose);

        Assert.Equal("GET /fine", await client.GetStringAsync("/v1.0/invoke/target/method/fine"));
        var metadata = await runtime.Client("other-token").GetAsync("/v1.0/metadata");
        Assert.Equal(HttpStatusCode.OK, metadata.StatusCode);
    }

    [Fact]
    public async Task A_call_timed_out_or_given_up_is_reset_at_the_app()
    {
        // The relay ends such a call by resetting the app's connection: the app's server learns at once that the call is
        // over, and neither side is left to finish closing a connection for a call nobody waits for.
        await using var runtime = await StartAsync(relay: true);
        var client = runtime.Client("caller-token");
        _raw.Hang = true;
        try
        {
            var (_, timedOut) = _raw.WatchNextHung();
            var response = await client.GetAsync("/v1.0/invoke/raw/method/x"); // the raw app's timeout is 1 s
            Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
            Assert.Contains("did not answer within 1s", await response.Content.ReadAsStringAsync());
            Assert.Equal("reset", await timedOut.WaitAsync(TimeSpan.FromSeconds(10)));

            var (reached, givenUp) = _raw.WatchNextHung();
            using var giveUp = new CancellationTokenSource();
            var call = client.GetAsync("/v1.0/invoke/raw/method/x", giveUp.Token);
            await reached.WaitAsync(TimeSpan.FromSeconds(10));
            giveUp.Cancel();
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => call);
            Assert.Equal("reset", await givenUp.WaitAsync(TimeSpan.FromSeconds(10)));
        }
        finally
        {
            _raw.Hang = false;
        }
        // Answered calls go on as before.
        Assert.Equal("", await client.GetStringAsync("/v1.0/invoke/raw/method/x"));
    }

    [Fact]
    public async Task A_grpc_caller_is_not_held_by_an_answer_that_stops_half_way()
    {
        await using var runtime = await StartAsync(relay: true);
        _raw.Next = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly-part";
        using var channel = GrpcChannel.ForAddress(runtime.GrpcAddress);
        var client = new Autogen.Dapr.DaprClient(channel);
        var call = client.InvokeServiceAsync(new Autogen.InvokeServiceRequest
        {
            Id = "raw",
            Message = new Autogen.InvokeRequest { Method = "x", HttpExtension = new() { Verb = Autogen.HTTPExtension.Types.Verb.Get } },
        }, new Metadata { { "dapr-api-token", "caller-token" } }, deadline: DateTime.UtcNow.AddSeconds(30));

        // The app's timeout (1s) ends the call, not the caller's own deadline.
        var error = await Assert.ThrowsAsync<RpcException>(async () => await call);
        Assert.Equal(StatusCode.DeadlineExceeded, error.StatusCode);
        Assert.Contains("sent nothing more of its answer for 1s", error.Status.Detail);
        Assert.Equal("GET /fine", await runtime.Client("caller-token").GetStringAsync("/v1.0/invoke/target/method/fine"));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task An_app_that_closes_kept_connections_is_still_reached(bool relay)
    {
        await using var runtime = await StartAsync(relay);
        var client = runtime.Client("caller-token");
        for (var i = 0; i < 4; i++)
        {
            _raw.Next = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
            _raw.CloseAfterAnswer = true; // as a server with a short keep-alive does, between calls
            Assert.Equal("hello", await client.GetStringAsync("/v1.0/invoke/raw/method/x"));
            await Task.Delay(50);
        }
    }

    [Theory]
    [InlineData(true, "http")]
    [InlineData(false, "http")]
    [InlineData(true, "h2c")]
    [InlineData(false, "h2c")]
    public async Task A_caller_that_gives_up_on_a_hung_app_frees_its_slot(bool relay, string protocol)
    {
        await using var runtime = await StartAsync(relay, protocol);
        var impatient = runtime.Client("caller-token");
        using var giveUp = new CancellationTokenSource();
        var hung = impatient.GetAsync("/v1.0/invoke/narrow/method/hang", giveUp.Token);
        await _hangReached.Task.WaitAsync(TimeSpan.FromSeconds(10)); // the call is in the app
        giveUp.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => hung);

        // The app's only slot comes back once the runtime sees the caller gone, and the app's call is ended.
        var client = runtime.Client("caller-token");
        await Eventually.TrueAsync(async () => (await client.GetAsync("/v1.0/invoke/narrow/method/fine")).IsSuccessStatusCode, TimeSpan.FromSeconds(10));
        await Eventually.TrueAsync(() => Task.FromResult(Volatile.Read(ref _abandoned) == 1), TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task A_down_app_opens_its_own_breaker_only()
    {
        var port = TestRuntime.FreePorts(1)[0];
        await using var runtime = await TestRuntime.StartAsync(
            AppResources.Tenant("caller", "caller-token", null) +
            AppResources.Tenant("down", "down-token", new Uri($"http://127.0.0.1:{port}"), "appChannel:\n  breakAfterFailures: 2\n  breakDuration: 60s\n") +
            AppResources.Tenant("target", "target-token", _app.Address));
        var client = runtime.Client("caller-token");
        for (var i = 0; i < 4; i++)
        {
            var response = await client.GetAsync("/v1.0/invoke/down/method/x");
            Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
            Assert.Contains("ERR_DIRECT_INVOKE", await response.Content.ReadAsStringAsync());
        }
        Assert.Equal("GET /up", await client.GetStringAsync("/v1.0/invoke/target/method/up"));
    }

    /// <summary>An app that answers each request with whatever the test set last, byte for byte.</summary>
    private sealed class RawApp : RawTcpApp
    {
        public volatile string Next = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

        public volatile bool CloseAfterAnswer;

        /// <summary>When set, a request is read and never answered; how its connection then ends is reported.</summary>
        public volatile bool Hang;

        private TaskCompletionSource<string> _hungEnd = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private TaskCompletionSource _hungReached = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>Watches the next hung request: when it reached the app, and how its connection ended ("reset" or "closed").</summary>
        public (Task Reached, Task<string> Ended) WatchNextHung()
        {
            _hungReached = new(TaskCreationOptions.RunContinuationsAsynchronously);
            _hungEnd = new(TaskCreationOptions.RunContinuationsAsynchronously);
            return (_hungReached.Task, _hungEnd.Task);
        }

        public static RawApp Start()
        {
            var app = new RawApp();
            app.Listen();
            return app;
        }

        protected override async Task ServeAsync(TcpClient client)
        {
            using var _ = client;
            var stream = client.GetStream();
            var buffer = new byte[64 * 1024];
            var have = 0;
            try
            {
                while (true)
                {
                    int end;
                    while ((end = buffer.AsSpan(0, have).IndexOf("\r\n\r\n"u8)) < 0)
                    {
                        var read = await stream.ReadAsync(buffer.AsMemory(have));
                        if (read == 0)
                        {
                            return;
                        }
                        have += read;
                    }
                    have = 0;
                    if (Hang)
                    {
                        _hungReached.TrySetResult();
                        try
                        {
                            _hungEnd.TrySetResult(await stream.ReadAsync(buffer) == 0 ? "closed" : "more bytes");
                        }
                        catch (IOException ex) when (ex.InnerException is SocketException { SocketErrorCode: SocketError.ConnectionReset })
                        {
                            _hungEnd.TrySetResult("reset");
                        }
                        return;
                    }
                    var answer = Next;
                    await stream.WriteAsync(Encoding.Latin1.GetBytes(answer));
                    if (CloseAfterAnswer || answer.Contains("Connection: close", StringComparison.Ordinal) || answer.StartsWith("NOT", StringComparison.Ordinal))
                    {
                        return;
                    }
                }
            }
            catch (IOException)
            {
            }
        }
    }
}
