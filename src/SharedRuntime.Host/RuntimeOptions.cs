using System.Globalization;
using System.Text;
using SharedRuntime.Configuration;

namespace SharedRuntime.Host;

public enum RuntimeMode { Standalone, Kubernetes }

/// <summary>The runtime's command line. Every flag also has an environment form: SHAREDRUNTIME_ + the flag in capitals.</summary>
public sealed record RuntimeOptions
{
    public IReadOnlyList<string> ResourcesPaths { get; init; } = [];
    public int DaprHttpPort { get; init; } = 3500;
    public int DaprGrpcPort { get; init; } = 50001;
    public int MetricsPort { get; init; } = 9090;
    public IReadOnlyList<string> ListenAddresses { get; init; } = [];
    public RuntimeMode Mode { get; init; } = RuntimeMode.Standalone;
    public string LogLevel { get; init; } = "info";
    public bool LogAsJson { get; init; }
    public string? ConfigFile { get; init; }
    public int GracefulShutdownSeconds { get; init; } = 5;

    /// <summary>Kubernetes mode: the namespace resources are read from; null reads every namespace.</summary>
    public string? Namespace { get; init; }

    /// <summary>
    /// Kubernetes mode: the runtime's own Service (<c>NAMESPACE/NAME</c>), whose ready endpoints are the replicas that
    /// Tenants with cluster-wide limits share them between; null counts this runtime as the only one.
    /// </summary>
    public string? ClusterService { get; init; }

    /// <summary>
    /// Folders file-backed components (secretstores.local.file, state.sqlite) may open files in; never the state
    /// folder. Null: the mode's default, any folder but the state folder standalone (where only the operator writes
    /// resources) and none on Kubernetes (where namespaces write Components).
    /// </summary>
    public IReadOnlyList<string>? AllowedFileRoots { get; init; }

    /// <summary>The allowed file roots in effect: null allows any folder but the state folder.</summary>
    public IReadOnlyList<string>? EffectiveAllowedFileRoots => AllowedFileRoots ?? (Mode == RuntimeMode.Kubernetes ? [] : null);

    /// <summary>
    /// Kubernetes mode: the node this runtime serves (the flag, else <c>NODE_NAME</c>). Its Pods are watched so that a
    /// Tenant's token bound to its pods (<c>spec.identity</c>) is accepted only from their addresses; null watches none
    /// and refuses every bound token.
    /// </summary>
    public string? NodeName { get; init; }

    /// <summary>Kubernetes mode: how often the Secrets that resources name are read again, in seconds.</summary>
    public int SecretRefreshSeconds { get; init; } = 60;

    /// <summary>Kubernetes mode: a kubeconfig file; null uses the pod's service account (or the default kubeconfig outside a cluster).</summary>
    public string? Kubeconfig { get; init; }

    /// <summary>
    /// On drain, how long an HTTP/2 connection stays open after its final GOAWAY, so a client that started a stream
    /// before reading the GOAWAY learns it was not processed (and retries it on a new connection) instead of seeing a reset.
    /// </summary>
    public int DrainLingerMilliseconds { get; init; } = 1000;

    /// <summary>
    /// On drain, how long open connections keep being served after the listeners close and before Kestrel stops, so
    /// HTTP/1.1 clients leave after a response carrying <c>Connection: close</c>.
    /// </summary>
    public int DrainDelayMilliseconds { get; init; } = 1000;

    /// <summary>
    /// SO_REUSEPORT on the listen sockets (Linux): a new runtime process binds the same ports while this one still
    /// serves, for upgrades without refused connections. On by default on Linux; ignored elsewhere.
    /// </summary>
    public bool ReusePort { get; init; } = OperatingSystem.IsLinux();

    /// <summary>
    /// The Unix domain socket through which a new runtime process takes the listening sockets over from the running one
    /// (Linux): null for <c>handoff.sock</c> in the state folder, empty to neither ask nor answer.
    /// </summary>
    public string? HandoffSocket { get; init; }

    /// <summary>The hand-off socket's path, or null when hand-off is off.</summary>
    public string? EffectiveHandoffSocket => HandoffSocket switch
    {
        null => Path.Combine(EffectiveStateDir, "handoff.sock"),
        "" => null,
        var path => path,
    };

    /// <summary>Where the last good configuration is cached (fail-static); null for the default.</summary>
    public string? StateDir { get; init; }

