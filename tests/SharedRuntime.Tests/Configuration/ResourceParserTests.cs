using SharedRuntime.Configuration;

namespace SharedRuntime.Tests.Configuration;

public class ResourceParserTests
{
    [Fact]
    public void DocumentsOfOneKindShareTheirKindAndApiVersionStringsAndAnUnknownKindIsKeptAsWritten()
    {
        var yaml = Resources.Tenant("a", "a-token") + Resources.Tenant("b", "b-token") + "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n";
        var raws = ResourceReader.ReadText("r.yaml", yaml);

        Assert.Same(TenantConfig.KindName, raws[0].Kind);
        Assert.Same(raws[0].Kind, raws[1].Kind);
        Assert.Same(TenantConfig.ApiVersion, raws[1].ApiVersion);
        Assert.Equal(("Widget", "example.com/v1"), (raws[2].Kind, raws[2].ApiVersion));
        Assert.Equal("Tenant/b", raws[1].Identity);
    }

    private static ResourceSet Parse(string yaml, Func<string, string?>? env = null) =>
        ResourceParser.Parse(ResourceReader.ReadText("tenants.yaml", yaml), env ?? (_ => null));

    [Fact]
    public void ReadsSeveralTenantsAndComponentsFromOneFile()
    {
        var set = Parse(
            Resources.Tenant("orders", "t-orders", "requestsPerSecond: 10\nburst: 20\nmaxConcurrency: 3\nmaxQueue: 4\nmaxRequestBodyBytes: 1000\nstateMaxKeys: 5\nstateMaxBytes: 600") +
            Resources.Tenant("billing", "t-billing") +
            Resources.Component("store", "state.in-memory", scopes: ["orders"]));

        Assert.Equal(["orders", "billing"], set.Tenants.Select(t => t.AppId));
        var orders = set.Tenants[0];
        Assert.Equal("t-orders", orders.ApiToken);
        Assert.Equal(new TenantLimitsConfig
        {
            RequestsPerSecond = 10, Burst = 20, MaxConcurrency = 3, MaxQueue = 4, MaxRequestBodyBytes = 1000, StateMaxKeys = 5, StateMaxBytes = 600,
        }, orders.Limits);
        var store = Assert.Single(set.Components);
        Assert.Equal(("store", "state.in-memory", "state"), (store.Name, store.Type, store.Category));
        Assert.Equal(["orders"], store.Scopes);
    }

    [Fact]
    public void UnsetLimitsTakeTheRuntimeDefaults()
    {
        var set = Parse(Resources.Tenant("orders", "t", "maxConcurrency: 3"));
        var limits = set.Tenants[0].Limits.Resolve(TenantLimits.Defaults);
        Assert.Equal(3, limits.MaxConcurrency);
        Assert.Equal(TenantLimits.Defaults with { MaxConcurrency = 3 }, limits);
    }

    [Fact]
    public void TokenFromEnvironment()
    {
        var yaml = """
            apiVersion: sharedruntime.io/v1alpha1
            kind: Tenant
            metadata:
              name: orders
            spec:
              apiToken:
                env: ORDERS_TOKEN
            """;
        var set = Parse(yaml, name => name == "ORDERS_TOKEN" ? "from-env" : null);
        Assert.Equal("from-env", set.Tenants[0].ApiToken);
        Assert.Equal("orders", set.Tenants[0].AppId);
    }

    [Theory]
    [InlineData("requestsPerSecond: lots", "spec.limits.requestsPerSecond", "not a number")]
    [InlineData("burst: 0", "spec.limits.burst", "out of range")]
    [InlineData("maxQueue: -1", "spec.limits.maxQueue", "out of range")]
    [InlineData("maxConcurency: 3", "spec.limits.maxConcurency", "unknown limit")]
    public void BadLimitRefusesOnlyThatTenantNamingFileDocumentAndField(string limit, string field, string problem)
    {
        var set = Parse(Resources.Tenant("orders", "t", limit) + Resources.Tenant("billing", "t-billing"));
        Assert.Equal(["billing"], set.Tenants.Select(t => t.AppId));
        var ex = Assert.Single(set.RejectedTenants);
        Assert.Equal("tenants.yaml", ex.File);
        Assert.Equal("Tenant/orders", ex.Document);
        Assert.Equal(field, ex.Field);
        Assert.Contains(problem, ex.Message);
    }

