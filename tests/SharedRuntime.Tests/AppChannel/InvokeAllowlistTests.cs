using System.Net;
using SharedRuntime.AppChannel;

namespace SharedRuntime.Tests.AppChannel;

public class InvokeAllowlistTests
{
    [Theory]
    [InlineData("api.example.com", "api.example.com", 443, true)]
    [InlineData("api.example.com", "API.example.com", 8080, true)]
    [InlineData("api.example.com:443", "api.example.com", 443, true)]
    [InlineData("api.example.com:443", "api.example.com", 80, false)]
    [InlineData("*.example.com", "a.b.example.com", 443, true)]
    [InlineData("*.example.com", "example.com", 443, false)]
    [InlineData("*.example.com", "evilexample.com", 443, false)]
    [InlineData("example.com", "example.com.evil.net", 443, false)]
    [InlineData("127.0.0.1:5000", "127.0.0.1", 5000, true)]
    [InlineData("[::1]:5000", "[::1]", 5000, true)]
    [InlineData("*", "anything.net", 1, true)]
    public void MatchesHostsAndPorts(string pattern, string host, int port, bool allowed)
    {
        var allowlist = InvokeAllowlist.Parse([pattern]);
        Assert.Equal(allowed, allowlist.Allows(new Uri($"http://{host}/").IdnHost, port));
    }

    [Fact]
    public void EmptyAllowsNothing()
    {
        Assert.True(InvokeAllowlist.None.IsEmpty);
        Assert.False(InvokeAllowlist.None.Allows("example.com", 443));
        Assert.True(InvokeAllowlist.Parse([""]).IsEmpty);
    }

    [Theory]
    [InlineData("exa mple.com")]
    [InlineData("example.com:0")]
    [InlineData("example.com:http")]
    [InlineData("ex*ample.com")]
    [InlineData("*.")]
    public void RefusesBadPatterns(string pattern) =>
        Assert.Throws<FormatException>(() => InvokeAllowlist.Parse([pattern]));

    [Theory]
    [InlineData("169.254.169.254", true)]
    [InlineData("::ffff:169.254.169.254", true)]
    [InlineData("fe80::1", true)]
    [InlineData("0.0.0.0", true)]
    [InlineData("10.0.0.1", false)]
    [InlineData("127.0.0.1", false)]
    public void LinkLocalAddressesAreNeverReached(string address, bool forbidden) =>
        Assert.Equal(forbidden, InvokeAllowlist.IsForbiddenAddress(IPAddress.Parse(address)));
}
