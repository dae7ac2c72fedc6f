using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using CsCheck;
using Grpc.Core;
using Grpc.Net.Client;
using SharedRuntime.FuzzTests.Generators;

namespace SharedRuntime.FuzzTests;

/// <summary>How a run is sized and seeded; every field can be set from the environment for local runs.</summary>
internal sealed record FuzzSettings(int Cases, ulong Seed, int Concurrency, TimeSpan TimeCap, IReadOnlyList<string> Replay)
{
    /// <summary>The CI run: 50,000 cases from a fixed seed, 16 at a time, stopped after 4 minutes at the latest.</summary>
    public const int DefaultCases = 50_000;
    public const ulong DefaultSeed = 20_251_010;

    /// <summary>
    /// <c>SHAREDRUNTIME_FUZZ_CASES</c> (count), <c>SHAREDRUNTIME_FUZZ_SEED</c> (run seed, a number),
    /// <c>SHAREDRUNTIME_FUZZ_REPLAY</c> (comma-separated case seeds as printed by a failing run: only those cases run),
    /// <c>SHAREDRUNTIME_FUZZ_SECONDS</c> (time cap).
    /// </summary>
    public static FuzzSettings FromEnvironment()
    {
        var replay = (Environment.GetEnvironmentVariable("SHAREDRUNTIME_FUZZ_REPLAY") ?? "")
            .Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return new FuzzSettings(
            replay.Length > 0 ? replay.Length : int.TryParse(Environment.GetEnvironmentVariable("SHAREDRUNTIME_FUZZ_CASES"), CultureInfo.InvariantCulture, out var cases) ? cases : DefaultCases,
            ulong.TryParse(Environment.GetEnvironmentVariable("SHAREDRUNTIME_FUZZ_SEED"), CultureInfo.InvariantCulture, out var seed) ? seed : DefaultSeed,
            16,
            TimeSpan.FromSeconds(int.TryParse(Environment.GetEnvironmentVariable("SHAREDRUNTIME_FUZZ_SECONDS"), CultureInfo.InvariantCulture, out var seconds) ? seconds : 240),
            replay);
    }
}

/// <summary>One input the runtime answered wrongly, with what to send again to see it.</summary>
internal sealed record FuzzFinding(string CaseSeed, string Problem, string Request, string Answer)
{
    public override string ToString() => $"case seed {CaseSeed}: {Problem}\n  request: {Request.Replace("\n", "\n  ", StringComparison.Ordinal)}\n  answer: {Answer}";
}

/// <summary>
/// Sends the generated cases as the attacker, <see cref="FuzzSettings.Concurrency"/> at a time, while the bystander
/// keeps saving, reading, publishing and invoking; collects every wrong answer, every bystander error, and whether the
/// process survived. Case <c>i</c> is generated from <c>new PCG(i, seed)</c>, so a printed case seed replays it alone.
/// </summary>
internal sealed class FuzzRun(FuzzNode node, FuzzSettings settings)
{
    private const int MaxFindings = 200;
    private static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(20);

    private static readonly Gen<object> Cases = Gen.Frequency(
        (3, HttpCases.All.Select(c => (object)c)),
        (2, GrpcCases.All.Select(c => (object)c)));

    private readonly ConcurrentQueue<FuzzFinding> _findings = new();
    private readonly ConcurrentQueue<string> _bystanderErrors = new();
    private readonly ConcurrentQueue<string> _transportErrors = new();
    private readonly ConcurrentDictionary<string, int> _answers = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, string> _examples = new(StringComparer.Ordinal);
    private int _next = -1;
    private int _sent;
    private int _httpSent;
    private int _grpcSent;
    private int _transportErrorCount;
    private int _bystanderRequests;
    private readonly ConcurrentDictionary<string, (object Case, long Started)> _inFlight = new(StringComparer.Ordinal);
    private readonly ConcurrentQueue<(double Seconds, string Case)> _slow = new();

