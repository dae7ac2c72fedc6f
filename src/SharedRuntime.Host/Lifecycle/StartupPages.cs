using System.Globalization;
using System.Runtime.InteropServices;

namespace SharedRuntime.Host.Lifecycle;

/// <summary>
/// Gives back the pages of the runtime's own code and read-only data that start-up touched and serving may never touch
/// again: start-up reads most of the executable once (type data to set up, code that runs once), and those pages would
/// otherwise stay resident for the life of the process. Only clean pages of read-only file mappings are given back
/// (<c>madvise(MADV_DONTNEED)</c>), those of the executable and of managed assemblies: they are still in the kernel's
/// page cache, and a page that is needed again is mapped back from there on its first use. A mapping holding any page
/// the process changed (relocations, copy-on-write) is left alone. Linux only.
/// <para>
/// A reload touches some of those pages again: its own code, and above all the unwind and GC tables of the executable
/// (<c>.eh_frame</c>, <c>.eh_frame_hdr</c>, <c>.dotnet_eh_table</c>), which the garbage collection a reload of many tenants
/// triggers reads to walk every thread's stack. With the kernel mapping 64 KB around each page faulted in, the first
/// reload took about 6 MB back (measured with 10,000 tenants on the native build). <see cref="ReleaseAgain"/> gives the
/// same mappings back again once a burst of reloads has settled (<see cref="AfterReloads"/>), and once
/// <see cref="SettleTime"/> after start-up's own release: the first seconds of serving (the first timer ticks, the first
/// write of the last-good cache, the first scrape) touch some pages once and never again.
/// </para>
/// </summary>
internal sealed class StartupPages
{
    private const int MadviseDontNeed = 4;

    /// <summary>How long after start-up's release the pages are given back once more.</summary>
    public static readonly TimeSpan SettleTime = TimeSpan.FromSeconds(3);

    private (nint Start, nuint Length)[] _released = [];

    /// <summary>Gives the pages back; returns the bytes that were resident in the mappings given back.</summary>
    public long Release()
    {
        if (!OperatingSystem.IsLinux())
        {
            return 0;
        }
        var executable = Environment.ProcessPath;
        long released = 0;
        List<(nint, nuint)> ranges = [];
        foreach (var mapping in ReadMappings())
        {
            if (!mapping.ReadOnlyPrivateFile || mapping.ChangedKb != 0 || mapping.ResidentKb == 0 ||
                !(mapping.Path == executable || mapping.Path.EndsWith(".dll", StringComparison.OrdinalIgnoreCase)))
            {
                continue;
            }
            var range = ((nint)mapping.Start, (nuint)(mapping.End - mapping.Start));
            if (Madvise(range.Item1, range.Item2, MadviseDontNeed) == 0)
            {
                released += mapping.ResidentKb * 1024;
                if (mapping.Path == executable)
                {
                    ranges.Add(range); // mapped for the life of the process: safe to give back again by address
                }
            }
        }
        Volatile.Write(ref _released, [.. ranges]);
        return released;
    }

    /// <summary>
    /// Gives back again the executable's own mappings that <see cref="Release"/> gave back, without reading
    /// <c>/proc/self/smaps</c> again (about 7 ms): a read-only mapping cannot have been written since, and the executable
    /// stays mapped where it is for the life of the process. An assembly's mapping (the JIT build) is not given back again:
    /// it could have been unmapped since, and its addresses given to memory in use. Does nothing before <see cref="Release"/>.
    /// </summary>
    public void ReleaseAgain()
    {
        foreach (var (start, length) in Volatile.Read(ref _released))
        {
            _ = Madvise(start, length, MadviseDontNeed);
        }
    }

    /// <summary>The executable's mappings <see cref="Release"/> gave back, which <see cref="ReleaseAgain"/> gives back again.</summary>
    public int ReleasedMappings => Volatile.Read(ref _released).Length;

    private sealed record Mapping(ulong Start, ulong End, bool ReadOnlyPrivateFile, string Path)
    {
        public long ResidentKb { get; set; }

        /// <summary>Pages of the mapping the process has written (anonymous copies, dirty pages).</summary>
        public long ChangedKb { get; set; }
    }

    private static List<Mapping> ReadMappings()
    {
        var mappings = new List<Mapping>();
        Mapping? current = null;
        foreach (var line in File.ReadLines("/proc/self/smaps"))
        {
            var colon = line.IndexOf(':', StringComparison.Ordinal);
            var dash = line.IndexOf('-', StringComparison.Ordinal);
            if (dash > 0 && (colon < 0 || dash < colon) && ulong.TryParse(line.AsSpan(0, dash), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out var start))
            {
                // 7f12a000-7f12c000 r--p 00000000 08:01 1234   /path/to/file
                var fields = line.Split(' ', 6, StringSplitOptions.RemoveEmptyEntries);
                var range = fields[0].Split('-');
                var perms = fields[1];
                var path = fields.Length == 6 ? fields[5].Trim() : "";
                var fileBacked = fields[4] != "0" && path.StartsWith('/');
                current = new Mapping(start, ulong.Parse(range[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture),
                    fileBacked && perms[0] == 'r' && perms[1] == '-' && perms[3] == 'p', path);
                mappings.Add(current);
                continue;
            }
            if (current is null || colon < 0)
            {
                continue;
            }
            var key = line.AsSpan(0, colon);
            if (key is "Rss" or "Anonymous" or "Private_Dirty" or "Shared_Dirty")
            {
                // "Rss:    568 kB"; anything unreadable counts as changed, so the mapping is left alone.
                var value = line.AsSpan(colon + 1).Trim();
                var space = value.IndexOf(' ');
                var kb = space > 0 && long.TryParse(value[..space], NumberStyles.Integer, CultureInfo.InvariantCulture, out var parsed) ? parsed : 1;
                if (key is "Rss")
                {
                    current.ResidentKb = kb;
                }
                else
                {
                    current.ChangedKb += kb;
                }
            }
        }
        return mappings;
    }

    [DllImport("libc", EntryPoint = "madvise", SetLastError = true)]
    private static extern int Madvise(nint address, nuint length, int advice);
}
