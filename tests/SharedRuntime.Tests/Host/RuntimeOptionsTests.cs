using SharedRuntime.Host;
using SharedRuntime.Host.Lifecycle;

namespace SharedRuntime.Tests.Host;

public class RuntimeOptionsTests
{
    private static RuntimeOptions Parse(string[] args, Dictionary<string, string>? env = null) =>
        RuntimeOptions.Parse(args, name => env?.GetValueOrDefault(name), out _)!;

    [Fact]
    public void DefaultsMatchDaprd()
    {
        var options = Parse([]);
        Assert.Equal((3500, 50001, 9090), (options.DaprHttpPort, options.DaprGrpcPort, options.MetricsPort));
        Assert.Equal(["127.0.0.1"], options.EffectiveListenAddresses);
        Assert.Equal(4 * 1024 * 1024, options.DefaultLimits.MaxRequestBodyBytes);
    }

    [Fact]
    public void FlagsOverrideEnvironmentForms()
    {
        var env = new Dictionary<string, string> { ["SHAREDRUNTIME_DAPR_HTTP_PORT"] = "4000", ["SHAREDRUNTIME_METRICS_PORT"] = "9999" };
        var options = Parse(["--dapr-http-port", "5000", "--components-path", "/a", "--resources-path=/b", "--max-body-size", "1Mi", "--mode", "kubernetes"], env);
        Assert.Equal(5000, options.DaprHttpPort);
        Assert.Equal(9999, options.MetricsPort);
        Assert.Equal(["/a", "/b"], options.ResourcesPaths);
        Assert.Equal(1024 * 1024, options.DefaultLimits.MaxRequestBodyBytes);
        Assert.Equal(["0.0.0.0"], options.EffectiveListenAddresses);
    }

    [Fact]
    public void CollectAfterReloadIsYoungByDefaultAndCanBeFullOrNone()
    {
        Assert.Equal(ReloadCollection.Young, Parse([]).CollectAfterReload);
        Assert.Equal(ReloadCollection.None, Parse(["--collect-after-reload", "none"]).CollectAfterReload);
        Assert.Equal(ReloadCollection.Full, Parse(["--collect-after-reload", "full"]).CollectAfterReload);
        Assert.Equal(ReloadCollection.Young, Parse(["--collect-after-reload", "young"]).CollectAfterReload);
        Assert.Throws<FormatException>(() => Parse(["--collect-after-reload", "sometimes"]));
    }

    [Fact]
    public void PagesAreGivenBackAgainAfterReloadsByDefault()
    {
        Assert.True(Parse([]).ReleasePagesAfterReload);
        Assert.False(Parse(["--release-pages-after-reload", "false"]).ReleasePagesAfterReload);
    }

    [Fact]
    public void InvocationsAreRelayedByDefault()
    {
        Assert.True(Parse([]).InvokeRelay);
        Assert.False(Parse(["--invoke-relay", "false"]).InvokeRelay);
    }

    [Fact]
    public void RelayLoopsAreOnePerTwoCoresUnlessSet()
    {
        Assert.Equal(0, Parse([]).RelayLoops);
        Assert.Equal(4, Parse(["--relay-loops", "4"]).RelayLoops);
        Assert.Throws<FormatException>(() => Parse(["--relay-loops", "65"]));
        Assert.Equal(Math.Clamp((Environment.ProcessorCount + 1) / 2, 1, 16), SharedRuntime.Http.Relay.SocketLoops.DefaultCount);
    }

    [Fact]
    public void ClientConnectionsAreBoundedBy10000AndByHalfTheOpenFilesLimit()
    {
        Assert.Equal(10_000, Parse([]).MaxConnections);
        Assert.Equal(64, Parse(["--max-connections", "64"]).MaxConnections);
        Assert.Throws<FormatException>(() => Parse(["--max-connections", "0"]));
        Assert.Equal(10_000, SharedRuntime.Host.Lifecycle.DescriptorLimit.ClientConnections(10_000, 1_048_576));
        Assert.Equal(512, SharedRuntime.Host.Lifecycle.DescriptorLimit.ClientConnections(10_000, 1024));
        Assert.Equal(10_000, SharedRuntime.Host.Lifecycle.DescriptorLimit.ClientConnections(10_000, null));
        Assert.Equal(1, SharedRuntime.Host.Lifecycle.DescriptorLimit.ClientConnections(10_000, 1));
    }

    [Theory]
    [InlineData("--no-such-flag")]
    [InlineData("--dapr-http-port", "http")]
    [InlineData("--mode", "cloud")]
    [InlineData("--dapr-grpc-port")]
    public void BadFlagsAreExplained(params string[] args)
    {
        var ex = Assert.Throws<FormatException>(() => Parse(args));
        Assert.Contains("--", ex.Message);
    }

    [Fact]
    public void HelpListsEveryFlagWithItsEnvironmentForm()
    {
        Assert.Null(RuntimeOptions.Parse(["--help"], _ => null, out var help));
        Assert.True(help);
        var text = RuntimeOptions.HelpText();
        foreach (var flag in new[] { "--resources-path", "--dapr-http-port", "--dapr-grpc-port", "--metrics-port", "--dapr-listen-addresses", "--mode", "--log-level", "--log-as-json", "--config" })
        {
            Assert.Contains(flag, text);
        }
        Assert.Contains("SHAREDRUNTIME_DAPR_GRPC_PORT", text);
    }

    [Fact]
    public void ReusePortIsOnByDefaultOnLinuxAndCanBeTurnedOff()
    {
        Assert.Equal(OperatingSystem.IsLinux(), Parse([]).ReusePort);
        Assert.False(Parse(["--reuse-port", "false"]).ReusePort);
        Assert.False(Parse([], new() { ["SHAREDRUNTIME_REUSE_PORT"] = "false" }).ReusePort);
        Assert.True(Parse(["--reuse-port", "--log-level", "warn"], new() { ["SHAREDRUNTIME_REUSE_PORT"] = "false" }).ReusePort);
    }

    [Fact]
    public void Tracing_is_off_by_default_and_follows_the_flag_or_the_opentelemetry_variables()
    {
        var none = Parse([]);
        Assert.Null(none.OtlpEndpoint);
        Assert.Equal(1, none.TraceSamplingRate);

        var fromEnv = Parse([], new() { ["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://collector:4318", ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf" });
        Assert.Equal(new Uri("http://collector:4318"), fromEnv.OtlpEndpoint);
        Assert.True(fromEnv.OtlpHttpProtobuf);

        var fromFlag = Parse(["--otlp-endpoint", "http://other:4317", "--trace-sampling-rate", "0.5"], new() { ["OTEL_EXPORTER_OTLP_ENDPOINT"] = "http://collector:4318" });
        Assert.Equal(new Uri("http://other:4317"), fromFlag.OtlpEndpoint);
        Assert.False(fromFlag.OtlpHttpProtobuf);
        Assert.Equal(0.5, fromFlag.TraceSamplingRate);

        Assert.Throws<FormatException>(() => Parse(["--otlp-protocol", "http/json"]));
        Assert.Throws<FormatException>(() => Parse(["--otlp-endpoint", "collector:4317"]));
        Assert.Throws<FormatException>(() => Parse(["--trace-sampling-rate", "2"]));
    }
}
