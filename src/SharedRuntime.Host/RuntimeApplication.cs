using System.Net;
using System.Runtime;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using OpenTelemetry.Exporter;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using SharedRuntime.AppChannel;
using SharedRuntime.BuildingBlocks;
using SharedRuntime.Components;
using SharedRuntime.Configuration;
using SharedRuntime.Diagnostics;
using SharedRuntime.Grpc;
using SharedRuntime.Host.Lifecycle;
using SharedRuntime.Http;
using SharedRuntime.Kubernetes;
using SharedRuntime.Metrics;
using SharedRuntime.Tenancy;

namespace SharedRuntime.Host;

/// <summary>Composes the runtime: services, listeners, and the request pipeline in its fixed order.</summary>
public static class RuntimeApplication
{
    /// <summary>Builds the web application for <paramref name="options"/>; call <see cref="StartAsync"/> to load resources and listen.</summary>
    public static WebApplication Build(RuntimeOptions options, Action<IServiceCollection>? configureServices = null)
    {
        var timeline = new StartupTimeline(TimeProvider.System);
        // The runtime reads no appsettings files: watching them would cost a file watch (an inotify instance) per process.
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions
        {
            Args = ["--hostBuilder:reloadConfigOnChange=false"],
            ContentRootPath = AppContext.BaseDirectory,
        });
        ConfigureLogging(builder.Logging, options);
        builder.WebHost.ConfigureKestrel(kestrel => ConfigureKestrel(kestrel, options));
        var listenSockets = new ListenSockets(options.ReusePort);
        builder.WebHost.UseSockets(sockets => sockets.CreateBoundListenSocket = listenSockets.Create);
        // Kestrel waits for requests in flight until the host's shutdown timeout, then aborts them: the timeout is the
        // drain delay, the drain time, and a second for the rest of the host to stop.
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout =
            TimeSpan.FromSeconds(options.GracefulShutdownSeconds + 1) + TimeSpan.FromMilliseconds(options.DrainDelayMilliseconds));

        var services = builder.Services;
        services.AddSingleton(options);
        services.AddSingleton(timeline);
        services.AddSingleton(new FileRoots(options.EffectiveAllowedFileRoots, [options.EffectiveStateDir]));
        services.AddSingleton(TimeProvider.System);
        services.AddSingleton(new ListenerPorts { DaprHttp = options.DaprHttpPort, DaprGrpc = options.DaprGrpcPort, Metrics = options.MetricsPort });
        services.AddMetrics();
        services.AddSingleton<RuntimeMetrics>();
        services.AddSingleton(sp => new TenantCpuMetrics(sp.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>(), options.TenantCpuMetrics));
        services.AddSingleton(sp => new SaturationMetrics(sp.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>(), sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<RuntimeConfiguration>().NodeMemory));
        services.AddSingleton(sp => options.FairShare && !options.SharedAdmission ? new Admission.FairShare(sp.GetRequiredService<TimeProvider>()) : Admission.FairShare.Off);
        services.AddHttpClient();
        services.AddEmbeddedComponents();
        services.AddBackendComponents();
        services.AddSingleton(sp => new RuntimeConfiguration(
            sp.GetServices<IComponentFactory>(), sp, sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<ILogger<RuntimeConfiguration>>(), sp.GetRequiredService<RuntimeMetrics>(), options.DefaultLimits)
        {
            SharedAdmission = options.SharedAdmission,
            NodeMemory = new Admission.MemoryBudget(options.MaxMemoryBytes),
            FairShare = sp.GetRequiredService<Admission.FairShare>(),
            LastGood = new LastGoodResourceCache(options.EffectiveStateDir, LastGoodKey(options)),
            OutboundPipelines = new OutboundPipelines(sp.GetRequiredService<TimeProvider>()),
        });
        services.AddSingleton(sp => new Admission.Pushback(options.Pushback, sp.GetRequiredService<TimeProvider>()));
        services.AddSingleton<RuntimeHealth>();
        services.AddSingleton(listenSockets);
        services.AddSingleton<ShutdownDrain>();
        services.AddSingleton<SharedRuntime.Http.Relay.IRequestDrain>(sp => sp.GetRequiredService<ShutdownDrain>());
        services.AddSingleton(new SharedRuntime.Http.Relay.InvokeRelayOptions(options.InvokeRelay));
        SharedRuntime.Http.Relay.SocketLoops.Configure(options.RelayLoops);
        services.AddSingleton<SharedRuntime.Http.Relay.InvokeRelay>();
        services.AddSingleton(sp =>
        {
            var logger = sp.GetRequiredService<ILogger<ConnectionLimit>>();
            var openFiles = DescriptorLimit.Raise();
            var max = DescriptorLimit.ClientConnections(options.MaxConnections, openFiles);
            if (max < options.MaxConnections)
            {
                HostLog.ConnectionsBoundedByOpenFiles(logger, max, openFiles ?? 0, options.MaxConnections);
            }
            return new ConnectionLimit(max, logger, sp.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>());
        });
        // After the socket transport: the server tries the transports last registered first, and this one binds only the Dapr HTTP port.
        services.AddSingleton<Microsoft.AspNetCore.Connections.IConnectionListenerFactory, SharedRuntime.Http.Relay.RelayTransportFactory>();
        services.AddHostedService<DrainDelay>();
        services.AddSingleton<ListenerHandoff>();
        services.AddHostedService(sp => sp.GetRequiredService<ListenerHandoff>());
        services.AddSingleton<StateApi>();
        services.AddSingleton<PublishApi>();
        services.AddSingleton<BindingApi>();
        services.AddSingleton<SecretApi>();
        services.AddSingleton<MetadataApi>();
        services.AddSingleton<ConfigurationApi>();
        services.AddSingleton<LockApi>();
        services.AddSingleton<AppChannels>();
        services.AddSingleton<AppHealthProbes>();
        services.AddHostedService(sp => sp.GetRequiredService<AppHealthProbes>());
        services.AddSingleton<ResiliencyPolicies>();
        services.AddSingleton(options.InvokeAllowlist);
        services.AddSingleton<ExternalEndpoints>();
        services.AddSingleton<ServiceInvocation>();
        services.AddSingleton<SubscriptionDiscovery>();
        services.AddSingleton<SubscriptionDelivery>();
        services.AddSingleton<StreamingSubscriptions>();
        services.AddHostedService(sp => sp.GetRequiredService<SubscriptionDelivery>());
        services.AddSingleton<InputBindingDelivery>();
        services.AddHostedService(sp => sp.GetRequiredService<InputBindingDelivery>());
        services.AddRouting();
        services.AddDaprGrpc();
        var telemetry = services.AddOpenTelemetry().WithMetrics(metrics => metrics.AddMeter(RuntimeMetrics.MeterName).AddPrometheusExporter());
        AddTracing(services, telemetry, options);
        configureServices?.Invoke(services);

        var app = builder.Build();
        app.Use(ConnectionLimit.Requests);
        app.UseMiddleware<DrainMiddleware>();
        DaprHttpHandlers.UseStateGetRoute(app);
        DaprHttpInvokeApi.UseInvokeRoute(app);
        app.UseRouting();
        app.UseMiddleware<TenantAdmissionMiddleware>();
        app.MapDaprHttpApi();
        app.MapDaprHttpConfigurationAndLock();
        app.MapDaprGrpc();
        app.MapDaprHttpInvoke();
        app.MapPrometheusScrapingEndpoint("/metrics").WithMetadata(new ApiEndpointMetadata(Listener.Metrics, "metrics", Anonymous: true));
        timeline.Mark("host built");
        return app;
    }

    /// <summary>
    /// Spans are made and exported only with an OTLP endpoint. Which calls are traced is decided per tenant when a call
    /// starts (<see cref="RuntimeTracing"/>), so the SDK records every span the runtime starts.
    /// </summary>
    private static void AddTracing(IServiceCollection services, OpenTelemetry.OpenTelemetryBuilder telemetry, RuntimeOptions options)
    {
        services.AddSingleton(options.OtlpEndpoint is null ? TracingOptions.Off : new TracingOptions(true, options.TraceSamplingRate));
        services.AddSingleton<RuntimeTracing>();
        if (options.OtlpEndpoint is not { } endpoint)
        {
            return;
        }
        telemetry.WithTracing(tracing => tracing
                .ConfigureResource(resource => resource.AddService("shared-runtime"))
                .AddSource(RuntimeTracing.SourceName)
                .SetSampler(new AlwaysOnSampler())
                .AddOtlpExporter(otlp =>
                {
                    otlp.Protocol = options.OtlpHttpProtobuf ? OtlpExportProtocol.HttpProtobuf : OtlpExportProtocol.Grpc;
                    // Over HTTP the traces path is added to a bare endpoint, as for OTEL_EXPORTER_OTLP_ENDPOINT.
                    otlp.Endpoint = options.OtlpHttpProtobuf && endpoint.AbsolutePath == "/" ? new Uri(endpoint, "v1/traces") : endpoint;
                    otlp.BatchExportProcessorOptions.ScheduledDelayMilliseconds = 1000;
                }));
    }

    /// <summary>
    /// Loads the resources (a bad one throws <see cref="ResourceException"/>) and listens. Standalone loads first and
    /// then listens. Kubernetes listens first, so probes get answers, and healthz says ready only after every resource
    /// kind has been listed from the API server.
    /// </summary>
    public static async Task StartAsync(WebApplication app, CancellationToken cancellationToken = default)
    {
        var options = app.Services.GetRequiredService<RuntimeOptions>();
        var configuration = app.Services.GetRequiredService<RuntimeConfiguration>();
        var drain = app.Services.GetRequiredService<ShutdownDrain>();
        var timeline = app.Services.GetRequiredService<StartupTimeline>();
        // The saturation gauge samples the CPU from the start, whether or not anything reads it yet.
        app.Services.GetRequiredService<SaturationMetrics>();
        // The fair share follows the tenants of whichever snapshot is current.
        var fairShare = app.Services.GetRequiredService<Admission.FairShare>();
        if (!ReferenceEquals(fairShare, Admission.FairShare.Off))
        {
            fairShare.Start(() => configuration.Current.Tenants.Values.Select(static t => t.Admission.Share));
        }
        app.Lifetime.ApplicationStopping.Register(drain.Begin);
        app.Lifetime.ApplicationStopped.Register(drain.End);
        // A predecessor that can hand its listeners over answers the probes meanwhile: load first, as standalone does.
        if (options.Mode == RuntimeMode.Kubernetes && !app.Services.GetRequiredService<ListenerHandoff>().PredecessorMayAnswer)
        {
            await app.StartAsync(cancellationToken);
            timeline.Mark("listening");
            await configuration.StartAsync(CreateKubernetesSource(app.Services, options, configuration), cancellationToken);
            timeline.Mark("resources loaded");
        }
        else
        {
            IResourceSource source = options.Mode == RuntimeMode.Kubernetes ? CreateKubernetesSource(app.Services, options, configuration)
                : new FileResourceSource(options.EffectiveResourcesPaths, app.Services.GetRequiredService<TimeProvider>(),
                    logger: app.Services.GetRequiredService<ILoggerFactory>().CreateLogger<FileResourceSource>());
            await configuration.StartAsync(source, cancellationToken);
            timeline.Mark("resources loaded");
            await app.StartAsync(cancellationToken);
            timeline.Mark("listening");
        }
        HostLog.Ready(app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("SharedRuntime.Host"),
            configuration.Current.Tenants.Count, options.DaprHttpPort, options.DaprGrpcPort, options.MetricsPort,
            app.Services.GetRequiredService<ListenSockets>().ReusePort ? "on" : "off");
        // What start-up left behind (every resource document parsed, the fail-static cache written) is garbage from
        // here on, much of it in the large object heap, which only a full collection frees: collect it once, now, and
        // give the memory back, rather than keep it resident until the heap grows enough for the GC to get to it.
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("SharedRuntime.Host");
        var time = app.Services.GetRequiredService<TimeProvider>();
        var startupPages = options.ReleaseStartupPages ? new StartupPages() : null;
        if (AfterReloads.Create(options.CollectAfterReload, options.ReleasePagesAfterReload ? startupPages : null, time, logger) is { } afterReloads)
        {
            configuration.Changed += _ => afterReloads.Reloaded();
            app.Lifetime.ApplicationStopped.Register(afterReloads.Dispose);
        }
        StartupCollections.Resume();
        HostLog.StartupTimes(logger, timeline.Total.TotalMilliseconds, timeline.Phases(), GC.GetTotalAllocatedBytes() / (1024.0 * 1024), GC.CollectionCount(0));
        _ = Task.Run(async () =>
        {
            GCSettings.LargeObjectHeapCompactionMode = GCLargeObjectHeapCompactionMode.CompactOnce;
            GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);
            if (startupPages is not null)
            {
                HostLog.StartupPagesReleased(logger, startupPages.Release() / (1024 * 1024));
                // The first seconds of serving touch some pages once more (the first timer ticks, the first write of the
                // last-good cache, the first scrape's set-up): give them back once those have passed.
                var stopping = app.Lifetime.ApplicationStopping;
                await Task.Delay(StartupPages.SettleTime, time, stopping).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                if (stopping.IsCancellationRequested)
                {
                    return;
                }
                startupPages.ReleaseAgain();
                HostLog.StartupPagesReleasedAgain(logger, startupPages.ReleasedMappings);
            }
        }, CancellationToken.None);
    }

    private static KubernetesResourceSource CreateKubernetesSource(IServiceProvider services, RuntimeOptions options, RuntimeConfiguration configuration) =>
        new(new KubernetesSourceOptions
            {
                Namespace = options.Namespace,
                KubeconfigPath = options.Kubeconfig,
                SecretRefreshInterval = TimeSpan.FromSeconds(options.SecretRefreshSeconds),
                NodeName = options.NodeName,
                Pods = configuration.Pods,
                ProjectedTokens = configuration.ProjectedTokens,
                ClusterService = options.ClusterService is { } service ? ServiceReference.Parse(service) : null,
                RejectComponent = configuration.ComponentProblem,
            },
            services.GetRequiredService<TimeProvider>(),
            services.GetRequiredService<ILogger<KubernetesResourceSource>>());

    /// <summary>What the last good configuration is cached under: the folders, or the cluster scope read.</summary>
    private static IReadOnlyList<string> LastGoodKey(RuntimeOptions options) =>
        options.Mode == RuntimeMode.Kubernetes ? [$"kubernetes:{options.Namespace ?? "*"}"] : options.EffectiveResourcesPaths;

    /// <summary>
    /// The server settings every listener runs with; the bare Kestrel baselines in bench/ use the same, so that a
    /// comparison with them measures the runtime's own work.
    /// </summary>
    internal static void ConfigureServerLimits(KestrelServerOptions kestrel, long maxRequestBodyBytes)
    {
        kestrel.AddServerHeader = false;
        kestrel.Limits.MaxRequestBodySize = maxRequestBodyBytes;
        kestrel.Limits.MaxRequestHeadersTotalSize = 32 * 1024;
        kestrel.Limits.MaxRequestHeaderCount = 100;
        kestrel.Limits.MaxRequestLineSize = 8 * 1024;
        kestrel.Limits.Http2.MaxStreamsPerConnection = 1000;
    }

    private static void ConfigureKestrel(KestrelServerOptions kestrel, RuntimeOptions options)
    {
        ConfigureServerLimits(kestrel, options.DefaultLimits.MaxRequestBodyBytes);
        foreach (var address in options.EffectiveListenAddresses)
        {
            var ip = address is "localhost" ? IPAddress.Loopback : IPAddress.Parse(address);
            kestrel.Listen(ip, options.DaprHttpPort, l =>
            {
                l.Protocols = HttpProtocols.Http1;
                l.Use(l.ApplicationServices.GetRequiredService<ConnectionLimit>().Middleware);
            });
            kestrel.Listen(ip, options.DaprGrpcPort, l =>
            {
                l.Protocols = HttpProtocols.Http2;
                l.Use(l.ApplicationServices.GetRequiredService<ConnectionLimit>().Middleware);
                l.Use(next => new Http2ConnectionDrain(next, l.ApplicationServices.GetRequiredService<ShutdownDrain>(),
                    TimeSpan.FromMilliseconds(options.DrainLingerMilliseconds), TimeProvider.System).OnConnectionAsync);
            });
            kestrel.Listen(ip, options.MetricsPort, l =>
            {
                l.Protocols = HttpProtocols.Http1;
                l.Use(l.ApplicationServices.GetRequiredService<ConnectionLimit>().Middleware);
            });
        }
    }

    private static void ConfigureLogging(ILoggingBuilder logging, RuntimeOptions options)
    {
        logging.ClearProviders();
        if (options.LogAsJson)
        {
            logging.AddJsonConsole(o => o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ ");
        }
        else
        {
            logging.AddSimpleConsole(o =>
            {
                o.SingleLine = true;
                o.TimestampFormat = "HH:mm:ss.fff ";
            });
        }
        logging.SetMinimumLevel(options.LogLevel switch
        {
            "debug" => LogLevel.Debug,
            "warn" => LogLevel.Warning,
            "error" => LogLevel.Error,
            _ => LogLevel.Information,
        });
        logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        // Hosting's per-request diagnostics: with this category on at any level, every request starts an Activity and
        // a logging scope (about 600 bytes and two execution-context copies per request), for request start/finish
        // lines logged at Information only. The runtime's own errors are logged by the tenant middleware and Kestrel.
        logging.AddFilter("Microsoft.AspNetCore.Hosting.Diagnostics", LogLevel.None);
        logging.AddFilter("Microsoft.Hosting.Lifetime", LogLevel.Information);
        logging.AddFilter("System.Net.Http.HttpClient", LogLevel.Warning);
    }
}
