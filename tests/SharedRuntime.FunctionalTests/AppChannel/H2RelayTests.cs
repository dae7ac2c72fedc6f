using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using SharedRuntime.Http.Relay;

namespace SharedRuntime.FunctionalTests.AppChannel;

/// <summary>
/// The relay's HTTP/2 side against an h2c app that writes its answers frame by frame: a well-formed answer (Huffman-coded
/// headers, padding, a body in several frames) reaches the caller whole, and an app that breaks HTTP/2 in any way fails
/// only its own callers' calls, with the Dapr error and never a hang, while another tenant's app is served throughout.
/// </summary>
public sealed class H2RelayTests : IAsyncLifetime
{
    private TestApp _fine = null!;
    private RawH2App _raw = null!;
    private readonly TaskCompletionSource _release = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _hangReached = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _largeStarted = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile bool _largeFinished;
    private readonly System.Collections.Concurrent.ConcurrentQueue<(string Path, string Connection)> _calls = new();

    public async Task InitializeAsync()
    {
        _fine = await TestApp.StartAsync(async context =>
        {
            _calls.Enqueue((context.Request.Path.Value!, context.Connection.Id));
            switch (context.Request.Path.Value)
            {
                case "/hang":
                    _hangReached.TrySetResult();
                    await _release.Task.WaitAsync(context.RequestAborted);
                    break;
                case "/large":
                    // Far more than any window on the way: it moves only as fast as its caller reads.
                    _largeStarted.TrySetResult();
                    var chunk = new byte[64 * 1024];
                    for (var i = 0; i < 1024; i++)
                    {
                        await context.Response.Body.WriteAsync(chunk, context.RequestAborted);
                    }
                    _largeFinished = true;
                    break;
                default:
                    await context.Response.WriteAsync($"{context.Request.Protocol} {context.Request.Path}");
                    break;
            }
        }, Microsoft.AspNetCore.Server.Kestrel.Core.HttpProtocols.Http2);
        _raw = RawH2App.Start();
    }

    public async Task DisposeAsync()
    {
        _release.TrySetResult();
        await _fine.DisposeAsync();
        _raw.Dispose();
    }

    private Task<TestRuntime> StartAsync() => TestRuntime.StartAsync(
        AppResources.Tenant("caller", "caller-token", null) +
        AppResources.Tenant("other", "other-token", null) +
        AppResources.Tenant("fine", "fine-token", _fine.Address, "appProtocol: h2c\nappChannel:\n  timeout: 60s\n  maxConcurrency: 64\n") +
        AppResources.Tenant("raw", "raw-token", _raw.Address, """
            appProtocol: h2c
            appChannel:
              timeout: 1s
              breakAfterFailures: 1000
            """),
        options => options with { InvokeRelay = true, FairShare = false });

    private static long Relayed(TestRuntime runtime) => runtime.App.Services.GetRequiredService<InvokeRelay>().Relayed;

    [Fact]
    public async Task A_well_formed_answer_in_frames_reaches_the_caller_whole()
    {
        await using var runtime = await StartAsync();
        var client = runtime.Client("caller-token");

        // :status 201 (a literal with the static table's name), a Huffman-coded value ("www.example.com"), a padded HEADERS frame and a
        // body in three DATA frames, one of them padded.
        _raw.Next = stream => Concat(
            Frame(0x1, 0x4 | 0x8, stream, Concat([3], LiteralIndexedName(8, "201"), Literal("x-site", Huffman("f1e3c2e5f23a6ba0ab90f4ff"), huffman: true), [0, 0, 0])),
            Frame(0x0, 0, stream, "one,"u8.ToArray()),
            Frame(0x0, 0x8, stream, Concat([2], "two,"u8.ToArray(), [0, 0])),
            Frame(0x0, 0x1, stream, "three"u8.ToArray()));
        var response = await client.GetAsync("/v1.0/invoke/raw/method/x");
        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        Assert.Equal("www.example.com", response.Headers.GetValues("x-site").Single());
        Assert.Equal("one,two,three", await response.Content.ReadAsStringAsync());

        // With a length, and with none at all (the stream ends with its headers).
        _raw.Next = stream => Concat(
            Frame(0x1, 0x4, stream, Concat(Indexed(8), Literal("content-length", "2"u8.ToArray()))),
            Frame(0x0, 0x1, stream, "ok"u8.ToArray()));
        Assert.Equal("ok", await client.GetStringAsync("/v1.0/invoke/raw/method/x"));
        _raw.Next = stream => Frame(0x1, 0x4 | 0x1, stream, Indexed(8));
        var empty = await client.GetAsync("/v1.0/invoke/raw/method/x");
        Assert.Equal(HttpStatusCode.OK, empty.StatusCode);
        Assert.Equal("", await empty.Content.ReadAsStringAsync());
        Assert.Equal(3, Relayed(runtime));
        Assert.Equal("HTTP/2 /ok", await client.GetStringAsync("/v1.0/invoke/fine/method/ok"));
    }

