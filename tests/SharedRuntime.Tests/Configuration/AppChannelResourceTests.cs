using System.Text.Json;
using SharedRuntime.Configuration;

namespace SharedRuntime.Tests.Configuration;

/// <summary>Subscription, Resiliency and Configuration resources, and a Tenant's app channel settings, as users write them.</summary>
public class AppChannelResourceTests
{
    private static ResourceSet Parse(string yaml) => ResourceParser.Parse(ResourceReader.ReadText("app.yaml", yaml), _ => null);

    private static ResourceException Refused(string yaml) => Assert.Throws<ResourceException>(() => Parse(yaml));

    /// <summary>A bad Tenant document leaves that tenant out of the set instead of refusing the set.</summary>
    private static ResourceException TenantRefused(string yaml)
    {
        var set = Parse(yaml);
        Assert.Empty(set.Tenants);
        return Assert.Single(set.RejectedTenants);
    }

    [Fact]
    public void ReadsAV2alpha1SubscriptionWithRulesDeadLetterAndScopes()
    {
        var set = Parse("""
            apiVersion: dapr.io/v2alpha1
            kind: Subscription
            metadata:
              name: orders-sub
            spec:
              pubsubname: pubsub
              topic: orders
              routes:
                rules:
                  - match: event.type == "widget"
                    path: /widgets
                default: /orders
              deadLetterTopic: poison
              metadata:
                rawPayload: "true"
            scopes:
              - orders
            """);
        var subscription = Assert.Single(set.Subscriptions);
        Assert.Equal(("pubsub", "orders", "poison"), (subscription.PubsubName, subscription.Topic, subscription.DeadLetterTopic));
        Assert.Equal("/orders", subscription.Routes.Default);
        Assert.Equal(new RouteRule("event.type == \"widget\"", "/widgets"), Assert.Single(subscription.Routes.Rules));
        Assert.Equal("true", subscription.Metadata["rawPayload"]);
        Assert.True(subscription.AppliesTo("orders"));
        Assert.False(subscription.AppliesTo("billing"));
    }

    [Fact]
    public void ReadsAV1alpha1SubscriptionRoute()
    {
        var subscription = Assert.Single(Parse("""
            apiVersion: dapr.io/v1alpha1
            kind: Subscription
            metadata:
              name: legacy
            spec:
              pubsubname: pubsub
              topic: audit
              route: /audit
            """).Subscriptions);
        Assert.Equal("/audit", subscription.Routes.Default);
        Assert.True(subscription.AppliesTo("anyone"));
    }

    [Fact]
    public void ABadMatchExpressionRefusesThatSubscriptionAloneNamingTheField()
    {
        var set = Parse("""
            apiVersion: dapr.io/v2alpha1
            kind: Subscription
            metadata:
              name: broken
            spec:
              pubsubname: pubsub
              topic: t
              routes:
                rules:
                  - match: event.type === 
                    path: /x
            scopes:
              - orders
            ---
            apiVersion: dapr.io/v1alpha1
            kind: Subscription
            metadata:
              name: fine
            spec:
              pubsubname: pubsub
              topic: t
              route: /t
            """);
        var (error, scopes) = Assert.Single(set.RejectedSubscriptions);
        Assert.Equal(("Subscription/broken", "spec.routes.rules[0].match"), (error.Document, error.Field));
        Assert.Equal(["orders"], scopes);
        Assert.Equal("fine", Assert.Single(set.Subscriptions).Name);
    }

    [Fact]
    public void ReadsResiliencyPoliciesAndTargets()
    {
        var resiliency = Assert.Single(Parse("""
            apiVersion: dapr.io/v1alpha1
            kind: Resiliency
            metadata:
              name: r
            spec:
              policies:
                timeouts:
                  general: 5s
                retries:
                  important:
                    policy: exponential
                    maxInterval: 15s
                    maxRetries: 10
                    matching:
                      httpStatusCodes: "429,500-599"
                  forever:
                    policy: constant
                    duration: 1s
                circuitBreakers:
                  cb:
                    maxRequests: 2
                    interval: 10s
                    timeout: 30s
                    trip: consecutiveFailures > 5 || totalFailures >= 20
              targets:
                apps:
                  billing:
                    timeout: general
                    retry: important
                    circuitBreaker: cb
                components:
                  pubsub:
                    inbound:
                      retry: forever
            scopes: [orders]
            """).Resiliencies);
        Assert.Equal(TimeSpan.FromSeconds(5), resiliency.Timeouts["general"]);
        var important = resiliency.Retries["important"];
        Assert.Equal((RetryBackoff.Exponential, 10, TimeSpan.FromSeconds(15)), (important.Policy, important.MaxRetries, important.MaxInterval));
        Assert.True(important.HttpStatusCodes!.Contains(503));
        Assert.True(important.HttpStatusCodes.Contains(429));
        Assert.False(important.HttpStatusCodes.Contains(404));
        Assert.Equal(-1, resiliency.Retries["forever"].MaxRetries);
        Assert.Equal(2, resiliency.CircuitBreakers["cb"].MaxRequests);
        Assert.Equal(new PolicyRefs("general", "important", "cb"), resiliency.Apps["billing"]);
        Assert.Equal(new PolicyRefs(null, "forever", null), resiliency.Components["pubsub"].Inbound);
        Assert.Null(resiliency.Components["pubsub"].Outbound);
        Assert.True(resiliency.AppliesTo("orders"));
        Assert.False(resiliency.AppliesTo("billing"));
    }

