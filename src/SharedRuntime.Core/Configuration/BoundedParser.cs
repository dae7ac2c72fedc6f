using YamlDotNet.Core;
using YamlDotNet.Core.Events;

namespace SharedRuntime.Configuration;

/// <summary>
/// Refuses what would let a resource file cost more than its size: nesting deeper than
/// <see cref="ResourceReader.MaxDepth"/> (the deserializer recurses once per level) and aliases (<c>*name</c>), which
/// share one node among many places so that a small file expands to an exponential tree when it is walked.
/// </summary>
internal sealed class BoundedParser(IParser inner) : IParser
{
    private int _depth;

    public ParsingEvent? Current => inner.Current;

    public bool MoveNext()
    {
        if (!inner.MoveNext())
        {
            return false;
        }
        switch (inner.Current)
        {
            case MappingStart or SequenceStart when ++_depth > ResourceReader.MaxDepth:
                throw new YamlException(inner.Current.Start, inner.Current.End, $"mappings and lists nested more than {ResourceReader.MaxDepth} deep");
            case MappingEnd or SequenceEnd:
                _depth--;
                break;
            case AnchorAlias alias:
                throw new YamlException(alias.Start, alias.End, $"aliases (*{alias.Value}) are not supported in resource files");
        }
        return true;
    }
}
