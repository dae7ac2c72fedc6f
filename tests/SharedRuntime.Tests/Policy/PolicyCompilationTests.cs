using SharedRuntime.Configuration;
using SharedRuntime.Policy;

namespace SharedRuntime.Tests.Policy;

/// <summary>API access rules and secret scopes decide as Dapr decides.</summary>
public sealed class PolicyCompilationTests
{
    private static ResourceSet Parse(string yaml) => ResourceParser.Parse(ResourceReader.ReadText("c.yaml", yaml), _ => null);

    private static ApiAccessPolicy Api(ApiAccessRule[] allowed, ApiAccessRule[] denied) => ApiAccessPolicy.Compile(new ApiAccessConfig(allowed, denied))!;

    [Fact]
    public void Http_rules_match_the_group_or_the_start_of_the_versioned_route()
    {
        var byRoute = Api([new("state", "v1.0", ApiProtocol.Http)], []);
        Assert.True(byRoute.AllowsHttp("v1/state", "v1.0/state/{storeName}/{key}"));
        Assert.False(byRoute.AllowsHttp("v1alpha1/state", "v1.0-alpha1/state/{storeName}/query"));
        Assert.False(byRoute.AllowsHttp("v1/publish", "v1.0/publish/{pubsubName}/{**topic}"));

        var byGroup = Api([new("state", "v1", ApiProtocol.Http)], []);
        Assert.True(byGroup.AllowsHttp("v1/state", "v1.0/state/{storeName}/{key}"));
        // gRPC rules say nothing about HTTP.
        Assert.True(Api([], [new("state", "v1", ApiProtocol.Grpc)]).AllowsHttp("v1/state", "v1.0/state/{storeName}/{key}"));
    }

    [Fact]
    public void The_deny_list_wins_over_the_allow_list()
    {
        var policy = Api([new("state", "v1.0", ApiProtocol.Http), new("publish", "v1.0", ApiProtocol.Http)], [new("state", "v1.0", ApiProtocol.Http)]);
        Assert.False(policy.AllowsHttp("v1/state", "v1.0/state/{storeName}/{key}"));
        Assert.True(policy.AllowsHttp("v1/publish", "v1.0/publish/{pubsubName}/{**topic}"));
        Assert.False(policy.AllowsHttp("v1/bindings", "v1.0/bindings/{name}"));
    }

    [Fact]
    public void Grpc_rules_name_methods_by_api_and_version()
    {
        var policy = Api([new("state", "v1", ApiProtocol.Grpc)], [new("state", "v1alpha1", ApiProtocol.Grpc)]);
        Assert.True(policy.AllowsGrpc("/dapr.proto.runtime.v1.Dapr/GetState"));
        Assert.True(policy.AllowsGrpc("/dapr.proto.runtime.v1.Dapr/ExecuteStateTransaction"));
        Assert.False(policy.AllowsGrpc("/dapr.proto.runtime.v1.Dapr/QueryStateAlpha1"));
        Assert.False(policy.AllowsGrpc("/dapr.proto.runtime.v1.Dapr/PublishEvent"));
        // Methods of other services are not Dapr APIs.
        Assert.True(policy.AllowsGrpc("/grpc.health.v1.Health/Check"));
        // A gRPC list whose rules name no method restricts nothing, as in Dapr.
        Assert.True(Api([new("made-up", "v1", ApiProtocol.Grpc)], []).AllowsGrpc("/dapr.proto.runtime.v1.Dapr/PublishEvent"));
    }

    [Theory]
    // Dapr's table: defaultAccess, allowedSecrets, deniedSecrets, the secret asked for, allowed.
    [InlineData("allow", "", "", "s1", true)]
    [InlineData("deny", "", "", "s1", false)]
    [InlineData("deny", "s1", "", "s1", true)]
    [InlineData("deny", "s1", "", "s2", false)]
    [InlineData("allow", "", "s1", "s1", false)]
    [InlineData("allow", "", "s1", "s2", true)]
    [InlineData("allow", "s1", "", "s2", false)]
    [InlineData("deny", "", "s1", "s2", false)]
    [InlineData("allow", "s1", "s2", "s1", true)]
    [InlineData("allow", "s1", "s2", "s3", false)]
    [InlineData("allow", "s1", "", "S1", false)]
    public void Secret_scopes_decide_as_dapr_does(string defaultAccess, string allowed, string denied, string key, bool expected)
    {
        static string[] List(string names) => names.Length == 0 ? [] : names.Split(',');
        var policy = SecretAccessPolicy.Compile([new SecretScopeConfig("vault",
            defaultAccess == "allow" ? AccessAction.Allow : AccessAction.Deny, List(allowed), List(denied))])!;
        Assert.Equal(expected, policy.IsAllowed("vault", key));
        Assert.True(policy.IsAllowed("another-store", key));
    }

    [Fact]
    public void A_configuration_is_parsed_with_its_api_rules_secret_scopes_and_sampling_rate()
    {
        var set = Parse("""
            apiVersion: dapr.io/v1alpha1
            kind: Configuration
            metadata:
              name: c
            spec:
              tracing:
                samplingRate: "0.25"
              api:
                allowed:
                  - name: state
                    version: v1
                    protocol: GRPC
                  - name: publish
                    version: v1.0
                denied:
                  - name: secrets
                    version: v1.0
                    protocol: http
              secrets:
                scopes:
                  - storeName: vault
                    defaultAccess: deny
                    allowedSecrets: ["a", "b"]
            """);
        var config = Assert.Single(set.Configurations);
        Assert.Equal(0.25, config.SamplingRate);
        Assert.Equal([new ApiAccessRule("state", "v1", ApiProtocol.Grpc), new ApiAccessRule("publish", "v1.0", ApiProtocol.Http)], config.Api!.Allowed);
        Assert.Equal([new ApiAccessRule("secrets", "v1.0", ApiProtocol.Http)], config.Api.Denied);
        var scope = Assert.Single(config.SecretScopes);
        Assert.Equal(("vault", AccessAction.Deny), (scope.StoreName, scope.DefaultAccess));
        Assert.Equal(["a", "b"], scope.AllowedSecrets);
    }

    [Theory]
    [InlineData("api:\n    allowed:\n      - name: state\n        version: v1\n        protocol: websocket", "protocol")]
    [InlineData("tracing:\n    samplingRate: \"2\"", "samplingRate")]
    [InlineData("secrets:\n    scopes:\n      - storeName: a\n      - storeName: a", "storeName")]
    [InlineData("secrets:\n    scopes:\n      - storeName: a\n        defaultAccess: maybe", "defaultAccess")]
    public void A_bad_policy_field_is_refused_naming_the_field(string spec, string field)
    {
        var ex = Assert.Throws<ResourceException>(() => Parse($"""
            apiVersion: dapr.io/v1alpha1
            kind: Configuration
            metadata:
              name: c
            spec:
              {spec}
            """));
        Assert.Contains(field, ex.Message);
    }
}