    [Theory]
    [InlineData("retry: missing", "spec.targets.apps.billing.retry")]
    [InlineData("timeout: nope", "spec.targets.apps.billing.timeout")]
    public void ATargetNamingAnUnknownPolicyIsRefused(string reference, string field)
    {
        var error = Refused($"""
            apiVersion: dapr.io/v1alpha1
            kind: Resiliency
            metadata:
              name: r
            spec:
              targets:
                apps:
                  billing:
                    {reference}
            """);
        Assert.Equal(field, error.Field);
    }

    [Fact]
    public void ABadTripExpressionOrStatusCodeListIsRefused()
    {
        Assert.Equal("spec.policies.circuitBreakers.cb.trip", Refused("""
            apiVersion: dapr.io/v1alpha1
            kind: Resiliency
            metadata:
              name: r
            spec:
              policies:
                circuitBreakers:
                  cb:
                    trip: consecutiveFailurez > 5
            """).Field);
        Assert.Equal("spec.policies.retries.r.matching.httpStatusCodes", Refused("""
            apiVersion: dapr.io/v1alpha1
            kind: Resiliency
            metadata:
              name: r
            spec:
              policies:
                retries:
                  r:
                    matching:
                      httpStatusCodes: "500-400"
            """).Field);
    }

    [Fact]
    public void ReadsAccessControlAndTheTenantsAppChannel()
    {
        var set = Parse("""
            apiVersion: dapr.io/v1alpha1
            kind: Configuration
            metadata:
              name: acl
            spec:
              tracing:
                samplingRate: "1"
              accessControl:
                defaultAction: deny
                policies:
                  - appId: orders
                    defaultAction: allow
                    operations:
                      - name: /admin/**
                        httpVerb: ["POST"]
                        action: deny
            ---
            apiVersion: sharedruntime.io/v1alpha1
            kind: Tenant
            metadata:
              name: billing
            spec:
              apiToken: t
              appEndpoint: http://127.0.0.1:8081/
              config: acl
              appChannel:
                maxConcurrency: 4
                maxQueue: 0
                timeout: 2s
                discoverSubscriptions: true
                appApiToken: app-secret
            """);
        var tenant = Assert.Single(set.Tenants);
        Assert.Equal("acl", tenant.ConfigName);
        Assert.Equal("http://127.0.0.1:8081", tenant.AppEndpoint);
        Assert.Equal(new AppChannelConfig { MaxConcurrency = 4, MaxQueue = 0, Timeout = TimeSpan.FromSeconds(2), DiscoverSubscriptions = true, AppApiToken = "app-secret" }, tenant.AppChannel);
        var acl = Assert.Single(set.Configurations).AccessControl!;
        Assert.True(acl.IsAllowed("orders", "invoices/1", "GET"));
        Assert.True(acl.IsAllowed("orders", "admin/users", "GET"));
        Assert.False(acl.IsAllowed("orders", "admin/users", "POST"));
        Assert.False(acl.IsAllowed("orders", "/admin/users/7/roles", "POST"));
        Assert.False(acl.IsAllowed("shipping", "invoices/1", "GET"));
    }

    [Fact]
    public void ATenantNamingAMissingConfigurationOrAnUnknownAppChannelFieldIsRefused()
    {
        Assert.Equal("spec.config", TenantRefused("""
            apiVersion: sharedruntime.io/v1alpha1
            kind: Tenant
            metadata:
              name: billing
            spec:
              apiToken: t
              config: nowhere
            """).Field);
        Assert.Equal("spec.appChannel.maxConcurency", TenantRefused("""
            apiVersion: sharedruntime.io/v1alpha1
            kind: Tenant
            metadata:
              name: billing
            spec:
              apiToken: t
              appChannel:
                maxConcurency: 3
            """).Field);
    }