    public IReadOnlyCollection<FuzzFinding> Findings => _findings;
    public IReadOnlyCollection<string> BystanderErrors => _bystanderErrors;
    public IReadOnlyCollection<string> TransportErrors => _transportErrors;
    public int TransportErrorCount => _transportErrorCount;
    public int Sent => _sent;
    public int HttpSent => _httpSent;
    public int GrpcSent => _grpcSent;
    public int BystanderRequests => _bystanderRequests;
    public bool TimedOut { get; private set; }
    public TimeSpan Elapsed { get; private set; }

    /// <summary>Cases that took a second or more, slowest first, with their time: what a run that ran out of time was waiting on.</summary>
    public IEnumerable<string> SlowCases => _slow.OrderByDescending(c => c.Seconds).Take(10).Select(c => $"{c.Seconds:0.0} s: {c.Case}");

    /// <summary>Cases still unanswered when the run ended, longest first.</summary>
    public IEnumerable<string> Unanswered => _inFlight
        .Select(c => (Seconds: Stopwatch.GetElapsedTime(c.Value.Started).TotalSeconds, Text: $"case seed {c.Key}: {c.Value.Case}"))
        .OrderByDescending(c => c.Seconds).Take(10).Select(c => $"{c.Seconds:0.0} s so far: {c.Text}");

    /// <summary>Answers by route and status, for the log.</summary>
    public IReadOnlyDictionary<string, int> Answers => _answers;

    /// <summary>The first request that got each kind of answer.</summary>
    public IReadOnlyDictionary<string, string> Examples => _examples;

    public async Task RunAsync()
    {
        using var http = NewHttpClient();
        // Kestrel ends a whole HTTP/2 connection over a header it cannot accept (non-ASCII bytes): such calls each get a
        // connection of their own (see WorkerAsync), so that they take no other case down with them. When they shared
        // one channel, every such call after some point in a run could wait out its 20 s deadline (unknown methods
        // too, so below the runtime's handlers) and the run its time cap, while the bystander was served throughout.
        using var grpc = NewChannel();
        using var bystanderGrpc = NewChannel();
        using var deadline = new CancellationTokenSource(settings.TimeCap);
        using var attackOver = new CancellationTokenSource();
        var bystander = Task.Run(() => BystanderAsync(bystanderGrpc.CreateCallInvoker(), attackOver.Token));
        var clock = Stopwatch.StartNew();
        var workers = Enumerable.Range(0, settings.Concurrency)
            .Select(_ => Task.Run(() => WorkerAsync(http, grpc.CreateCallInvoker(), deadline.Token))).ToArray();
        await Task.WhenAll(workers);
        Elapsed = clock.Elapsed;
        TimedOut = deadline.IsCancellationRequested && _sent < settings.Cases;
        await attackOver.CancelAsync();
        await bystander;
    }

    private async Task WorkerAsync(HttpClient http, CallInvoker grpc, CancellationToken deadline)
    {
        while (!deadline.IsCancellationRequested && _findings.Count < MaxFindings && !node.Runtime.Process.HasExited)
        {
            var index = Interlocked.Increment(ref _next);
            if (index >= settings.Cases)
            {
                return;
            }
            var pcg = settings.Replay.Count > 0 ? PCG.Parse(settings.Replay[index]) : new PCG((uint)index, settings.Seed);
            var caseSeed = pcg.ToString();
            object fuzzCase;
            try
            {
                fuzzCase = Cases.Generate(pcg, null!, out _);
            }
            catch (Exception ex)
            {
                _findings.Enqueue(new FuzzFinding(caseSeed, "the generator threw", "", ex.ToString()));
                continue;
            }
            Interlocked.Increment(ref _sent);
            var started = Stopwatch.GetTimestamp();
            _inFlight[caseSeed] = (fuzzCase, started);
            if (fuzzCase is HttpCase httpCase)
            {
                Interlocked.Increment(ref _httpSent);
                await SendAsync(http, httpCase, caseSeed);
            }
            else
            {
                Interlocked.Increment(ref _grpcSent);
                var grpcCase = (GrpcCase)fuzzCase;
                if (grpcCase.Metadata.Any(m => m.Value.Any(c => c > '~')))
                {
                    using var own = NewChannel();
                    await SendAsync(own.CreateCallInvoker(), grpcCase, caseSeed);
                }
                else
                {
                    await SendAsync(grpc, grpcCase, caseSeed);
                }
            }
            _inFlight.TryRemove(caseSeed, out _);
            var took = Stopwatch.GetElapsedTime(started).TotalSeconds;
            if (took >= 1 && _slow.Count < 1000)
            {
                _slow.Enqueue((took, $"case seed {caseSeed}: {fuzzCase}"));
            }
        }
    }