    [Fact]
    public void ADuplicateTokenOrAppIdRefusesTheLaterTenantOnly()
    {
        var set = Parse(Resources.Tenant("a", "secret-x1") + Resources.Tenant("b", "secret-x1") + Resources.Tenant("c", "t-c") + """
            apiVersion: sharedruntime.io/v1alpha1
            kind: Tenant
            metadata:
              name: c2
            spec:
              appId: c
              apiToken: t-c2
            """);
        Assert.Equal(["a", "c"], set.Tenants.Select(t => t.AppId));
        Assert.Equal([("Tenant/b", "spec.apiToken"), ("Tenant/c2", "spec.appId")], set.RejectedTenants.Select(e => (e.Document, e.Field)));
        Assert.DoesNotContain("secret-x1", string.Join(" ", set.RejectedTenants.Select(e => e.Message)));
    }

    [Fact]
    public void ABadComponentStillRefusesTheWholeSet()
    {
        var ex = Assert.Throws<ResourceException>(() => Parse(Resources.Tenant("a", "t-a") + """
            ---
            apiVersion: dapr.io/v1alpha1
            kind: Component
            metadata:
              name: store
            spec:
              version: v1
            """));
        Assert.Equal("Component/store", ex.Document);
        Assert.Equal("spec.type", ex.Field);
    }

    [Fact]
    public void DuplicateNamesAreRefused()
    {
        var ex = Assert.Throws<ResourceException>(() => Parse(Resources.Component("s", "state.in-memory") + Resources.Component("s", "state.sqlite")));
        Assert.Contains("duplicate", ex.Message);
    }

    [Fact]
    public void MissingTokenIsRefused()
    {
        var yaml = """
            apiVersion: sharedruntime.io/v1alpha1
            kind: Tenant
            metadata:
              name: orders
            spec:
              appId: orders
            """;
        var ex = Assert.Single(Parse(yaml).RejectedTenants);
        Assert.Equal("spec.apiToken", ex.Field);
    }

    [Fact]
    public void InvalidYamlNamesTheLine()
    {
        var ex = Assert.Throws<ResourceException>(() => Parse("apiVersion: dapr.io/v1alpha1\nkind: [unclosed\n"));
        Assert.Equal("tenants.yaml", ex.File);
        Assert.Contains("line", ex.Message);
    }

    [Fact]
    public void OtherKindsAreIgnored()
    {
        var set = Parse("""
            apiVersion: dapr.io/v1alpha1
            kind: Resiliency
            metadata:
              name: r
            spec: {}
            """);
        Assert.Empty(set.Tenants);
        Assert.Empty(set.Components);
    }

    [Fact]
    public void ComponentMetadataValuesAndRefs()
    {
        var set = Parse("""
            apiVersion: dapr.io/v1alpha1
            kind: Component
            metadata:
              name: cache
            spec:
              type: state.redis
              version: v1
              initTimeout: 1m30s
              ignoreErrors: true
              metadata:
                - name: redisHost
                  value: localhost:6379
                - name: redisPassword
                  secretKeyRef:
                    name: redis
                    key: password
                - name: fromEnv
                  envRef: REDIS_USER
            auth:
              secretStore: envsecrets
            """);
        var component = set.Components[0];
        Assert.Equal(TimeSpan.FromSeconds(90), component.InitTimeout);
        Assert.True(component.IgnoreErrors);
        Assert.Equal("envsecrets", component.SecretStore);
        Assert.Equal(new ComponentMetadataItem("redisHost", "localhost:6379"), component.Metadata[0]);
        Assert.Equal(new SecretKeyRef("redis", "password"), component.Metadata[1].SecretKeyRef);
        Assert.Equal("REDIS_USER", component.Metadata[2].EnvRef);
    }
}
