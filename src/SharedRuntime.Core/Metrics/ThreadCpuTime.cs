using System.Runtime.InteropServices;

namespace SharedRuntime.Metrics;

/// <summary>
/// CPU time the calling thread has used, in nanoseconds: <c>clock_gettime(CLOCK_THREAD_CPUTIME_ID)</c>, the kernel's
/// exact run time of the thread (not a sampled estimate). Linux only; elsewhere <see cref="IsSupported"/> is false.
/// </summary>
internal static partial class ThreadCpuTime
{
    private const int ClockThreadCpuTime = 3;

    public static bool IsSupported { get; } = OperatingSystem.IsLinux() && Probe();

    /// <summary>The calling thread's CPU time so far, in nanoseconds; 0 when it cannot be read.</summary>
    public static long Now() => GetTime(ClockThreadCpuTime, out var time) == 0 ? (time.Seconds * 1_000_000_000) + time.Nanoseconds : 0;

    private static bool Probe()
    {
        try
        {
            return GetTime(ClockThreadCpuTime, out _) == 0;
        }
        catch (Exception ex) when (ex is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;
        }
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    // A short call that never blocks: no GC transition needed around it.
    [DllImport("libc", EntryPoint = "clock_gettime")]
    [SuppressGCTransition]
    private static extern int GetTime(int clock, out TimeSpec time);
}