    [Fact]
    public async Task Calls_to_an_h2c_app_share_its_connection_and_a_hung_one_holds_up_no_other()
    {
        await using var runtime = await StartAsync();
        var client = runtime.Client("caller-token");
        Assert.Equal("HTTP/2 /first", await client.GetStringAsync("/v1.0/invoke/fine/method/first"));

        var hung = client.GetAsync("/v1.0/invoke/fine/method/hang");
        await _hangReached.Task.WaitAsync(TimeSpan.FromSeconds(10));
        var others = await Task.WhenAll(Enumerable.Range(0, 20).Select(i => runtime.Client(i % 2 == 0 ? "caller-token" : "other-token")
            .GetStringAsync($"/v1.0/invoke/fine/method/other{i}")));
        Assert.All(others, (answer, i) => Assert.Equal($"HTTP/2 /other{i}", answer));
        Assert.False(hung.IsCompleted);

        // All of them were streams of one connection to the app, the hung call's included.
        Assert.Single(_calls.Select(c => c.Connection).Distinct());
        Assert.Equal(22, Relayed(runtime));
        _release.TrySetResult();
        Assert.Equal(System.Net.HttpStatusCode.OK, (await hung).StatusCode);
    }

    [Fact]
    public async Task A_caller_that_does_not_read_its_answer_holds_up_no_other_call_on_the_shared_connection()
    {
        await using var runtime = await StartAsync();
        // A caller that asks for a large answer and never reads it: its stream stops once its window is full.
        using var stalled = new TcpClient { ReceiveBufferSize = 4096 };
        await stalled.ConnectAsync(runtime.HttpAddress.Host, runtime.HttpAddress.Port);
        await stalled.GetStream().WriteAsync(Encoding.ASCII.GetBytes(
            $"GET /v1.0/invoke/fine/method/large HTTP/1.1\r\nHost: {runtime.HttpAddress.Authority}\r\ndapr-api-token: caller-token\r\n\r\n"));
        await _largeStarted.Task.WaitAsync(TimeSpan.FromSeconds(10));

        // Every other call, the other tenant's too, goes through the same connection meanwhile.
        for (var i = 0; i < 20; i++)
        {
            var client = runtime.Client(i % 2 == 0 ? "caller-token" : "other-token");
            Assert.Equal($"HTTP/2 /after{i}", await client.GetStringAsync($"/v1.0/invoke/fine/method/after{i}"));
        }
        Assert.Single(_calls.Select(c => c.Connection).Distinct());
        Assert.False(_largeFinished); // the large answer (64 MiB) was still held up by its caller all along
    }

    public static TheoryData<string> BrokenAnswers => new()
    {
        "not-http2",
        "oversized-frame",
        "bad-hpack-index",
        "uppercase-name",
        "no-status",
        "reset",
        "data-first",
        "push",
        "ping-flood",
        "go-away",
        "truncated-huffman",
    };

