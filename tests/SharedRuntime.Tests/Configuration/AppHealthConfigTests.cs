using SharedRuntime.Configuration;

namespace SharedRuntime.Tests.Configuration;

/// <summary>A Tenant's app health check as users write it: Dapr's option names and defaults, off unless enabled, bounded.</summary>
public class AppHealthConfigTests
{
    private static ResourceSet Parse(string yaml) => ResourceParser.Parse(ResourceReader.ReadText("app.yaml", yaml), _ => null);

    private static string Tenant(string lines, string endpoint = "  appEndpoint: http://127.0.0.1:8081\n") =>
        "apiVersion: sharedruntime.io/v1alpha1\nkind: Tenant\nmetadata:\n  name: billing\nspec:\n  apiToken: t\n" + endpoint +
        string.Concat(lines.Split('|', StringSplitOptions.RemoveEmptyEntries).Select(l => $"  {l.Trim()}\n"));

    private static ResourceException Refused(string yaml)
    {
        var set = Parse(yaml);
        Assert.Empty(set.Tenants);
        return Assert.Single(set.RejectedTenants);
    }

    [Fact]
    public void ATenantThatSaysNothingIsNotProbed() => Assert.Null(Assert.Single(Parse(Tenant("")).Tenants).AppHealth);

    [Fact]
    public void EnablingTheCheckTakesDaprsDefaults()
    {
        var health = Assert.Single(Parse(Tenant("enableAppHealthCheck: true")).Tenants).AppHealth;
        Assert.NotNull(health);
        Assert.Equal("/healthz", health.Path);
        Assert.Equal(TimeSpan.FromSeconds(5), health.ProbeInterval);
        Assert.Equal(TimeSpan.FromMilliseconds(500), health.ProbeTimeout);
        Assert.Equal(3, health.Threshold);
    }

    [Theory]
    [InlineData("appHealthProbeInterval: 10s|appHealthProbeTimeout: 2s", 10_000, 2_000)]
    [InlineData("appHealthProbeInterval: 10|appHealthProbeTimeout: 2000", 10_000, 2_000)] // Dapr's units: seconds, milliseconds
    [InlineData("appHealthProbeInterval: 1s|appHealthProbeTimeout: 999ms", 1_000, 999)]
    public void DurationsAreGoStyleOrWholeNumbersInDaprsUnits(string lines, int intervalMs, int timeoutMs)
    {
        var health = Assert.Single(Parse(Tenant("enableAppHealthCheck: true|appHealthCheckPath: /live?deep=1|appHealthThreshold: 1|" + lines)).Tenants).AppHealth!;
        Assert.Equal(TimeSpan.FromMilliseconds(intervalMs), health.ProbeInterval);
        Assert.Equal(TimeSpan.FromMilliseconds(timeoutMs), health.ProbeTimeout);
        Assert.Equal("/live?deep=1", health.Path);
        Assert.Equal(1, health.Threshold);
    }

    [Theory]
    [InlineData("appHealthProbeInterval: 500ms", "spec.appHealthProbeInterval", "500ms is out of range (1s to 3600s)")]
    [InlineData("appHealthProbeInterval: 0", "spec.appHealthProbeInterval", "out of range (1s to 3600s)")]
    [InlineData("appHealthProbeInterval: 2h", "spec.appHealthProbeInterval", "out of range (1s to 3600s)")]
    [InlineData("appHealthProbeInterval: 99999999999999999", "spec.appHealthProbeInterval", "99999999999999999 is out of range")]
    [InlineData("appHealthProbeInterval: soon", "spec.appHealthProbeInterval", "'soon' is not a duration")]
    [InlineData("appHealthProbeTimeout: 30s|appHealthProbeInterval: 60s", "spec.appHealthProbeTimeout", "30s is out of range (10ms to 10s)")]
    [InlineData("appHealthProbeTimeout: 1ms", "spec.appHealthProbeTimeout", "1ms is out of range (10ms to 10s)")]
    [InlineData("appHealthProbeTimeout: 2s|appHealthProbeInterval: 2s", "spec.appHealthProbeTimeout", "the probe timeout (2s) must be shorter than the probe interval (2s)")]
    [InlineData("appHealthThreshold: 0", "spec.appHealthThreshold", "0 is out of range (1 to 100)")]
    [InlineData("appHealthThreshold: 1000", "spec.appHealthThreshold", "1000 is out of range (1 to 100)")]
    [InlineData("appHealthCheckPath: healthz", "spec.appHealthCheckPath", "'healthz' is not a path")]
    [InlineData("appHealthCheckPath: \"/health z\"", "spec.appHealthCheckPath", "is not a path")]
    [InlineData("appHealthCheckPath: /health#x", "spec.appHealthCheckPath", "is not a path")]
    [InlineData("enableAppHealthCheck: maybe", "spec.enableAppHealthCheck", "'maybe' is not true or false")]
    public void ABadValueRefusesTheTenantNamingTheFieldAndTheBound(string lines, string field, string problem)
    {
        var refused = Refused(Tenant(lines.StartsWith("enable", StringComparison.Ordinal) ? lines : "enableAppHealthCheck: true|" + lines));
        Assert.Equal(field, refused.Field);
        Assert.Contains(problem, refused.Message);
    }

    [Fact]
    public void AnOptionWithoutTheCheckEnabledIsRefusedRatherThanIgnored()
    {
        var refused = Refused(Tenant("appHealthCheckPath: /live"));
        Assert.Equal("spec.appHealthCheckPath", refused.Field);
        Assert.Contains("has no effect unless enableAppHealthCheck is true", refused.Message);
    }

    [Fact]
    public void TheCheckNeedsAnAppEndpoint()
    {
        var refused = Refused(Tenant("enableAppHealthCheck: true", endpoint: ""));
        Assert.Equal("spec.enableAppHealthCheck", refused.Field);
        Assert.Contains("needs an appEndpoint", refused.Message);
    }
}