    /// <summary>The state folder: the flag, else $XDG_STATE_HOME/shared-runtime, else a per-user folder in the temp dir.</summary>
    public string EffectiveStateDir => StateDir ?? DefaultStateDir(Environment.GetEnvironmentVariable);

    internal static string DefaultStateDir(Func<string, string?> environment) =>
        environment("XDG_STATE_HOME") is { Length: > 0 } xdg
            ? Path.Combine(xdg, "shared-runtime")
            : Path.Combine(Path.GetTempPath(), $"shared-runtime-{Environment.UserName}");
    public TenantLimits DefaultLimits { get; init; } = TenantLimits.Defaults;

    /// <summary>Bytes all tenants' requests in flight may hold together (each tenant also has its own budget).</summary>
    public long MaxMemoryBytes { get; init; } = Admission.MemoryBudget.DefaultNodeBytes;

    /// <summary>
    /// Measure the CPU time of each tenant's requests (<c>sharedruntime_tenant_cpu_seconds_total</c>) with the threads'
    /// CPU clocks; Linux only. Off by default: it costs two system calls per request and per resumption.
    /// </summary>
    public bool TenantCpuMetrics { get; init; } = false;

    /// <summary>
    /// While the process is saturated (its CPU, or work queued in its thread pool), share what the runtime serves among
    /// the tenants by their limits (max-min fair), rather than first come first served: a tenant far under its weighted
    /// share, sending a handful of requests, or keeping at most two requests in flight at a time (a client that waits for
    /// each answer, however fast it is answered) is not capped at all; the others are capped at their limit times a common
    /// level. While the process is not saturated it costs one read per request. On by default.
    /// </summary>
    public bool FairShare { get; init; } = true;

    /// <summary>
    /// Once ready, give back the resident pages of the executable and assemblies that start-up touched
    /// (<see cref="Lifecycle.StartupPages"/>); Linux only.
    /// </summary>
    public bool ReleaseStartupPages { get; init; } = true;

    /// <summary>
    /// Once a burst of reloads has settled, give back again the executable's pages <see cref="ReleaseStartupPages"/> gave
    /// back and the reloads touched (<see cref="Lifecycle.AfterReloads"/>): a few <c>madvise</c> calls per burst. On by default; does
    /// nothing when <see cref="ReleaseStartupPages"/> is off. Measured on the native build with 10,000 tenants, the first
    /// added Tenant otherwise kept about 6 MB of the executable resident (its unwind tables, read by the collection the
    /// reload triggers).
    /// </summary>
    public bool ReleasePagesAfterReload { get; init; } = true;

    /// <summary>
    /// The Dapr HTTP port relays the invocations it can itself (<see cref="SharedRuntime.Http.Relay.InvokeRelay"/>): a
    /// plain-HTTP app's invocation that every check lets through at once goes straight from the caller's connection to
    /// one of the app channel's own, without the HTTP server's request pipeline or the HTTP client. On by default; every
    /// other request is served as before.
    /// </summary>
    public bool InvokeRelay { get; init; } = true;

    /// <summary>Event-loop threads driving the relay's sockets; 0 for one per two cores (<see cref="SharedRuntime.Http.Relay.SocketLoops.DefaultCount"/>).</summary>
    public int RelayLoops { get; init; }

    /// <summary>
    /// What is collected after a burst of reloads (<see cref="Lifecycle.AfterReloads"/>): the young generations by default,
    /// and the whole heap once the live heap has grown by 2 MB since the last whole collection. Measured on the native build
    /// with 10,000 tenants: without it each added Tenant left about 0.4 MB more of the heap's pages resident (garbage the
    /// collector had yet to reach), with it RSS stays within 0.1 MB from the second addition on, at no measurable CPU
    /// (30 ms per reload either way, in 10 ms ticks); the full collection doubles a reload's CPU.
    /// </summary>
    public Lifecycle.ReloadCollection CollectAfterReload { get; init; } = Lifecycle.ReloadCollection.Young;

    /// <summary>
    /// One limiter and bulkhead for all tenants together, sized by the default limits: how a runtime without tenant
    /// isolation behaves. For comparisons in benchmarks only.
    /// </summary>
    public bool SharedAdmission { get; init; }