    [Theory]
    [MemberData(nameof(BrokenAnswers))]
    public async Task An_app_that_breaks_http2_fails_its_own_call_and_another_tenants_app_is_served(string broken)
    {
        await using var runtime = await StartAsync();
        var client = runtime.Client("caller-token");
        _raw.Next = stream => broken switch
        {
            "not-http2" => "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"u8.ToArray(),
            "oversized-frame" => Concat([0x10, 0, 0, 0x0, 0x1], BigEndian(stream), new byte[100]),
            "bad-hpack-index" => Frame(0x1, 0x4 | 0x1, stream, [0x88, 0xff, 0x7f]),
            "uppercase-name" => Frame(0x1, 0x4 | 0x1, stream, Concat(Indexed(8), Literal("X-Upper", "v"u8.ToArray()))),
            "no-status" => Frame(0x1, 0x4 | 0x1, stream, Literal("content-type", "text/plain"u8.ToArray())),
            "reset" => Frame(0x3, 0, stream, [0, 0, 0, 2]),
            "data-first" => Frame(0x0, 0x1, stream, "body"u8.ToArray()),
            "push" => Frame(0x5, 0x4, stream, Concat(BigEndian(2), Indexed(2))),
            "ping-flood" => Concat(Enumerable.Range(0, 400).Select(_ => Frame(0x6, 0, 0, new byte[8])).ToArray()),
            "go-away" => Frame(0x7, 0, 0, Concat(BigEndian(0), [0, 0, 0, 0])),
            "truncated-huffman" => Frame(0x1, 0x4 | 0x1, stream, Concat([0x88, 0x00, 0x01, (byte)'x', 0x85, 0xf1, 0xe3])),
            _ => throw new ArgumentOutOfRangeException(nameof(broken)),
        };

        var response = await client.GetAsync("/v1.0/invoke/raw/method/x");

        Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
        Assert.Contains("\"errorCode\":\"ERR_DIRECT_INVOKE\"", await response.Content.ReadAsStringAsync());
        Assert.Equal(1, Relayed(runtime));
        Assert.Equal("HTTP/2 /still-here", await client.GetStringAsync("/v1.0/invoke/fine/method/still-here"));
        Assert.Equal(HttpStatusCode.OK, (await runtime.Client("other-token").GetAsync("/v1.0/metadata")).StatusCode);
    }

    [Fact]
    public async Task An_app_that_allows_no_streams_fails_its_own_calls_within_its_bound_of_connections()
    {
        await using var runtime = await StartAsync();
        var client = runtime.Client("caller-token");
        // SETTINGS_MAX_CONCURRENT_STREAMS 0 on every connection, and any stream opened before the settings arrive refused.
        _raw.Greeting = Frame(0x4, 0, 0, [0, 0x3, 0, 0, 0, 0]);
        _raw.Next = stream => Frame(0x3, 0, stream, [0, 0, 0, 7]);
        try
        {
            // Each call finds the app's connections full and opens another (two, with the retry of a refused stream),
            // until the app has the 64 connections any app is given: past that, calls fail without a new one.
            for (var i = 0; i < 40; i++)
            {
                var response = await client.GetAsync("/v1.0/invoke/raw/method/x");
                Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
                Assert.Contains("\"errorCode\":\"ERR_DIRECT_INVOKE\"", await response.Content.ReadAsStringAsync());
            }
            Assert.InRange(_raw.Accepted, 1, 64);
            Assert.Equal("HTTP/2 /still-here", await client.GetStringAsync("/v1.0/invoke/fine/method/still-here"));
            Assert.Equal(HttpStatusCode.OK, (await runtime.Client("other-token").GetAsync("/v1.0/metadata")).StatusCode);
        }
        finally
        {
            _raw.Greeting = [];
        }
    }

