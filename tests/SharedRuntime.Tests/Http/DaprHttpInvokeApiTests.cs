using SharedRuntime.Http;

namespace SharedRuntime.Tests.Http;

/// <summary>
/// The invoke route recognised before the router takes exactly the paths the routed <c>/v1.0/invoke/{appId}/method/{**method}</c>
/// would, with the same values; anything else (the invoke-by-URL form, an empty app-id or method) is left to the router.
/// </summary>
public class DaprHttpInvokeApiTests
{
    [Theory]
    [InlineData("/v1.0/invoke/orders/method/neworder", "orders", "neworder")]
    [InlineData("/V1.0/INVOKE/orders/METHOD/a/b/", "orders", "a/b/")]
    [InlineData("/v1.0/invoke/orders.ns/method/a//b", "orders.ns", "a//b")]
    [InlineData("/v1.0/invoke/orders/method/method/x", "orders", "method/x")]
    public void An_invoke_path_gives_the_routes_values(string path, string appId, string method)
    {
        Assert.True(DaprHttpInvokeApi.TryMatchInvoke(path, out var matchedAppId, out var matchedMethod));
        Assert.Equal(appId, matchedAppId);
        Assert.Equal(method, matchedMethod);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("/v1.0/invoke/orders/method/")]
    [InlineData("/v1.0/invoke/orders/method")]
    [InlineData("/v1.0/invoke//method/x")]
    [InlineData("/v1.0/invoke/http://127.0.0.1:3000/method/x")]
    [InlineData("/v1.0/invoke/orders/methods/x")]
    [InlineData("/v1.0/state/store/k")]
    [InlineData("/v1.0-alpha1/invoke/orders/method/x")]
    public void Any_other_path_is_left_to_the_router(string? path) =>
        Assert.False(DaprHttpInvokeApi.TryMatchInvoke(path, out _, out _));
}