    /// <summary>
    /// Push-back on a tenant that keeps sending inside the Retry-After of its last 429: its further refusals are held
    /// until that wait has passed, at most this long, so its connections read nothing more meanwhile. 0 turns it off.
    /// </summary>
    public int PushbackMaxDelayMilliseconds { get; init; } = 1000;

    /// <summary>Requests held by push-back at once on the node (a quarter of them for any one tenant); past that a refusal is answered at once.</summary>
    public int PushbackMaxParked { get; init; } = 1024;

    /// <summary>
    /// Client connections open at once over all listeners (<see cref="SharedRuntime.Http.ConnectionLimit"/>); at most half
    /// the process's limit on open files, whose soft limit the runtime raises to the hard one at start.
    /// </summary>
    public int MaxConnections { get; init; } = 10_000;

    internal Admission.PushbackOptions Pushback => PushbackMaxDelayMilliseconds <= 0 || PushbackMaxParked <= 0
        ? Admission.PushbackOptions.Off
        : new(TimeSpan.FromMilliseconds(PushbackMaxDelayMilliseconds), PushbackMaxParked);

    /// <summary>
    /// Where spans are exported with OTLP (the flag, else <c>OTEL_EXPORTER_OTLP_ENDPOINT</c>); null exports none and
    /// traces nothing.
    /// </summary>
    public Uri? OtlpEndpoint { get; init; }

    /// <summary>OTLP over gRPC (the default) or HTTP with protobuf bodies.</summary>
    public bool OtlpHttpProtobuf { get; init; }

    /// <summary>The share of a tenant's calls traced when its Configuration sets no <c>tracing.samplingRate</c>.</summary>
    public double TraceSamplingRate { get; init; } = 1;

    /// <summary>
    /// Hosts invocation may reach outside the runtime's apps, for HTTPEndpoints and invoke-by-URL alike: <c>host</c>,
    /// <c>host:port</c>, <c>*.domain</c> or <c>*</c>. Empty (the default): none, and both are refused with a 403.
    /// </summary>
    public IReadOnlyList<string> AllowedInvokeHosts { get; init; } = [];

    /// <summary>The allowlist as invocation checks it (the flag's patterns were checked when it was read).</summary>
    internal AppChannel.InvokeAllowlist InvokeAllowlist => AppChannel.InvokeAllowlist.Parse(AllowedInvokeHosts);

    /// <summary>Addresses to listen on: the flag, else 127.0.0.1 standalone and 0.0.0.0 on Kubernetes.</summary>
    public IReadOnlyList<string> EffectiveListenAddresses =>
        ListenAddresses.Count > 0 ? ListenAddresses : [Mode == RuntimeMode.Kubernetes ? "0.0.0.0" : "127.0.0.1"];

    /// <summary>The resource folders: the flag, else the sample folder shipped beside the executable.</summary>
    public IReadOnlyList<string> EffectiveResourcesPaths =>
        ResourcesPaths.Count > 0 ? ResourcesPaths : [Path.Combine(AppContext.BaseDirectory, "resources")];

    private sealed record Flag(string Name, string Value, string Help, Func<RuntimeOptions, string, RuntimeOptions> Apply, string[]? Aliases = null)
    {
        public string Environment => "SHAREDRUNTIME_" + Name.TrimStart('-').Replace('-', '_').ToUpperInvariant();
    }

