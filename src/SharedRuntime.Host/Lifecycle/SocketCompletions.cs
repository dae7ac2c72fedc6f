namespace SharedRuntime.Host.Lifecycle;

/// <summary>
/// Socket completions run on the socket engine's own thread rather than being queued to the thread pool: a call forwarded
/// to an app continues from the app's answer without a thread-pool hop, which on one core took about a fifth of the
/// runtime's CPU per invocation (bench/load/invoke-nginx.sh). Kestrel still hands each request to the thread pool, so a
/// request's own work never runs on the engine's thread; what does is the short continuation after a socket read or write
/// (nothing in the runtime blocks a thread on a task). The operator's own setting of the variable wins: <c>=0</c> turns it off.
/// Must run before the first socket is used: .NET reads the variable once.
/// </summary>
internal static class SocketCompletions
{
    internal const string InlineVariable = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";

    public static void RunInlineUnlessSet() => RunInlineUnlessSet(Environment.GetEnvironmentVariable, Environment.SetEnvironmentVariable);

    internal static void RunInlineUnlessSet(Func<string, string?> read, Action<string, string> write)
    {
        if (read(InlineVariable) is null)
        {
            write(InlineVariable, "1");
        }
    }
}
