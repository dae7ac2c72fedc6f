using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using SharedRuntime.Diagnostics;

namespace SharedRuntime.Configuration;

/// <summary>
/// Resources from <c>--resources-path</c> folders. Files are watched; a burst of changes is folded into one reload
/// after a short quiet time. A periodic scan backs the watcher up where file events are lost (network volumes,
/// ConfigMap symlink swaps). A reload reads and parses again only the files whose size, write time or link target
/// changed; the others' documents are reused as they were parsed.
/// </summary>
internal sealed class FileResourceSource : IResourceSource
{
    private readonly IReadOnlyList<string> _folders;
    private readonly Func<string, string?> _environment;
    private readonly TimeProvider _time;
    private readonly TimeSpan _quietTime;
    private readonly TimeSpan _maxQuietTime;
    private readonly TimeSpan _scanInterval;
    private readonly List<FileSystemWatcher> _watchers = [];
    private readonly CancellationTokenSource _stopping = new();
    private readonly SemaphoreSlim _signal = new(0, int.MaxValue);
    private Task? _loop;
    private List<(string File, FileStamp Stamp)> _lastStamp = [];
    private readonly Lock _filesGate = new();
    private Dictionary<string, ParsedFile> _files = new(StringComparer.Ordinal);
    private readonly List<RawResource> _raws = [];
    private readonly ResourceParser.UniquenessTables _unique = new();
    private readonly ILogger _logger;

    /// <param name="quietTime">
    /// How long the folders must stay quiet after an event before they are read: editors write, rename and touch in quick
    /// succession, and a burst is folded into one reload. Each further event waits this long again, up to
    /// <paramref name="maxQuietTime"/> after the first.
    /// </param>
    public FileResourceSource(IReadOnlyList<string> folders, TimeProvider time, Func<string, string?>? environment = null,
        TimeSpan? quietTime = null, TimeSpan? scanInterval = null, TimeSpan? maxQuietTime = null, ILogger? logger = null)
    {
        _logger = logger ?? NullLogger.Instance;
        _folders = folders.Select(Path.GetFullPath).ToArray();
        _time = time;
        _environment = environment ?? Environment.GetEnvironmentVariable;
        _quietTime = quietTime ?? TimeSpan.FromMilliseconds(20);
        _maxQuietTime = maxQuietTime ?? TimeSpan.FromSeconds(1);
        _scanInterval = scanInterval ?? TimeSpan.FromSeconds(1);
    }

    /// <summary>Starts a folder's watcher; throws <see cref="IOException"/> where the node's watch limit is used up.</summary>
    internal Action<FileSystemWatcher> StartWatcher { get; init; } = watcher => watcher.EnableRaisingEvents = true;

    public string Description => $"folders {string.Join(", ", _folders)}";

    public IReadOnlyList<string> Folders => _folders;

    public ValueTask<ResourceSet> LoadAsync(CancellationToken cancellationToken)
    {
        foreach (var folder in _folders)
        {
            if (!Directory.Exists(folder))
            {
                throw new ResourceException(folder, "folder", null, "does not exist");
            }
        }
        var stamps = Stamp();
        _lastStamp = stamps;
        lock (_filesGate)
        {
            // A file whose stamp is unchanged is not read again: its parsed documents (and what the parsers made of them,
            // RawResource.Parsed) are reused, so a change costs the files it touches, not the whole folder.
            var files = new Dictionary<string, ParsedFile>(stamps.Count, StringComparer.Ordinal);
            // The list and the parser's tables are kept between loads: with thousands of documents they are large arrays.
            var raws = _raws;
            raws.Clear();
            var documents = new List<ResourceDocument>(stamps.Count);
            foreach (var (file, stamp) in stamps)
            {
                cancellationToken.ThrowIfCancellationRequested();
                // A document whose tree was let go and whose parsed resource no longer holds (an environment variable it
                // read changed) is read again with its whole file.
                if (!_files.TryGetValue(file, out var parsed) || parsed.Stamp != stamp || !parsed.Raws.TrueForAll(r => r.Reusable(_environment)))
                {
                    try
                    {
                        var text = ResourceReader.ReadFileText(file);
                        parsed = new ParsedFile(stamp, new ResourceDocument(file, text), ResourceReader.ReadText(file, text));
                    }
                    catch (IOException ex) when (!File.Exists(file))
                    {
                        _ = ex; // removed while listing: it is simply gone
                        continue;
                    }
                }
                files[file] = parsed;
                raws.AddRange(parsed.Raws);
                documents.Add(parsed.Document);
            }
            _files = files;
            var set = ResourceParser.Parse(raws, _environment, null, false, _unique) with { Documents = documents };
            foreach (var raw in raws)
            {
                raw.Release();
            }
            raws.Clear();
            return ValueTask.FromResult(set);
        }
    }