    [Fact]
    public void ProgrammaticSubscriptionsAreOnByDefaultNeverPolledAndARefreshIntervalHasAFloor()
    {
        Assert.True(AppChannelConfig.Default.DiscoverSubscriptions);
        Assert.Null(AppChannelConfig.Default.SubscriptionRefreshInterval);
        var set = Parse("""
            apiVersion: sharedruntime.io/v1alpha1
            kind: Tenant
            metadata:
              name: billing
            spec:
              apiToken: t
              appEndpoint: http://127.0.0.1:8081/
              appChannel:
                discoverSubscriptions: false
                subscriptionRefreshInterval: 5m
            """);
        var channel = Assert.Single(set.Tenants).AppChannel;
        Assert.False(channel.DiscoverSubscriptions);
        Assert.Equal(TimeSpan.FromMinutes(5), channel.SubscriptionRefreshInterval);
        Assert.Equal("spec.appChannel.subscriptionRefreshInterval", TenantRefused("""
            apiVersion: sharedruntime.io/v1alpha1
            kind: Tenant
            metadata:
              name: billing
            spec:
              apiToken: t
              appChannel:
                subscriptionRefreshInterval: 1s
            """).Field);
    }

    [Theory]
    [InlineData("", AppProtocol.Http)]
    [InlineData("appProtocol: http", AppProtocol.Http)]
    [InlineData("appProtocol: h2c", AppProtocol.H2c)]
    [InlineData("appProtocol: grpc", AppProtocol.Grpc)]
    public void ATenantAsksForHttpOrH2cOrGrpcAndGetsHttpWhenItSaysNothing(string line, AppProtocol expected)
    {
        var tenant = Assert.Single(Parse($"""
            apiVersion: sharedruntime.io/v1alpha1
            kind: Tenant
            metadata:
              name: billing
            spec:
              apiToken: t
              appEndpoint: http://127.0.0.1:8081
              {line}
            """).Tenants);
        Assert.Equal(expected, tenant.AppProtocol);
    }

    [Theory]
    [InlineData("http://127.0.0.1:8081", "appProtocol: GRPC", "'GRPC' is not a known app protocol; known protocols are http, h2c, grpc")]
    [InlineData("http://127.0.0.1:8081", "appProtocol: HTTP2", "'HTTP2' is not a known app protocol; known protocols are http, h2c, grpc")]
    [InlineData("https://billing.example", "appProtocol: h2c", "h2c is HTTP/2 without TLS: the appEndpoint must be an http URL")]
    [InlineData("https://billing.example", "appProtocol: grpc", "grpc is HTTP/2 without TLS: the appEndpoint must be an http URL")]
    public void AnUnknownAppProtocolOrH2cOverTlsRefusesTheTenantNamingTheField(string endpoint, string line, string problem)
    {
        var refused = TenantRefused($"""
            apiVersion: sharedruntime.io/v1alpha1
            kind: Tenant
            metadata:
              name: billing
            spec:
              apiToken: t
              appEndpoint: {endpoint}
              {line}
            """);
        Assert.Equal("spec.appProtocol", refused.Field);
        Assert.Contains(problem, refused.Message);
    }

    [Theory]
    [InlineData("/orders", "/orders", true)]
    [InlineData("/orders", "/orders/1", false)]
    [InlineData("/orders/*", "/orders/1", true)]
    [InlineData("/orders/*", "/orders/1/lines", false)]
    [InlineData("/orders/**", "/orders/1/lines", true)]
    [InlineData("/orders/**", "/orders", true)]
    [InlineData("/orders/**", "/ordersx", false)]
    public void OperationNamesMatchPathsLikeDapr(string name, string path, bool matches) =>
        Assert.Equal(matches, new OperationAccess(name, ["*"], AccessAction.Allow).Matches(path));

    [Theory]
    [InlineData("event.type == \"widget\"", true)]
    [InlineData("event.type != \"widget\"", false)]
    [InlineData("event.data.price > 100", true)]
    [InlineData("event.data.price > 100 && event.data.rush == true", false)]
    [InlineData("event.data.price > 1000 || event.data.rush == false", true)]
    [InlineData("(event.data.price >= 150) && !(event.type == \"gadget\")", true)]
    [InlineData("event.data.missing == \"x\"", false)]
    [InlineData("", true)]
    public void RouteMatchesEvaluateOverTheCloudEvent(string expression, bool expected)
    {
        using var cloudEvent = JsonDocument.Parse("""{"type":"widget","data":{"price":150,"rush":false}}""");
        Assert.Equal(expected, RouteMatch.Parse(expression).Matches(cloudEvent.RootElement));
    }

    [Theory]
    [InlineData("consecutiveFailures > 5", 6, true)]
    [InlineData("consecutiveFailures > 5", 5, false)]
    [InlineData("consecutiveFailures >= 2 && requests > 10", 3, false)]
    [InlineData("(consecutiveFailures >= 2) || totalFailures == 99", 2, true)]
    public void TripExpressionsEvaluateOverTheCounts(string expression, long consecutiveFailures, bool trips) =>
        Assert.Equal(trips, TripExpression.Parse(expression).ShouldTrip(new BreakerCounts(5, 0, consecutiveFailures, 0, consecutiveFailures)));
}
