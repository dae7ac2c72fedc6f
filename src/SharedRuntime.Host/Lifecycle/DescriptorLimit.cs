using System.Runtime.InteropServices;

namespace SharedRuntime.Host.Lifecycle;

/// <summary>
/// The process's limit on open files, which bounds the connections it can hold: every client connection and every
/// connection to an app is a descriptor. A shell often starts processes with a soft limit of 1024 under a much higher
/// hard one; the runtime raises the soft limit to the hard one at start, as servers do, and bounds its client
/// connections (<see cref="SharedRuntime.Http.ConnectionLimit"/>) to half of it, leaving the rest for the connections
/// to apps and backends, files and listeners.
/// </summary>
internal static class DescriptorLimit
{
    private const int LimitOpenFiles = 7; // RLIMIT_NOFILE on Linux

    /// <summary>Raises the soft limit on open files to the hard limit; the soft limit in force after, or null where it cannot be read.</summary>
    public static long? Raise()
    {
        if (!OperatingSystem.IsLinux())
        {
            return null;
        }
        try
        {
            if (GetLimit(LimitOpenFiles, out var limit) != 0)
            {
                return null;
            }
            if (limit.Soft < limit.Hard)
            {
                var raised = limit with { Soft = limit.Hard };
                if (SetLimit(LimitOpenFiles, in raised) == 0)
                {
                    return (long)Math.Min(raised.Soft, long.MaxValue);
                }
            }
            return (long)Math.Min(limit.Soft, long.MaxValue);
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            return null;
        }
    }

    /// <summary>The bound on client connections: <paramref name="configured"/>, but at most half of <paramref name="openFiles"/> (and at least 1).</summary>
    public static int ClientConnections(int configured, long? openFiles) =>
        openFiles is { } files ? (int)Math.Clamp(files / 2, 1, configured) : configured;

    [StructLayout(LayoutKind.Sequential)]
    private record struct Limit(ulong Soft, ulong Hard);

    [DllImport("libc", EntryPoint = "getrlimit", SetLastError = true)]
    private static extern int GetLimit(int resource, out Limit limit);

    [DllImport("libc", EntryPoint = "setrlimit", SetLastError = true)]
    private static extern int SetLimit(int resource, in Limit limit);
}
