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

    public async Task InitializeAsync()
    {
        _fine = await TestApp.StartAsync(context => context.Response.WriteAsync($"{context.Request.Protocol} {context.Request.Path}"),
            Microsoft.AspNetCore.Server.Kestrel.Core.HttpProtocols.Http2);
        _raw = RawH2App.Start();
    }

    public async Task DisposeAsync()
    {
        await _fine.DisposeAsync();
        _raw.Dispose();
    }

    private Task<TestRuntime> StartAsync() => TestRuntime.StartAsync(
        AppResources.Tenant("caller", "caller-token", null) +
        AppResources.Tenant("other", "other-token", null) +
        AppResources.Tenant("fine", "fine-token", _fine.Address, "appProtocol: h2c\n") +
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
    private sealed class RawH2App : IDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);

        public volatile Func<int, byte[]> Next = stream => [];

        public Uri Address => new($"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}");

        public static RawH2App Start()
        {
            var app = new RawH2App();
            app._listener.Start();
            _ = app.AcceptAsync();
            return app;
        }

        private async Task AcceptAsync()
        {
            while (true)
            {
                TcpClient client;
                try
                {
                    client = await _listener.AcceptTcpClientAsync();
                }
                catch (Exception)
                {
                    return;
                }
                _ = ServeAsync(client);
            }
        }

        private async Task ServeAsync(TcpClient client)
        {
            using var _ = client;
            var stream = client.GetStream();
            try
            {
                var preface = new byte[24];
                await stream.ReadExactlyAsync(preface);
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
            }
        }

        public void Dispose() => _listener.Stop();
    }
}