    [Fact]
    public async Task A_connection_the_app_goes_away_from_is_closed_once_its_last_call_is_answered()
    {
        await using var runtime = await StartAsync();
        var client = runtime.Client("caller-token");
        // A GOAWAY that still takes the stream it comes with, then that stream's answer; the app never closes the
        // connection itself, so each one left open by the runtime would stay open for good.
        _raw.Next = stream => Concat(Frame(0x7, 0, 0, Concat(BigEndian(stream), [0, 0, 0, 0])), Frame(0x1, 0x4 | 0x1, stream, Indexed(8)));
        var before = _raw.Accepted;
        for (var i = 0; i < 5; i++)
        {
            Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/v1.0/invoke/raw/method/x")).StatusCode);
        }
        // Each call took a new connection (the one before went away), and the runtime closed each once it was answered.
        Assert.Equal(5, _raw.Accepted - before);
        await Eventually.TrueAsync(() => Task.FromResult(_raw.Ended == _raw.Accepted), TimeSpan.FromSeconds(10));
        Assert.Equal("HTTP/2 /still-here", await client.GetStringAsync("/v1.0/invoke/fine/method/still-here"));
        Assert.Equal(HttpStatusCode.OK, (await runtime.Client("other-token").GetAsync("/v1.0/metadata")).StatusCode);
    }

    [Fact]
    public async Task An_app_that_pings_without_reading_is_cut_off_once_a_mebibyte_of_answers_waits()
    {
        // Each PING is owed an answer, which the relay writes to the app; an app that never reads them would have the
        // runtime hold them all. Past 1 MiB unsent, the relay gives the connection up (the kernel's buffers hold some
        // more before that: far less than the 64 MiB of PINGs the app would send).
        await using var runtime = await StartAsync();
        var client = runtime.Client("caller-token");
        _raw.PingFlood = true;
        try
        {
            var response = await client.GetAsync("/v1.0/invoke/raw/method/x");
            Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
            var written = await _raw.Flooded.WaitAsync(TimeSpan.FromSeconds(60));
            Assert.InRange(written, 1, RawH2App.PingFloodBytes / 4);
        }
        finally
        {
            _raw.PingFlood = false;
        }
        Assert.Equal("HTTP/2 /still-here", await client.GetStringAsync("/v1.0/invoke/fine/method/still-here"));
        Assert.Equal(HttpStatusCode.OK, (await runtime.Client("other-token").GetAsync("/v1.0/metadata")).StatusCode);
    }

    [Fact]
    public async Task A_body_that_breaks_off_or_overruns_its_length_cuts_the_callers_connection_and_nothing_else()
    {
        await using var runtime = await StartAsync();
        var client = runtime.Client("caller-token");
        var head = Concat(Indexed(8), Literal("content-length", "10"u8.ToArray()));

        // Shorter than its length, then the stream ends; longer than its length; and stopped half-way (the app's 1s
        // timeout passes without a frame).
        _raw.Next = stream => Concat(Frame(0x1, 0x4, stream, head), Frame(0x0, 0x1, stream, "short"u8.ToArray()));
        await Assert.ThrowsAnyAsync<HttpRequestException>(() => client.GetStringAsync("/v1.0/invoke/raw/method/x"));
        _raw.Next = stream => Concat(Frame(0x1, 0x4, stream, head), Frame(0x0, 0x1, stream, "far-too-long-a-body"u8.ToArray()));
        await Assert.ThrowsAnyAsync<HttpRequestException>(() => client.GetStringAsync("/v1.0/invoke/raw/method/x"));
        _raw.Next = stream => Concat(Frame(0x1, 0x4, stream, head), Frame(0x0, 0, stream, "part"u8.ToArray()));
        await Assert.ThrowsAnyAsync<HttpRequestException>(() => client.GetStringAsync("/v1.0/invoke/raw/method/x"));

        // (A client may send a request again on a connection cut before any answer: each was relayed at least once.)
        Assert.True(Relayed(runtime) >= 3);
        Assert.Equal("HTTP/2 /still-here", await client.GetStringAsync("/v1.0/invoke/fine/method/still-here"));
    }

    private static byte[] Frame(byte type, byte flags, int stream, byte[] payload)
    {
        var frame = new byte[9 + payload.Length];
        frame[0] = (byte)(payload.Length >> 16);
        frame[1] = (byte)(payload.Length >> 8);
        frame[2] = (byte)payload.Length;
        frame[3] = type;
        frame[4] = flags;
        BinaryPrimitives.WriteInt32BigEndian(frame.AsSpan(5), stream);
        payload.CopyTo(frame, 9);
        return frame;
    }

