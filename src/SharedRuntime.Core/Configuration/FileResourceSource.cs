namespace SharedRuntime.Configuration;

/// <summary>
/// Resources from <c>--resources-path</c> folders. Files are watched; a burst of changes is folded into one reload
/// after a short quiet time. A periodic scan backs the watcher up where file events are lost (network volumes,
/// ConfigMap symlink swaps).
/// </summary>
internal sealed class FileResourceSource : IResourceSource
{
    private readonly IReadOnlyList<string> _folders;
    private readonly Func<string, string?> _environment;
    private readonly TimeProvider _time;
    private readonly TimeSpan _quietTime;
    private readonly TimeSpan _scanInterval;
    private readonly List<FileSystemWatcher> _watchers = [];
    private readonly CancellationTokenSource _stopping = new();
    private readonly SemaphoreSlim _signal = new(0, int.MaxValue);
    private Task? _loop;
    private string _lastStamp = "";

    public FileResourceSource(IReadOnlyList<string> folders, TimeProvider time, Func<string, string?>? environment = null,
        TimeSpan? quietTime = null, TimeSpan? scanInterval = null)
    {
        _folders = folders.Select(Path.GetFullPath).ToArray();
        _time = time;
        _environment = environment ?? Environment.GetEnvironmentVariable;
        _quietTime = quietTime ?? TimeSpan.FromMilliseconds(150);
        _scanInterval = scanInterval ?? TimeSpan.FromSeconds(1);
    }

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
        _lastStamp = Stamp();
        var raws = new List<RawResource>();
        var documents = new List<ResourceDocument>();
        foreach (var file in ResourceReader.ListFiles(_folders))
        {
            cancellationToken.ThrowIfCancellationRequested();
            try
            {
                var text = ResourceReader.ReadFileText(file);
                raws.AddRange(ResourceReader.ReadText(file, text));
                documents.Add(new ResourceDocument(file, text));
            }
            catch (IOException ex) when (!File.Exists(file))
            {
                _ = ex; // removed while listing: it is simply gone
            }
        }
        return ValueTask.FromResult(ResourceParser.Parse(raws, _environment) with { Documents = documents });
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
            watcher.EnableRaisingEvents = true;
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
                    // Fold a burst of events (editors write, rename and touch) into one reload.
                    await Task.Delay(_quietTime, _time, token).ConfigureAwait(false);
                    while (_signal.CurrentCount > 0)
                    {
                        await _signal.WaitAsync(token).ConfigureAwait(false);
                    }
                }
                var stamp = Stamp();
                if (!signalled && stamp == _lastStamp)
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

    /// <summary>Names, sizes and write times of every resource file: a cheap way to notice missed events.</summary>
    private string Stamp()
    {
        var parts = new List<string>();
        foreach (var file in ResourceReader.ListFiles(_folders))
        {
            try
            {
                var info = new FileInfo(file);
                parts.Add($"{file}:{info.Length}:{info.LastWriteTimeUtc.Ticks}");
            }
            catch (IOException)
            {
                parts.Add(file);
            }
        }
        return string.Join('|', parts);
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
