using System.Net;
using System.Net.Sockets;
using Microsoft.Extensions.Time.Testing;
using Polly;
using Polly.Timeout;
using SharedRuntime.AppChannel;
using SharedRuntime.Configuration;

namespace SharedRuntime.Tests.AppChannel;

/// <summary>What counts against an app's breakers: only its own failures, never a request the caller got wrong.</summary>
public class AppCallVerdictTests
{
    public static TheoryData<string, Exception?, int, string> Outcomes => new()
    {
        { "2xx", null, 200, nameof(AppCallVerdict.Success) },
        { "4xx from the app", null, 404, nameof(AppCallVerdict.Success) },
        { "5xx from the app", null, 503, nameof(AppCallVerdict.AppFailure) },
        { "connection refused", new HttpRequestException(HttpRequestError.ConnectionError, "refused", new SocketException((int)SocketError.ConnectionRefused)), 0, nameof(AppCallVerdict.AppFailure) },
        { "channel timeout", new TimeoutException("slow"), 0, nameof(AppCallVerdict.AppFailure) },
        { "policy timeout", new TimeoutRejectedException(), 0, nameof(AppCallVerdict.AppFailure) },
        { "caller fault", new CallerFaultException("bad header", timedOut: false), 0, nameof(AppCallVerdict.NotTheApps) },
        { "caller stalled", new CallerFaultException("trickled", timedOut: true), 0, nameof(AppCallVerdict.NotTheApps) },
        { "open circuit", new CircuitOpenException("app"), 0, nameof(AppCallVerdict.NotTheApps) },
        { "app busy", new AppBusyException("app", "caller", 1, 1), 0, nameof(AppCallVerdict.NotTheApps) },
    };

    [Theory]
    [MemberData(nameof(Outcomes))]
    public void Only_the_apps_own_failures_count(string what, Exception? exception, int status, string expected)
    {
        var context = ResilienceContextPool.Shared.Get();
        try
        {
            var outcome = exception is null
                ? Outcome.FromResult(new AppCallResult { StatusCode = status, Failed = status >= 500 })
                : Outcome.FromException<AppCallResult>(exception);
            Assert.True(expected == AppCallVerdicts.Of(outcome, context).ToString(), what);
        }
        finally
        {
            ResilienceContextPool.Shared.Return(context);
        }
    }

    [Fact]
    public void A_caller_that_gave_up_is_nobodys_failure()
    {
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        var context = ResilienceContextPool.Shared.Get(cancelled.Token);
        Assert.Equal(AppCallVerdict.NotTheApps, AppCallVerdicts.Of(Outcome.FromException<AppCallResult>(new OperationCanceledException(cancelled.Token)), context));
        ResilienceContextPool.Shared.Return(context);
    }

    private static SharedRuntime.AppChannel.AppChannel Channel(HttpMessageHandler handler, TimeSpan? timeout = null) =>
        new("billing", new AppChannelConfig { BreakAfterFailures = 2, BreakDuration = TimeSpan.FromMinutes(1), Timeout = timeout ?? TimeSpan.FromSeconds(30) },
            new Uri("http://127.0.0.1:1"), AppProtocol.Http, new HttpMessageInvoker(handler), new FakeTimeProvider());

    private static ValueTask<AppCallResult> Ok(HttpResponseMessage response, CancellationToken _) =>
        ValueTask.FromResult(new AppCallResult { Response = response, StatusCode = (int)response.StatusCode });

    [Fact]
    public async Task A_request_the_client_refuses_to_send_is_the_callers_fault_and_never_opens_the_breaker()
    {
        var channel = Channel(new Handler((_, _) => throw new HttpRequestException("Request headers must contain only ASCII characters.")));
        for (var i = 0; i < 10; i++)
        {
            await Assert.ThrowsAsync<CallerFaultException>(async () => await channel.SendAsync(new HttpRequestMessage(HttpMethod.Get, "http://127.0.0.1:1/x"), Ok, default));
        }
        Assert.Equal(CircuitState.Closed, channel.BreakerState);
    }