    private static readonly Flag[] Flags =
    [
        new("--resources-path", "DIR", "folder of Component and Tenant resource files; repeatable (default: the sample folder shipped with the runtime)",
            (o, v) => o with { ResourcesPaths = [.. o.ResourcesPaths, .. v.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)] }, ["--components-path"]),
        new("--dapr-http-port", "PORT", "port of the Dapr HTTP API (default 3500)", (o, v) => o with { DaprHttpPort = Port(v) }),
        new("--dapr-grpc-port", "PORT", "port of the Dapr gRPC API, HTTP/2 cleartext (default 50001)", (o, v) => o with { DaprGrpcPort = Port(v) }),
        new("--metrics-port", "PORT", "port of the Prometheus /metrics endpoint (default 9090)", (o, v) => o with { MetricsPort = Port(v) }),
        new("--dapr-listen-addresses", "ADDR[,ADDR]", "addresses to listen on (default 127.0.0.1 standalone, 0.0.0.0 kubernetes)",
            (o, v) => o with { ListenAddresses = v.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) }),
        new("--mode", "standalone|kubernetes", "where resources come from: resource folders (standalone, the default) or the Kubernetes API (kubernetes)", (o, v) => o with
        {
            Mode = v switch
            {
                "standalone" => RuntimeMode.Standalone,
                "kubernetes" => RuntimeMode.Kubernetes,
                _ => throw new FormatException($"--mode must be standalone or kubernetes, not '{v}'"),
            },
        }),
        new("--namespace", "NS", "kubernetes mode: read Tenants, Components and the rest from this namespace only (default: all namespaces)",
            (o, v) => o with { Namespace = v }),
        new("--kubeconfig", "FILE", "kubernetes mode: reach the API server with this kubeconfig (default: the pod's service account, else ~/.kube/config)",
            (o, v) => o with { Kubeconfig = v }),
        new("--allowed-file-roots", "DIR[,DIR]|none", "folders file-backed components (secretstores.local.file, state.sqlite) may open files in; the state folder never (default: any folder but the state folder standalone, none in kubernetes mode)",
            (o, v) => o with { AllowedFileRoots = v == "none" ? [] : v.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) }),
        new("--node-name", "NAME", "kubernetes mode: the node this runtime serves, whose Pods are watched to bind Tenant tokens to their pods (default: NODE_NAME; none: every token bound with spec.identity is refused)",
            (o, v) => o with { NodeName = v }),
        new("--secret-refresh-seconds", "N", "kubernetes mode: how often the Secrets that Tenants and Components name are read again by name, so a rotated token applies (default 60)",
            (o, v) => o with { SecretRefreshSeconds = (int)Number(v, 1, 86400) }),
        new("--cluster-service", "NAMESPACE/NAME", "kubernetes mode: the runtime's own Service; Tenants with limits.scope cluster get limit / its ready replicas (counted from its EndpointSlices) on each runtime (default: none, each runtime counts as the only one)",
            (o, v) => o with { ClusterService = Kubernetes.ServiceReference.Parse(v).ToString() }),
        new("--log-level", "LEVEL", "debug, info, warn or error (default info)", (o, v) => o with
        {
            LogLevel = v is "debug" or "info" or "warn" or "error" ? v : throw new FormatException($"--log-level must be debug, info, warn or error, not '{v}'"),
        }),
        new("--log-as-json", "[true|false]", "write logs as JSON lines", (o, v) => o with { LogAsJson = Bool(v) }),
        new("--config", "FILE", "a Dapr Configuration resource file (checked to exist; its settings are not applied yet)", (o, v) => o with { ConfigFile = v }),
        new("--dapr-graceful-shutdown-seconds", "N", "how long to finish requests in flight on shutdown (default 5)", (o, v) => o with { GracefulShutdownSeconds = (int)Number(v, 0, 3600) }),
        new("--drain-linger-ms", "N", "on drain (hand-off or shutdown), how long HTTP/2 connections stay open after their final GOAWAY so clients move their next calls to the new process (default 1000)",
            (o, v) => o with { DrainLingerMilliseconds = (int)Number(v, 0, 60_000) }),
        new("--drain-delay-ms", "N", "on shutdown, how long open connections keep being served (HTTP/1.1 responses with Connection: close) after the listeners close and before the server stops (default 1000)",
            (o, v) => o with { DrainDelayMilliseconds = (int)Number(v, 0, 60_000) }),
        new("--reuse-port", "[true|false]", "let a new runtime process bind the same ports while this one still serves, for handover on upgrade (default true on Linux; Linux only)",
            (o, v) => o with { ReusePort = Bool(v) }),
        new("--handoff-socket", "PATH|none", "Unix socket through which a new runtime process on the node asks this one for its listening sockets, so no queued connection is lost on upgrade; created mode 0600, answers the same user only; none turns hand-off off (default handoff.sock in the state folder; Linux only)",
            (o, v) => o with { HandoffSocket = v is "none" or "" ? "" : v }),
        new("--state-dir", "DIR", "where the last good configuration is cached, to start from it when the resources cannot be read (default $XDG_STATE_HOME/shared-runtime, else a per-user folder in the temp dir)",
            (o, v) => o with { StateDir = v }),
        new("--tenant-cpu-metrics", "[true|false]", "measure the CPU time of each tenant's requests with the threads' CPU clocks, as sharedruntime_tenant_cpu_seconds_total{app_id} (default false: two thread-clock reads per request and per resumption, about 4 µs on this kind of VM; Linux only)",
            (o, v) => o with { TenantCpuMetrics = Bool(v) }),
        new("--fair-share", "true|false", "while the runtime's CPU is saturated, share what it serves among the tenants by their limits (max-min fair), not first come first served: a tenant far under its weighted share, sending a handful of requests, or keeping at most two requests in flight at a time is never capped, nor is one under a quarter of an equal split; the others are capped at their limit times a common level (default true)",
            (o, v) => o with { FairShare = Bool(v) }),
        new("--release-startup-pages", "[true|false]", "once ready, give back the pages of the executable and assemblies that start-up touched (clean pages of read-only file mappings; one used again is mapped back from the page cache), and the executable's again 3 s later (default true; Linux only)",
            (o, v) => o with { ReleaseStartupPages = Bool(v) }),
        new("--release-pages-after-reload", "[true|false]", "once a burst of reloads has settled, give back again the pages of the executable that --release-startup-pages gave back and the reloads touched (default true; nothing when --release-startup-pages is false)",
            (o, v) => o with { ReleasePagesAfterReload = Bool(v) }),
        new("--invoke-relay", "[true|false]", "relay the invocations of plain-HTTP apps that every check admits at once straight between the caller's connection and the app's, on the socket's thread (default true); with false every request goes through the HTTP API's full pipeline",
            (o, v) => o with { InvokeRelay = Bool(v) }),
        new("--relay-loops", "N", "event-loop threads that drive the relayed connections (callers' and apps'); a call stays on its caller's loop from request to answer (default 0: one per two cores, rounded up, at most 16; at most 64)",
            (o, v) => o with { RelayLoops = (int)Number(v, 0, SharedRuntime.Http.Relay.SocketLoops.MaxLoops) }),
        new("--collect-after-reload", "full|young|none", "after a burst of reloads, collect the young generations and the whole heap once the live heap has grown by 2 MB since the last whole collection (young, the default), the whole heap every time (full), or nothing until the heap's own budget says so (none)",
            (o, v) => o with
            {
                CollectAfterReload = v switch
                {
                    "full" => Lifecycle.ReloadCollection.Full,
                    "young" => Lifecycle.ReloadCollection.Young,
                    "none" => Lifecycle.ReloadCollection.None,
                    _ => throw new FormatException($"--collect-after-reload must be full, young or none, not '{v}'"),
                },
            }),
        new("--admission", "per-tenant|shared", "per-tenant (default) isolates tenants; shared gives all tenants one limit sized by the defaults, for benchmark comparisons only",
            (o, v) => o with
            {
                SharedAdmission = v switch
                {
                    "per-tenant" => false,
                    "shared" => true,
                    _ => throw new FormatException($"--admission must be per-tenant or shared, not '{v}'"),
                },
            }),
        new("--pushback-max-delay-ms", "N", "a tenant sending again inside the Retry-After of its last 429 has its further refusals held until that wait has passed, at most this long, so its connections read nothing more meanwhile; also the longest a request over its fair share waits for its turn rather than being refused (default 1000; 0 off)",
            (o, v) => o with { PushbackMaxDelayMilliseconds = (int)Number(v, 0, 60_000) }),
        new("--max-connections", "N", "client connections open at once over all listeners; at it a new connection takes the place of an idle one (idle 1 s or more, from the address holding the most), or is closed at once when none is idle (default 10000, and at most half the process's open-files limit, whose soft limit is raised to the hard one at start)",
            (o, v) => o with { MaxConnections = (int)Number(v, 1, 10_000_000) }),
        new("--pushback-max-parked", "N", "requests held by push-back at once on the node, a quarter of them for any one tenant; past that a refusal is answered at once (default 1024)",
            (o, v) => o with { PushbackMaxParked = (int)Number(v, 0, 1_000_000) }),
        new("--default-requests-per-second", "N", $"tenant rate limit when its resource sets none (default {TenantLimits.Defaults.RequestsPerSecond})",
            (o, v) => o with { DefaultLimits = o.DefaultLimits with { RequestsPerSecond = Number(v, 0.001, 1e7) } }),
        new("--default-burst", "N", $"tenant burst when its resource sets none (default {TenantLimits.Defaults.Burst})",
            (o, v) => o with { DefaultLimits = o.DefaultLimits with { Burst = (int)Number(v, 1, int.MaxValue) } }),
        new("--default-max-concurrency", "N", $"tenant requests in flight when its resource sets none (default {TenantLimits.Defaults.MaxConcurrency})",
            (o, v) => o with { DefaultLimits = o.DefaultLimits with { MaxConcurrency = (int)Number(v, 1, 1_000_000) } }),
        new("--default-max-queue", "N", $"tenant requests waiting for a slot when its resource sets none (default {TenantLimits.Defaults.MaxQueue})",
            (o, v) => o with { DefaultLimits = o.DefaultLimits with { MaxQueue = (int)Number(v, 0, 1_000_000) } }),
        new("--max-body-size", "SIZE", "tenant request body limit when its resource sets none, like 4Mi (default 4Mi)",
            (o, v) => o with { DefaultLimits = o.DefaultLimits with { MaxRequestBodyBytes = Size(v) } }),
        new("--default-state-max-keys", "N", $"tenant state key quota when its resource sets none (default {TenantLimits.Defaults.StateMaxKeys})",
            (o, v) => o with { DefaultLimits = o.DefaultLimits with { StateMaxKeys = (long)Number(v, 0, long.MaxValue) } }),
        new("--default-state-max-bytes", "SIZE", "tenant state byte quota when its resource sets none (default 100Mi)",
            (o, v) => o with { DefaultLimits = o.DefaultLimits with { StateMaxBytes = Size(v) } }),
        new("--default-max-memory-bytes", "SIZE", "memory a tenant's requests in flight may hold (bodies, answers being built) when its resource sets none (default 64Mi)",
            (o, v) => o with { DefaultLimits = o.DefaultLimits with { MaxMemoryBytes = Size(v) } }),
        new("--otlp-endpoint", "URL", "export spans with OTLP to this collector, like http://otel-collector:4317 (default: OTEL_EXPORTER_OTLP_ENDPOINT; none: no tracing)",
            (o, v) => o with { OtlpEndpoint = Uri.TryCreate(v, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https" ? uri : throw new FormatException($"'{v}' is not an http(s) URL") }),
        new("--otlp-protocol", "grpc|http/protobuf", "how spans are sent to the OTLP endpoint (default: OTEL_EXPORTER_OTLP_PROTOCOL, else grpc)", (o, v) => o with
            {
                OtlpHttpProtobuf = v switch
                {
                    "grpc" => false,
                    "http/protobuf" => true,
                    _ => throw new FormatException($"--otlp-protocol must be grpc or http/protobuf, not '{v}'"),
                },
            }),
        new("--allowed-invoke-hosts", "HOST[,HOST]", "hosts that service invocation may reach outside the runtime's apps, through HTTPEndpoint resources or a URL in place of the app-id: host (any port), host:port, *.domain or *; link-local addresses (cloud metadata), the runtime's own ports and tenants' apps are refused whatever it says (default: none, both are refused)",
            (o, v) => o with { AllowedInvokeHosts = [.. o.AllowedInvokeHosts, .. ParsedInvokeHosts(v)] }),
        new("--trace-sampling-rate", "RATE", "share of a tenant's API calls traced when its Configuration sets no tracing.samplingRate, 0 to 1 (default 1)",
            (o, v) => o with { TraceSamplingRate = Number(v, 0, 1) }),
        new("--max-memory-bytes", "SIZE", "memory all tenants' requests in flight may hold together; keep it well under the pod's memory limit (default 192Mi)",
            (o, v) => o with { MaxMemoryBytes = Size(v) }),
    ];

    private static string[] ParsedInvokeHosts(string value)
    {
        var hosts = value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        AppChannel.InvokeAllowlist.Parse(hosts); // refuses a bad pattern at start-up
        return hosts;
    }

    /// <summary>Parses flags over environment forms over defaults. Returns null and sets <paramref name="help"/> for --help.</summary>
    public static RuntimeOptions? Parse(IReadOnlyList<string> args, Func<string, string?> environment, out bool help)
    {
        help = false;
        var options = new RuntimeOptions();
        // The OpenTelemetry variables, under the runtime's own forms and flags.
        foreach (var (variable, flag) in new[] { ("OTEL_EXPORTER_OTLP_ENDPOINT", "--otlp-endpoint"), ("OTEL_EXPORTER_OTLP_PROTOCOL", "--otlp-protocol"), ("NODE_NAME", "--node-name") })
        {
            if (environment(variable) is { Length: > 0 } value)
            {
                options = Apply(Flags.First(f => f.Name == flag), options, value, variable);
            }
        }
        foreach (var flag in Flags)
        {
            if (environment(flag.Environment) is { Length: > 0 } value)
            {
                options = Apply(flag, options, value, flag.Environment);
            }
        }
        var fromArgs = false;
        for (var i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            if (arg is "--help" or "-h")
            {
                help = true;
                return null;
            }
            var name = arg;
            string? value = null;
            var eq = arg.IndexOf('=');
            if (arg.StartsWith("--", StringComparison.Ordinal) && eq > 0)
            {
                name = arg[..eq];
                value = arg[(eq + 1)..];
            }
            var flag = Flags.FirstOrDefault(f => f.Name == name || (f.Aliases?.Contains(name) ?? false))
                ?? throw new FormatException($"unknown option '{arg}'; see --help");
            if (value is null)
            {
                if (flag.Name is "--log-as-json" or "--reuse-port" or "--tenant-cpu-metrics" && (i + 1 >= args.Count || args[i + 1].StartsWith("--", StringComparison.Ordinal)))
                {
                    value = "true";
                }
                else if (i + 1 < args.Count)
                {
                    value = args[++i];
                }
                else
                {
                    throw new FormatException($"option {name} needs a value ({flag.Value})");
                }
            }
            if (flag.Name == "--resources-path" && !fromArgs)
            {
                // Flags replace the environment's folders rather than adding to them.
                options = options with { ResourcesPaths = [] };
                fromArgs = true;
            }
            options = Apply(flag, options, value, name);
        }
        return options;
    }

    private static RuntimeOptions Apply(Flag flag, RuntimeOptions options, string value, string source)
    {
        try
        {
            return flag.Apply(options, value);
        }
        catch (FormatException ex) when (!ex.Message.StartsWith("--", StringComparison.Ordinal))
        {
            throw new FormatException($"{source}: {ex.Message}");
        }
    }

    public static string HelpText()
    {
        var text = new StringBuilder();
        text.AppendLine("shared-runtime: one Dapr-compatible runtime per node, serving many apps with per-app isolation.");
        text.AppendLine();
        text.AppendLine("Usage: shared-runtime [options]");
        text.AppendLine();
        text.AppendLine("Options (each also read from the environment variable shown):");
        foreach (var flag in Flags)
        {
            var aliases = flag.Aliases is null ? "" : $" (also {string.Join(", ", flag.Aliases)})";
            text.AppendLine(CultureInfo.InvariantCulture, $"  {flag.Name} {flag.Value}{aliases}");
            text.AppendLine(CultureInfo.InvariantCulture, $"      {flag.Help}");
            text.AppendLine(CultureInfo.InvariantCulture, $"      env: {flag.Environment}");
        }
        text.AppendLine("  --help");
        text.AppendLine("      show this text");
        text.AppendLine();
        text.AppendLine("Apps connect with DAPR_HTTP_ENDPOINT, DAPR_GRPC_ENDPOINT and DAPR_API_TOKEN (the token of their Tenant).");
        return text.ToString();
    }

    private static int Port(string value) => (int)Number(value, 0, 65535);

    private static bool Bool(string value) => value.ToLowerInvariant() switch
    {
        "true" or "1" or "yes" => true,
        "false" or "0" or "no" => false,
        _ => throw new FormatException($"'{value}' is not true or false"),
    };

    private static double Number(string value, double min, double max)
    {
        if (!double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var number) || number < min || number > max)
        {
            throw new FormatException($"'{value}' is not a number from {min.ToString(CultureInfo.InvariantCulture)} to {max.ToString(CultureInfo.InvariantCulture)}");
        }
        return number;
    }

    /// <summary>Sizes as daprd writes them: 4Mi, 512Ki, 1Gi, 1000, 4M.</summary>
    internal static long Size(string value)
    {
        var units = new (string Suffix, long Factor)[] { ("Ki", 1L << 10), ("Mi", 1L << 20), ("Gi", 1L << 30), ("K", 1000), ("M", 1_000_000), ("G", 1_000_000_000), ("B", 1) };
        foreach (var (suffix, factor) in units)
        {
            if (value.EndsWith(suffix, StringComparison.Ordinal))
            {
                return (long)(Number(value[..^suffix.Length], 0, long.MaxValue / factor) * factor);
            }
        }
        return (long)Number(value, 0, long.MaxValue);
    }
}
