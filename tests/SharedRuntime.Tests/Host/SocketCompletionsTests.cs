using SharedRuntime.Host.Lifecycle;

namespace SharedRuntime.Tests.Host;

public class SocketCompletionsTests
{
    [Fact]
    public void Socket_completions_run_inline_when_the_operator_set_nothing()
    {
        var environment = new Dictionary<string, string>();

        SocketCompletions.RunInlineUnlessSet(environment.GetValueOrDefault, (name, value) => environment[name] = value);

        Assert.Equal("1", environment["DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS"]);
    }

    [Fact]
    public void The_operators_setting_of_inline_socket_completions_wins()
    {
        var environment = new Dictionary<string, string> { ["DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS"] = "0" };

        SocketCompletions.RunInlineUnlessSet(environment.GetValueOrDefault, (name, value) => environment[name] = value);

        Assert.Equal("0", environment["DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS"]);
    }
}