    [Fact]
    public async Task A_refused_connection_is_the_apps_failure_and_opens_the_breaker()
    {
        var channel = Channel(new Handler((_, _) => throw new HttpRequestException(HttpRequestError.ConnectionError, "refused", new SocketException((int)SocketError.ConnectionRefused))));
        for (var i = 0; i < 2; i++)
        {
            await Assert.ThrowsAsync<HttpRequestException>(async () => await channel.SendAsync(new HttpRequestMessage(HttpMethod.Get, "http://127.0.0.1:1/x"), Ok, default));
        }
        Assert.Equal(CircuitState.Open, channel.BreakerState);
    }

    [Fact]
    public async Task A_caller_body_that_breaks_midway_is_the_callers_fault()
    {
        // The handler reads the body the way the client would, and fails the send when the caller's stream fails.
        var channel = Channel(new Handler(async (request, token) =>
        {
            try
            {
                await request.Content!.CopyToAsync(Stream.Null, token);
            }
            catch (IOException ex)
            {
                throw new HttpRequestException(HttpRequestError.Unknown, "Error while copying content to a stream.", ex);
            }
            return new HttpResponseMessage(HttpStatusCode.OK);
        }));
        var callerBody = new CallerBodyStream(new BreakingStream());
        for (var i = 0; i < 10; i++)
        {
            var request = new HttpRequestMessage(HttpMethod.Post, "http://127.0.0.1:1/x") { Content = new StreamContent(callerBody) };
            request.Options.Set(CallerBodyStream.Key, callerBody);
            var fault = await Assert.ThrowsAsync<CallerFaultException>(async () => await channel.SendAsync(request, Ok, default));
            Assert.False(fault.TimedOut);
        }
        Assert.Equal(CircuitState.Closed, channel.BreakerState);
    }

    [Fact]
    public async Task A_timeout_while_the_caller_trickles_its_body_is_the_callers_fault()
    {
        var channel = Channel(new Handler(async (request, token) =>
        {
            await request.Content!.CopyToAsync(Stream.Null, token);
            return new HttpResponseMessage(HttpStatusCode.OK);
        }), timeout: TimeSpan.FromMilliseconds(100));
        for (var i = 0; i < 4; i++)
        {
            var callerBody = new CallerBodyStream(new StalledStream());
            var request = new HttpRequestMessage(HttpMethod.Post, "http://127.0.0.1:1/x") { Content = new StreamContent(callerBody) };
            request.Options.Set(CallerBodyStream.Key, callerBody);
            var fault = await Assert.ThrowsAsync<CallerFaultException>(async () => await channel.SendAsync(request, Ok, default));
            Assert.True(fault.TimedOut);
        }
        Assert.Equal(CircuitState.Closed, channel.BreakerState);
    }

    [Fact]
    public async Task A_timeout_of_an_app_that_has_the_whole_body_is_the_apps_failure()
    {
        var channel = Channel(new Handler(async (request, token) =>
        {
            await request.Content!.CopyToAsync(Stream.Null, token);
            await Task.Delay(Timeout.Infinite, token);
            return new HttpResponseMessage(HttpStatusCode.OK);
        }), timeout: TimeSpan.FromMilliseconds(100));
        for (var i = 0; i < 2; i++)
        {
            var callerBody = new CallerBodyStream(new MemoryStream(new byte[1000]));
            var request = new HttpRequestMessage(HttpMethod.Post, "http://127.0.0.1:1/x") { Content = new StreamContent(callerBody) };
            request.Options.Set(CallerBodyStream.Key, callerBody);
            await Assert.ThrowsAsync<TimeoutException>(async () => await channel.SendAsync(request, Ok, default));
        }
        Assert.Equal(CircuitState.Open, channel.BreakerState);
    }

    private sealed class Handler(Func<HttpRequestMessage, CancellationToken, Task<HttpResponseMessage>> send) : HttpMessageHandler
    {
        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) => send(request, cancellationToken);
    }

    /// <summary>A caller's body that ends before its announced length, the way Kestrel reports it.</summary>
    private sealed class BreakingStream : MemoryStream
    {
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            ValueTask.FromException<int>(new IOException("Unexpected end of request content."));
    }

    /// <summary>A caller that never sends the rest of its body.</summary>
    private sealed class StalledStream : MemoryStream
    {
        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            await Task.Delay(Timeout.Infinite, cancellationToken);
            return 0;
        }
    }
}
