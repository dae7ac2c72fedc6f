namespace SharedRuntime.Components;

/// <summary>
/// The folders file-backed components (<c>secretstores.local.file</c>, <c>state.sqlite</c>) may open files in. A path is
/// allowed when, with every symbolic link resolved, it lies under an allowed root and under no denied folder: the
/// runtime's state folder (its fail-static cache and hand-off socket) is always denied, whatever the roots say.
/// </summary>
internal sealed class FileRoots
{
    private const int MaxLinks = 40;
    private readonly IReadOnlyList<string>? _allowed;
    private readonly IReadOnlyList<string> _denied;

    /// <param name="allowed">Allowed folders; null allows any folder but the denied ones, empty allows none.</param>
    /// <param name="denied">Folders never allowed.</param>
    public FileRoots(IReadOnlyList<string>? allowed, IReadOnlyList<string> denied)
    {
        _allowed = allowed?.Select(RealPath).ToList();
        _denied = denied.Select(RealPath).ToList();
    }

    /// <summary>No restriction, for components built outside a runtime (tests).</summary>
    public static FileRoots Anywhere { get; } = new(null, []);

    /// <summary>The roots a component's services hold, else <see cref="Anywhere"/>.</summary>
    public static FileRoots Of(ComponentContext context) => context.Services.GetService(typeof(FileRoots)) as FileRoots ?? Anywhere;

    /// <summary>The real path of <paramref name="path"/> when it may be opened; a <see cref="ComponentException"/> otherwise.</summary>
    public string Check(string path, string metadataName)
    {
        var real = RealPath(path);
        if (_denied.Any(folder => IsUnder(real, folder)))
        {
            throw new ComponentException($"metadata '{metadataName}': {path} is in the runtime's state folder, which components may not open");
        }
        if (_allowed is not null && !_allowed.Any(root => IsUnder(real, root)))
        {
            throw new ComponentException(_allowed.Count == 0
                ? $"metadata '{metadataName}': {path} may not be opened: no folder is allowed for file-backed components (--allowed-file-roots)"
                : $"metadata '{metadataName}': {path} is outside the folders file-backed components may open ({string.Join(", ", _allowed)})");
        }
        return real;
    }

    private static bool IsUnder(string path, string folder) =>
        path.Equals(folder, StringComparison.Ordinal) ||
        path.StartsWith(folder.EndsWith(Path.DirectorySeparatorChar) ? folder : folder + Path.DirectorySeparatorChar, StringComparison.Ordinal);

    /// <summary>The full path with every symbolic link on the way resolved (as far as the path exists).</summary>
    internal static string RealPath(string path)
    {
        var full = Path.GetFullPath(path);
        var root = Path.GetPathRoot(full) ?? "/";
        var pending = new Stack<string>(full[root.Length..].Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries).Reverse());
        var current = root;
        var links = 0;
        while (pending.TryPop(out var part))
        {
            if (part == ".")
            {
                continue;
            }
            if (part == "..")
            {
                current = Path.GetDirectoryName(current) ?? current;
                continue;
            }
            var next = Path.Combine(current, part);
            FileSystemInfo info = Directory.Exists(next) ? new DirectoryInfo(next) : new FileInfo(next);
            if (info.Exists && info.LinkTarget is { } target)
            {
                if (++links > MaxLinks)
                {
                    throw new ComponentException($"{path}: too many symbolic links");
                }
                // The target replaces the link: its parts are walked again, from the root when it is absolute.
                foreach (var targetPart in target.Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries).Reverse())
                {
                    pending.Push(targetPart);
                }
                if (Path.IsPathRooted(target))
                {
                    current = Path.GetPathRoot(target) ?? root;
                }
                continue;
            }
            current = next;
        }
        return current;
    }
}
