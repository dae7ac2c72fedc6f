using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace SharedRuntime.Configuration;

/// <summary>Reads every <c>*.yaml</c>/<c>*.yml</c> file of the resource folders (not recursive), several documents per file.</summary>
internal static class ResourceReader
{
    /// <summary>Largest resource file read; bigger files are refused.</summary>
    public const long MaxFileBytes = 4 * 1024 * 1024;

    /// <summary>Deepest nesting of mappings and sequences in a resource document; Dapr's resources need fewer than ten.</summary>
    public const int MaxDepth = 64;

    public static IEnumerable<string> ListFiles(IEnumerable<string> folders)
    {
        foreach (var folder in folders)
        {
            if (!Directory.Exists(folder))
            {
                continue;
            }
            foreach (var file in Directory.EnumerateFiles(folder).Where(IsResourceFile).Order(StringComparer.Ordinal))
            {
                yield return file;
            }
        }
    }

    public static bool IsResourceFile(string path)
    {
        var extension = Path.GetExtension(path);
        var name = Path.GetFileName(path);
        return !name.StartsWith('.') &&
               (extension.Equals(".yaml", StringComparison.OrdinalIgnoreCase) || extension.Equals(".yml", StringComparison.OrdinalIgnoreCase));
    }

    public static List<RawResource> ReadFile(string file) => ReadText(file, ReadFileText(file));

    /// <summary>The text of a resource file, refusing files larger than <see cref="MaxFileBytes"/>.</summary>
    public static string ReadFileText(string file)
    {
        var info = new FileInfo(file);
        if (info.Length > MaxFileBytes)
        {
            throw new ResourceException(file, "file", null, $"is {info.Length} bytes, more than the {MaxFileBytes} allowed");
        }
        return File.ReadAllText(file);
    }

    /// <param name="namespaced">
    /// The documents are Kubernetes objects (as the last-good cache keeps them): each keeps its <c>metadata.namespace</c>.
    /// Resource files are not: standalone is one namespace, whatever a file says.
    /// </param>
    public static List<RawResource> ReadText(string file, string text, bool namespaced = false)
    {
        var result = new List<RawResource>();
        IParser parser = new BoundedParser(new Parser(new StringReader(text)));
        var index = 0;
        try
        {
            parser.Consume<StreamStart>();
            while (parser.Accept<DocumentStart>(out _))
            {
                parser.Consume<DocumentStart>();
                var root = ReadNode(parser);
                parser.Consume<DocumentEnd>();
                var position = index++;
                if (root is null)
                {
                    continue;
                }
                var probe = new RawResource { File = file, Index = position, ApiVersion = "", Kind = "", Name = "", Root = root };
                if (root is not Dictionary<object, object?>)
                {
                    throw probe.Error(null, "a resource must be a mapping with apiVersion, kind and metadata");
                }
                var node = probe.Node;
                var kind = node["kind"].AsString() ?? "";
                var name = node["metadata"]["name"].AsString() ?? "";
                var named = new RawResource { File = file, Index = position, ApiVersion = "", Kind = kind, Name = name, Root = root };
                var apiVersion = named.Node["apiVersion"].RequiredString();
                named.Node["kind"].RequiredString();
                named.Node["metadata"]["name"].RequiredString();
                result.Add(new RawResource
                {
                    File = file, Index = position, ApiVersion = RawResource.Shared(apiVersion), Kind = RawResource.Shared(kind), Name = name, Root = root,
                    Namespace = namespaced ? named.Node["metadata"]["namespace"].AsString() : null,
                });
            }
        }
        catch (YamlException ex)
        {
            throw new ResourceException(file, $"document {index + 1}", null, $"invalid YAML at line {ex.Start.Line}, column {ex.Start.Column}: {ex.InnerException?.Message ?? ex.Message}");
        }
        catch (Exception ex) when (ex is ArgumentException or InvalidOperationException)
        {
            // YamlDotNet throws these for some malformed input (a global tag that is not a URI, stray tokens after a
            // document) where a YamlException is meant: still bad YAML, not a fault of the runtime (found by fuzzing).
            throw new ResourceException(file, $"document {index + 1}", null, $"invalid YAML: {ex.Message}");
        }
        return result;
    }

    /// <summary>
    /// One node as plain objects: a mapping as <c>Dictionary&lt;object, object?&gt;</c> (a repeated key keeps its last
    /// value), a list as <c>List&lt;object?&gt;</c>, a scalar as its text, and YAML's null (an empty plain scalar,
    /// <c>~</c> or <c>null</c>) as null. Read from the parser's events, so no type is made from the file's content.
    /// </summary>
    private static object? ReadNode(IParser parser)
    {
        if (parser.TryConsume<Scalar>(out var scalar))
        {
            return scalar.Style == ScalarStyle.Plain && scalar.Tag.IsEmpty && scalar.Value is "" or "~" or "null" or "Null" or "NULL"
                ? null
                : scalar.Value;
        }
        if (parser.TryConsume<SequenceStart>(out _))
        {
            var list = new List<object?>();
            while (!parser.TryConsume<SequenceEnd>(out _))
            {
                list.Add(ReadNode(parser));
            }
            return list;
        }
        var start = parser.Consume<MappingStart>();
        var map = new Dictionary<object, object?>();
        while (!parser.TryConsume<MappingEnd>(out _))
        {
            var key = ReadNode(parser) ?? throw new YamlException(start.Start, start.End, "a mapping has an empty key");
            map[key] = ReadNode(parser);
        }
        return map;
    }
}