    private async Task SendAsync(HttpClient http, HttpCase fuzzCase, string caseSeed)
    {
        using var timeout = new CancellationTokenSource(RequestTimeout);
        try
        {
            using var request = new HttpRequestMessage(new HttpMethod(fuzzCase.Method),
                new Uri(node.Runtime.Process.HttpAddress + fuzzCase.Target.TrimStart('/'), new UriCreationOptions { DangerousDisablePathAndQueryCanonicalization = true }));
            if (fuzzCase.Token is { } token)
            {
                request.Headers.TryAddWithoutValidation("dapr-api-token", token);
            }
            foreach (var (name, value) in fuzzCase.Headers)
            {
                request.Headers.TryAddWithoutValidation(name, value);
            }
            if (fuzzCase.Body.Length > 0 || fuzzCase.ContentType is not null)
            {
                request.Content = new ByteArrayContent(fuzzCase.Body);
                if (fuzzCase.ContentType is { } contentType)
                {
                    request.Content.Headers.TryAddWithoutValidation("Content-Type", contentType);
                }
            }
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token);
            var body = await ReadPrefixAsync(response.Content, timeout.Token);
            var status = (int)response.StatusCode;
            var fromApp = response.Headers.Contains(FuzzNode.AppAnswerHeader);
            // Refusals by the HTTP server itself (a request line or header it cannot parse) carry no Dapr error body.
            var by = fromApp ? " (app)" : status >= 400 && !body.Contains("\"errorCode\"", StringComparison.Ordinal) ? " (server)" : "";
            var key = $"{fuzzCase.Route} {status}{by}";
            _answers.AddOrUpdate(key, 1, static (_, n) => n + 1);
            _examples.TryAdd(key, $"case seed {caseSeed}: {fuzzCase}\n  answer: {FuzzText.Printable(body, 200)}");
            var problem = FuzzVerdict.OfHttp(status, fromApp, body);
            if (problem is not null)
            {
                _findings.Enqueue(new FuzzFinding(caseSeed, problem, fuzzCase.ToString(), $"{status} {FuzzText.Printable(body, 600)}"));
            }
        }
        catch (Exception ex) when (ex is HttpRequestException or OperationCanceledException or IOException)
        {
            Transport(fuzzCase.ToString(), caseSeed, ex);
        }
    }

    private async Task SendAsync(CallInvoker grpc, GrpcCase fuzzCase, string caseSeed)
    {
        var headers = new Metadata();
        if (fuzzCase.Token is { } token)
        {
            headers.Add("dapr-api-token", token);
        }
        foreach (var (name, value) in fuzzCase.Metadata)
        {
            if (name.EndsWith("-bin", StringComparison.Ordinal))
            {
                headers.Add(name, Encoding.Latin1.GetBytes(value));
            }
            else
            {
                headers.Add(name, value);
            }
        }
        var options = new CallOptions(headers, DateTime.UtcNow + (fuzzCase.ServerStreaming ? TimeSpan.FromMilliseconds(500) : RequestTimeout));
        try
        {
            if (fuzzCase.ServerStreaming)
            {
                using var call = grpc.AsyncServerStreamingCall(RawMethod(fuzzCase.Method, MethodType.ServerStreaming), null, options, fuzzCase.Payload);
                while (await call.ResponseStream.MoveNext(CancellationToken.None))
                {
                }
            }
            else
            {
                using var call = grpc.AsyncUnaryCall(RawMethod(fuzzCase.Method, MethodType.Unary), null, options, fuzzCase.Payload);
                await call.ResponseAsync;
            }
            _answers.AddOrUpdate($"grpc {fuzzCase.Method} OK", 1, static (_, n) => n + 1);
        }
        catch (RpcException ex)
        {
            _answers.AddOrUpdate($"grpc {fuzzCase.Method} {ex.StatusCode}", 1, static (_, n) => n + 1);
            if (ex.StatusCode == StatusCode.DeadlineExceeded && fuzzCase.ServerStreaming)
            {
                return;
            }
            if (ex.Status.DebugException is not null)
            {
                // The client could not complete the call (connection reset, protocol error): a transport error.
                Transport(fuzzCase.ToString(), caseSeed, ex);
                return;
            }
            var problem = FuzzVerdict.OfGrpc(ex.StatusCode, ex.Status.Detail);
            if (problem is not null)
            {
                _findings.Enqueue(new FuzzFinding(caseSeed, problem, fuzzCase.ToString(), $"{ex.StatusCode} {FuzzText.Printable(ex.Status.Detail, 600)}"));
            }
        }
    }

    private void Transport(string request, string caseSeed, Exception ex)
    {
        Interlocked.Increment(ref _transportErrorCount);
        var kind = ex is RpcException rpc ? $"gRPC {rpc.Status.DebugException?.Message ?? rpc.Status.Detail}" : $"HTTP {ex.GetType().Name}: {ex.Message}";
        _answers.AddOrUpdate($"transport error: {kind[..Math.Min(kind.Length, 110)]}", 1, static (_, n) => n + 1);
        if (_transportErrors.Count < 20)
        {
            _transportErrors.Enqueue($"case seed {caseSeed}: {ex.GetType().Name}: {ex.Message}\n  request: {request.Replace("\n", "\n  ", StringComparison.Ordinal)}");
        }
    }

    /// <summary>
    /// The other tenant, all through the attack: saves and reads back a value in both state stores, publishes to a
    /// topic its app subscribes to, invokes its own app, and reads state over gRPC. Every failure is recorded.
    /// </summary>
    private async Task BystanderAsync(CallInvoker grpc, CancellationToken attackOver)
    {
        using var client = node.Runtime.NewClient(FuzzNode.BystanderToken, RequestTimeout);
        using var pace = new PeriodicTimer(TimeSpan.FromMilliseconds(50));
        var round = 0;
        var getState = RawMethod("GetState", MethodType.Unary);
        while (!attackOver.IsCancellationRequested)
        {
            round++;
            var value = $"round-{round}";
            await Bystander($"save statestore {round}", async () =>
            {
                using var save = await client.PostAsync("/v1.0/state/statestore", Json($$"""[{"key":"probe","value":"{{value}}"}]"""));
                return save.StatusCode == HttpStatusCode.NoContent ? null : $"{(int)save.StatusCode} {await save.Content.ReadAsStringAsync()}";
            });
            await Bystander($"get statestore {round}", async () =>
            {
                using var get = await client.GetAsync("/v1.0/state/statestore/probe");
                var body = await get.Content.ReadAsStringAsync();
                return get.StatusCode == HttpStatusCode.OK && body.Contains(value, StringComparison.Ordinal) ? null : $"{(int)get.StatusCode} {body}";
            });
            await Bystander($"save durable {round}", async () =>
            {
                using var save = await client.PostAsync("/v1.0/state/durable", Json($$$"""[{"key":"probe-{{{round % 50}}}","value":{"round":{{{round}}}}}]"""));
                return save.StatusCode == HttpStatusCode.NoContent ? null : $"{(int)save.StatusCode} {await save.Content.ReadAsStringAsync()}";
            });
            await Bystander($"publish {round}", async () =>
            {
                using var publish = await client.PostAsync("/v1.0/publish/pubsub/bystander-orders", Json($$$"""{"round":{{{round}}}}"""));
                return publish.StatusCode == HttpStatusCode.NoContent ? null : $"{(int)publish.StatusCode} {await publish.Content.ReadAsStringAsync()}";
            });
            await Bystander($"invoke {round}", async () =>
            {
                using var invoke = await client.PostAsync("/v1.0/invoke/bystander/method/echo", Json(value));
                var body = await invoke.Content.ReadAsStringAsync();
                return invoke.StatusCode == HttpStatusCode.OK && body.Contains(value, StringComparison.Ordinal) ? null : $"{(int)invoke.StatusCode} {body}";
            });
            await Bystander($"gRPC GetState {round}", async () =>
            {
                var request = new Dapr.Client.Autogen.Grpc.v1.GetStateRequest { StoreName = "statestore", Key = "probe" };
                using var call = grpc.AsyncUnaryCall(getState, null,
                    new CallOptions(new Metadata { { "dapr-api-token", FuzzNode.BystanderToken } }, DateTime.UtcNow + RequestTimeout), Google.Protobuf.MessageExtensions.ToByteArray(request));
                var response = Dapr.Client.Autogen.Grpc.v1.GetStateResponse.Parser.ParseFrom(await call.ResponseAsync);
                return response.Data.ToStringUtf8().Contains("round-", StringComparison.Ordinal) ? null : $"unexpected value {response.Data.ToStringUtf8()}";
            });
            try
            {
                await pace.WaitForNextTickAsync(attackOver);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private async Task Bystander(string what, Func<Task<string?>> call)
    {
        Interlocked.Increment(ref _bystanderRequests);
        try
        {
            if (await call() is { } problem)
            {
                _bystanderErrors.Enqueue($"{what}: {problem}");
            }
        }
        catch (Exception ex) when (ex is HttpRequestException or OperationCanceledException or IOException or RpcException)
        {
            _bystanderErrors.Enqueue($"{what}: {ex.GetType().Name}: {ex.Message}");
        }
    }

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    private static Method<byte[], byte[]> RawMethod(string name, MethodType type) =>
        new(type, "dapr.proto.runtime.v1.Dapr", name, Marshallers.Create(static b => b, static b => b), Marshallers.Create(static b => b, static b => b));

    /// <summary>Header values go on the wire byte for byte (Latin-1), so non-ASCII bytes reach the runtime as a hostile client sends them.</summary>
    private static SocketsHttpHandler NewHandler() => new()
    {
        RequestHeaderEncodingSelector = static (_, _) => Encoding.Latin1,
        ResponseHeaderEncodingSelector = static (_, _) => Encoding.Latin1,
        AllowAutoRedirect = false,
        UseCookies = false,
        EnableMultipleHttp2Connections = true,
        MaxConnectionsPerServer = 64,
    };

    private GrpcChannel NewChannel() => GrpcChannel.ForAddress(node.Runtime.Process.GrpcAddress, new GrpcChannelOptions
    {
        HttpHandler = NewHandler(),
        MaxReceiveMessageSize = 64 * 1024 * 1024,
        MaxSendMessageSize = null,
    });

    private static HttpClient NewHttpClient() => new(NewHandler()) { Timeout = Timeout.InfiniteTimeSpan };

    private static async Task<string> ReadPrefixAsync(HttpContent content, CancellationToken cancellationToken)
    {
        await using var stream = await content.ReadAsStreamAsync(cancellationToken);
        var buffer = new byte[64 * 1024];
        var total = 0;
        int read;
        while ((read = await stream.ReadAsync(buffer.AsMemory(total), cancellationToken)) > 0)
        {
            total += read;
            if (total == buffer.Length)
            {
                // Drain the rest without keeping it.
                var sink = new byte[16 * 1024];
                while (await stream.ReadAsync(sink, cancellationToken) > 0)
                {
                }
                break;
            }
        }
        return Encoding.UTF8.GetString(buffer, 0, total);
    }
}
