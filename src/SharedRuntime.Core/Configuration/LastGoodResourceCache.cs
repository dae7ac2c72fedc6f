using System.Buffers;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace SharedRuntime.Configuration;

/// <summary>
/// The resource files of the last configuration that applied, kept in one local file so the runtime can start from
/// them when its source cannot be read (fail-static). No API token is written in plain text: a Tenant's token given as
/// a value is kept as its SHA-256 (<c>apiToken: {sha256: HEX}</c>), which is all a lookup needs, and secrets read from
/// Kubernetes Secrets for appApiToken and Component metadata are kept as their references only (so those need the API
/// server back). The file is written atomically (temp file and rename) with mode 0600 in a folder with mode 0700, a
/// folder file-backed components may never open (<see cref="Components.FileRoots"/>). One file per set of resource
/// folders, so runtimes configured from different folders never start from each other's configuration.
/// </summary>
public sealed class LastGoodResourceCache : IResourceSource
{
    private const int FormatVersion = 1;
    private readonly string _folder;
    private readonly Func<string, string?> _environment;

    /// <summary>
    /// Each document as written (<c>{"path":...,"text":...}</c>, its tokens hashed), kept while the document is: a
    /// source hands an unchanged file's document over again, so a save reads and encodes only the documents that changed.
    /// </summary>
    private readonly ConditionalWeakTable<ResourceDocument, byte[]> _encoded = new();

    public LastGoodResourceCache(string folder, IReadOnlyList<string> sourceFolders, Func<string, string?>? environment = null)
    {
        _folder = Path.GetFullPath(folder);
        var key = string.Join('\n', sourceFolders.Select(Path.GetFullPath));
        var hash = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)))[..16];
        FilePath = Path.Combine(_folder, $"last-good-resources-{hash}.json");
        _environment = environment ?? Environment.GetEnvironmentVariable;
    }

    public string FilePath { get; }

    public bool Exists => File.Exists(FilePath);

    public string Description => $"the last good configuration cached in {FilePath}";

    /// <summary>Replaces the cache with <paramref name="documents"/>.</summary>
    public void Save(IReadOnlyList<ResourceDocument> documents)
    {
        if (OperatingSystem.IsWindows())
        {
            Directory.CreateDirectory(_folder);
        }
        else
        {
            Directory.CreateDirectory(_folder, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
        var temp = Path.Combine(_folder, $".{Path.GetFileName(FilePath)}.{Environment.ProcessId}.{Guid.NewGuid():N}.tmp");
        var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
        if (!OperatingSystem.IsWindows())
        {
            options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
        }
        try
        {
            using (var stream = new FileStream(temp, options))
            {
                // {"version":1,"documents":[{"path":...,"text":...},...]}, each document's part encoded once.
                stream.Write("{\"version\":"u8);
                stream.Write(Encoding.UTF8.GetBytes(FormatVersion.ToString(System.Globalization.CultureInfo.InvariantCulture)));
                stream.Write(",\"documents\":["u8);
                for (var i = 0; i < documents.Count; i++)
                {
                    if (i > 0)
                    {
                        stream.Write(","u8);
                    }
                    stream.Write(_encoded.GetValue(documents[i], static d => Encode(d)));
                }
                stream.Write("]}"u8);
                stream.Flush(flushToDisk: true);
            }
            File.Move(temp, FilePath, overwrite: true);
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
    }

    /// <summary>One document as the cache file has it: <c>{"path":...,"text":...}</c>, its tokens hashed.</summary>
    private static byte[] Encode(ResourceDocument document)
    {
        var buffer = new ArrayBufferWriter<byte>(document.Text.Length + document.Path.Length + 64);
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("path", document.Path);
            json.WritePropertyName("text");
            WriteInSegments(json, WithTokenHashes(document));
            json.WriteEndObject();
        }
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>Reads the cached files as they were when they applied; paths stay the original ones.</summary>
    public ValueTask<ResourceSet> LoadAsync(CancellationToken cancellationToken)
    {
        List<ResourceDocument> documents;
        try
        {
            using var json = JsonDocument.Parse(File.ReadAllBytes(FilePath));
            var root = json.RootElement;
            if (root.GetProperty("version").GetInt32() != FormatVersion)
            {
                throw new ResourceException(FilePath, "cache", "version", "is not a version this runtime reads");
            }
            documents = root.GetProperty("documents").EnumerateArray()
                .Select(d => new ResourceDocument(d.GetProperty("path").GetString()!, d.GetProperty("text").GetString()!))
                .ToList();
        }
        catch (Exception ex) when (ex is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            throw new ResourceException(FilePath, "cache", null, $"is not a readable cache: {ex.Message}");
        }
        var raws = documents.SelectMany(d => ResourceReader.ReadText(d.Path, d.Text, namespaced: d.Path.StartsWith("kubernetes/", StringComparison.Ordinal)));
        return ValueTask.FromResult(ResourceParser.Parse(raws, _environment, fromCache: true) with { Documents = documents });
    }

    /// <summary>The cache does not change by itself; the runtime keeps watching its real source.</summary>
    public void Watch(Func<CancellationToken, Task> changed)
    {
    }

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    /// <summary>
    /// The document with every Tenant's literal API token replaced by its SHA-256; unchanged (the same text) when it
    /// holds none. A document with one is written back as JSON, one resource per YAML document.
    /// </summary>
    internal static string WithTokenHashes(ResourceDocument document)
    {
        if (!document.Text.Contains(TenantConfig.KindName, StringComparison.Ordinal))
        {
            return document.Text;
        }
        List<RawResource> raws;
        try
        {
            raws = ResourceReader.ReadText(document.Path, document.Text);
        }
        catch (ResourceException)
        {
            return ""; // not readable as resources: nothing of it could apply from the cache either, so nothing is kept
        }
        var changed = false;
        foreach (var raw in raws.Where(r => r.Kind == TenantConfig.KindName))
        {
            if (raw.Root is Dictionary<object, object?> root && root.TryGetValue("spec", out var spec) && spec is Dictionary<object, object?> specMap &&
                specMap.TryGetValue("apiToken", out var apiToken) &&
                (apiToken as string ?? (apiToken is Dictionary<object, object?> form && form.TryGetValue("value", out var value) ? value as string : null)) is { } token)
            {
                specMap["apiToken"] = new Dictionary<object, object?> { ["sha256"] = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(token))) };
                changed = true;
            }
        }
        return changed ? string.Join("\n---\n", raws.Select(r => ResourceTree.ToJson(r.Root))) : document.Text;
    }

    /// <summary>
    /// Writes <paramref name="text"/> as one JSON string in segments: written whole, escaping would take a buffer of six
    /// times the text's length (a 16 MB array for a 1 MB resource file), kept by the process until a full collection.
    /// </summary>
    private static void WriteInSegments(Utf8JsonWriter json, string text)
    {
        const int Segment = 8192;
        var rest = text.AsSpan();
        do
        {
            var length = Math.Min(Segment, rest.Length);
            if (length < rest.Length && char.IsHighSurrogate(rest[length - 1]))
            {
                length--;
            }
            json.WriteStringValueSegment(rest[..length], isFinalSegment: length == rest.Length);
            rest = rest[length..];
        }
        while (!rest.IsEmpty);
    }
}
