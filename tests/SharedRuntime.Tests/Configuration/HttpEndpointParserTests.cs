using SharedRuntime.Configuration;

namespace SharedRuntime.Tests.Configuration;

public class HttpEndpointParserTests
{
    private static ResourceSet Parse(string yaml, SecretResolver? secrets = null) =>
        ResourceParser.Parse(ResourceReader.ReadText("endpoints.yaml", yaml), _ => null, secrets);

    private static string Endpoint(string spec, string scopes = "") => $"""
        apiVersion: dapr.io/v1alpha1
        kind: HTTPEndpoint
        metadata:
          name: weather
        spec:
        {spec}
        {scopes}
        """;

    [Fact]
    public void ReadsBaseUrlHeadersAndScopes()
    {
        var set = Parse(Endpoint("""
              baseUrl: https://api.example.com/v2/
              headers:
                - name: Accept-Language
                  value: en-US
                - name: Authorization
                  secretKeyRef:
                    name: weather-secret
                    key: token
            """, "scopes:\n  - orders"), (name, key) => name == "weather-secret" && key == "token" ? "Bearer abc" : null);

        var endpoint = Assert.Single(set.HttpEndpoints);
        Assert.Equal("weather", endpoint.Name);
        Assert.Equal("https://api.example.com/v2", endpoint.BaseUrl.OriginalString);
        Assert.Equal([new("Accept-Language", "en-US"), new("Authorization", "Bearer abc")], endpoint.Headers);
        Assert.Equal(["orders"], endpoint.Scopes);
        Assert.True(endpoint.IsVisibleTo("orders", null));
        Assert.False(endpoint.IsVisibleTo("shipping", null));
    }

    [Fact]
    public void WithoutScopesEveryAppOfItsNamespaceSeesIt()
    {
        var endpoint = Assert.Single(Parse(Endpoint("  baseUrl: http://example.com")).HttpEndpoints);
        Assert.True(endpoint.IsVisibleTo("anyone", null));
        Assert.False((endpoint with { Namespace = "team-a" }).IsVisibleTo("anyone", "team-b"));
        Assert.True((endpoint with { Namespace = "team-a" }).IsVisibleTo("anyone", "team-a"));
    }

    [Theory]
    [InlineData("  baseUrl: ftp://example.com", "spec.baseUrl", "http:// or https://")]
    [InlineData("  baseUrl: example.com", "spec.baseUrl", "http:// or https://")]
    [InlineData("  baseUrl: http://user:pw@example.com", "spec.baseUrl", "user info")]
    [InlineData("  baseUrl: http://example.com/?a=b", "spec.baseUrl", "query")]
    [InlineData("  headers: []", "spec.baseUrl", "is required")]
    [InlineData("  baseUrl: http://example.com\n  headers:\n    - name: Host\n      value: evil", "spec.headers[0].name", "set by the runtime")]
    [InlineData("  baseUrl: http://example.com\n  headers:\n    - name: dapr-api-token\n      value: x", "spec.headers[0].name", "set by the runtime")]
    [InlineData("  baseUrl: http://example.com\n  headers:\n    - name: 'bad name'\n      value: x", "spec.headers[0].name", "not a valid header name")]
    [InlineData("  baseUrl: http://example.com\n  headers:\n    - name: X-A\n      value: \"a\\r\\nb\"", "spec.headers[0]", "visible ASCII")]
    [InlineData("  baseUrl: http://example.com\n  headers:\n    - name: X-A", "spec.headers[0]", "needs value or secretKeyRef")]
    [InlineData("  baseUrl: http://example.com\n  headers:\n    - name: X-A\n      secretKeyRef:\n        name: s\n        key: k", "spec.headers[0].secretKeyRef", "kubernetes mode")]
    [InlineData("  baseUrl: https://example.com\n  clientTLS:\n    certificate:\n      value: x", "spec.clientTLS", "not supported")]
    public void RefusesWhatCannotBeInvokedSafely(string spec, string field, string problem)
    {
        var error = Assert.Throws<ResourceException>(() => Parse(Endpoint(spec)));
        Assert.Equal(field, error.Field);
        Assert.Contains(problem, error.Problem, StringComparison.Ordinal);
    }

    [Fact]
    public void HeadersAreBounded()
    {
        var headers = string.Concat(Enumerable.Range(0, HttpEndpointParser.MaxHeaders + 1).Select(i => $"    - name: X-H{i}\n      value: v\n"));
        var error = Assert.Throws<ResourceException>(() => Parse(Endpoint($"  baseUrl: http://example.com\n  headers:\n{headers}")));
        Assert.Contains($"more than {HttpEndpointParser.MaxHeaders}", error.Problem, StringComparison.Ordinal);
    }
}