    private static byte[] BigEndian(int value)
    {
        var bytes = new byte[4];
        BinaryPrimitives.WriteInt32BigEndian(bytes, value);
        return bytes;
    }

    private static byte[] Concat(params byte[][] parts) => parts.SelectMany(p => p).ToArray();

    private static byte[] Huffman(string hex) => Convert.FromHexString(hex);

    /// <summary>An indexed field: the static table's entry at <paramref name="index"/> (8 is <c>:status 200</c>).</summary>
    private static byte[] Indexed(int index) => [(byte)(0x80 | index)];

    /// <summary>A literal field without indexing, its name raw, its value raw or already Huffman-coded.</summary>
    private static byte[] Literal(string name, byte[] value, bool huffman = false) =>
        Concat([0x00, (byte)name.Length], Encoding.ASCII.GetBytes(name), [(byte)(value.Length | (huffman ? 0x80 : 0))], value);

    /// <summary>A literal field without indexing whose name is the static table's entry at <paramref name="nameIndex"/>.</summary>
    private static byte[] LiteralIndexedName(int nameIndex, string value) =>
        Concat([(byte)nameIndex, (byte)value.Length], Encoding.ASCII.GetBytes(value));

    /// <summary>An h2c app that reads each request's frames and answers with whatever the test set, byte for byte.</summary>
    private sealed class RawH2App : RawTcpApp
    {
        public volatile Func<int, byte[]> Next = stream => [];

        /// <summary>Written on each new connection once the client's preface is read (nothing by default).</summary>
        public volatile byte[] Greeting = [];

        /// <summary>
        /// When set, a new connection is sent PING frames, up to <see cref="PingFloodBytes"/> of them, and not read again;
        /// the bytes written before the relay closed the connection are reported.
        /// </summary>
        public volatile bool PingFlood;

        public const int PingFloodBytes = 64 * 1024 * 1024;

        private readonly TaskCompletionSource<long> _flooded = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>How many bytes of PINGs the next flood wrote before its connection was closed (-1: all of them).</summary>
        public Task<long> Flooded => _flooded.Task;

        public static RawH2App Start()
        {
            var app = new RawH2App();
            app.Listen();
            return app;
        }

        protected override async Task ServeAsync(TcpClient client)
        {
            using var _ = client;
            var stream = client.GetStream();
            try
            {
                var preface = new byte[24];
                await stream.ReadExactlyAsync(preface);
                await stream.WriteAsync(Greeting);
                if (PingFlood)
                {
                    await FloodAsync(stream);
                    return;
                }
                var header = new byte[9];
                while (true)
                {
                    await stream.ReadExactlyAsync(header);
                    var length = (header[0] << 16) | (header[1] << 8) | header[2];
                    await stream.ReadExactlyAsync(new byte[length]);
                    var type = header[3];
                    var endStream = (header[4] & 0x1) != 0;
                    if (type is 0x0 or 0x1 && endStream)
                    {
                        var id = BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(5)) & int.MaxValue;
                        await stream.WriteAsync(Next(id));
                    }
                }
            }
            catch (Exception)
            {
                // The relay closed the connection, as it does after an answer it cannot use.
                Interlocked.Increment(ref _ended);
            }
        }

        private int _ended;

        /// <summary>Connections whose reading ended: closed by the relay (or broken).</summary>
        public int Ended => Volatile.Read(ref _ended);

        private async Task FloodAsync(NetworkStream stream)
        {
            var pings = Concat(Enumerable.Range(0, 4096).Select(_ => Frame(0x6, 0, 0, new byte[8])).ToArray());
            long written = 0;
            try
            {
                while (written < PingFloodBytes)
                {
                    await stream.WriteAsync(pings);
                    written += pings.Length;
                }
                _flooded.TrySetResult(-1);
            }
            catch (IOException)
            {
                _flooded.TrySetResult(written);
            }
        }
    }
}