    public void Watch(Func<CancellationToken, Task> changed)
    {
        foreach (var folder in _folders.Where(Directory.Exists))
        {
            var watcher = new FileSystemWatcher(folder)
            {
                IncludeSubdirectories = false,
                NotifyFilter = NotifyFilters.FileName | NotifyFilters.LastWrite | NotifyFilters.Size | NotifyFilters.CreationTime,
            };
            watcher.Changed += (_, e) => OnEvent(e.FullPath);
            watcher.Created += (_, e) => OnEvent(e.FullPath);
            watcher.Deleted += (_, e) => OnEvent(e.FullPath);
            watcher.Renamed += (_, e) => { OnEvent(e.FullPath); OnEvent(e.OldFullPath); };
            watcher.Error += (_, _) => _signal.Release();
            try
            {
                StartWatcher(watcher);
            }
            catch (IOException ex)
            {
                // The node's file watch limit (inotify instances or watches) is used up: the periodic scan alone notices
                // changes, at most one scan interval later. The runtime starts and keeps serving either way.
                watcher.Dispose();
                CoreLog.FolderNotWatched(_logger, folder, _scanInterval.TotalSeconds, ex.Message);
                continue;
            }
            _watchers.Add(watcher);
        }
        _loop = Task.Run(() => LoopAsync(changed));
    }

    private void OnEvent(string path)
    {
        if (ResourceReader.IsResourceFile(path) || Directory.Exists(path))
        {
            _signal.Release();
        }
    }

    private async Task LoopAsync(Func<CancellationToken, Task> changed)
    {
        var token = _stopping.Token;
        while (!token.IsCancellationRequested)
        {
            try
            {
                var signalled = await _signal.WaitAsync(_scanInterval, token).ConfigureAwait(false);
                if (signalled)
                {
                    await WaitForQuietAsync(token).ConfigureAwait(false);
                }
                var stamp = Stamp();
                if (!signalled && SameStamps(stamp, _lastStamp))
                {
                    continue;
                }
                _lastStamp = stamp;
                await changed(token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (token.IsCancellationRequested)
            {
                return;
            }
            catch (Exception)
            {
                // The callback logs its own failures (RuntimeConfiguration.ReloadAsync); the watch loop must survive them.
            }
        }
    }

    /// <summary>
    /// Folds a burst of events (editors write, rename and touch; a ConfigMap swaps its data folder) into one reload:
    /// waits until no event came for the quiet time, but no longer than the longest quiet time after the first.
    /// </summary>
    private async Task WaitForQuietAsync(CancellationToken token)
    {
        var deadline = _time.GetTimestamp() + (long)(_maxQuietTime.TotalSeconds * _time.TimestampFrequency);
        while (true)
        {
            var left = deadline - _time.GetTimestamp();
            if (left <= 0)
            {
                break;
            }
            var wait = TimeSpan.FromSeconds(Math.Min(_quietTime.TotalSeconds, (double)left / _time.TimestampFrequency));
            if (!await _signal.WaitAsync(wait, token).ConfigureAwait(false))
            {
                break; // quiet
            }
            while (_signal.CurrentCount > 0)
            {
                await _signal.WaitAsync(token).ConfigureAwait(false);
            }
        }
        while (_signal.CurrentCount > 0)
        {
            await _signal.WaitAsync(token).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Every resource file with its size and write time (a symbolic link's by its final target, so a ConfigMap's swap of
    /// its data folder shows): a cheap way to notice missed events, and what tells which files a reload must read again.
    /// </summary>
    private List<(string File, FileStamp Stamp)> Stamp()
    {
        var stamps = new List<(string, FileStamp)>(_lastStamp.Count + 1);
        foreach (var file in ResourceReader.ListFiles(_folders))
        {
            stamps.Add((file, FileStamp.Of(file)));
        }
        return stamps;
    }

    private static bool SameStamps(List<(string File, FileStamp Stamp)> a, List<(string File, FileStamp Stamp)> b)
    {
        if (a.Count != b.Count)
        {
            return false;
        }
        for (var i = 0; i < a.Count; i++)
        {
            if (!string.Equals(a[i].File, b[i].File, StringComparison.Ordinal) || a[i].Stamp != b[i].Stamp)
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>One file as last read: its stamp, its text (for the last-good cache) and its documents.</summary>
    private sealed record ParsedFile(FileStamp Stamp, ResourceDocument Document, List<RawResource> Raws);

    /// <summary>What a file is known by between reads: the path it resolves to, its length and its write time.</summary>
    private readonly record struct FileStamp(string? Target, long Length, long WriteTicks)
    {
        public static FileStamp Of(string file)
        {
            try
            {
                var info = new FileInfo(file);
                if (info.Attributes.HasFlag(FileAttributes.ReparsePoint) && info.ResolveLinkTarget(returnFinalTarget: true) is FileInfo target)
                {
                    return new FileStamp(target.FullName, target.Length, target.LastWriteTimeUtc.Ticks);
                }
                return new FileStamp(null, info.Length, info.LastWriteTimeUtc.Ticks);
            }
            catch (IOException)
            {
                return new FileStamp(null, -1, -1); // gone or unreadable: read again (and fail there) if it is still listed
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stopping.Cancel();
        foreach (var watcher in _watchers)
        {
            watcher.Dispose();
        }
        if (_loop is not null)
        {
            await _loop.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
        _stopping.Dispose();
    }
}
