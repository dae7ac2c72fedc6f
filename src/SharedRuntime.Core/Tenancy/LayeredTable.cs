using System.Collections;
using System.Collections.Frozen;
using System.Diagnostics.CodeAnalysis;

namespace SharedRuntime.Tenancy;

/// <summary>
/// An immutable look-up table that a reload changes by a few entries without copying the rest: a frozen base, and the
/// entries changed since it was frozen (a removed one as null) in a small table looked at first. Once the changes
/// reach an eighth of the base, the next version freezes everything again, so a reload that changes k of n entries
/// costs O(k) and the base's O(n) freeze is shared out over n/8 changes. The base's large arrays live as long as it
/// does instead of being made again on every reload.
/// </summary>
internal sealed class LayeredTable<TKey, TValue> : IReadOnlyDictionary<TKey, TValue>
    where TKey : notnull
    where TValue : class
{
    /// <summary>Changes below this many never freeze the base again.</summary>
    private const int MinChangesBeforeFreeze = 64;

    private readonly FrozenDictionary<TKey, TValue> _base;
    private readonly Dictionary<TKey, TValue?>? _changes;

    private LayeredTable(FrozenDictionary<TKey, TValue> @base, Dictionary<TKey, TValue?>? changes, int count)
    {
        _base = @base;
        _changes = changes is { Count: > 0 } ? changes : null;
        Count = count;
    }

    public static LayeredTable<TKey, TValue> Empty { get; } = new(FrozenDictionary<TKey, TValue>.Empty, null, 0);

    public static LayeredTable<TKey, TValue> From(IEnumerable<KeyValuePair<TKey, TValue>> entries, IEqualityComparer<TKey>? comparer = null)
    {
        var frozen = entries.ToFrozenDictionary(comparer);
        return new LayeredTable<TKey, TValue>(frozen, null, frozen.Count);
    }

    public int Count { get; }

    /// <summary>How many entries differ from the frozen base (for tests).</summary>
    internal int Layered => _changes?.Count ?? 0;

    /// <summary>
    /// This table with <paramref name="changes"/> applied in order: a value sets its key, null removes it. The changes are
    /// read once.
    /// </summary>
    public LayeredTable<TKey, TValue> With(IEnumerable<KeyValuePair<TKey, TValue?>> changes)
    {
        var comparer = _base.Comparer;
        var layer = _changes is null ? new Dictionary<TKey, TValue?>(comparer) : new Dictionary<TKey, TValue?>(_changes, comparer);
        var count = Count;
        foreach (var (key, value) in changes)
        {
            var had = TryGetValue(layer, key, out _);
            layer[key] = value;
            count += (value is null ? 0 : 1) - (had ? 1 : 0);
        }
        // A key set back to what the base holds needs no entry of its own.
        List<TKey>? same = null;
        foreach (var (key, value) in layer)
        {
            if (value is not null && _base.TryGetValue(key, out var inBase) && ReferenceEquals(inBase, value))
            {
                (same ??= []).Add(key);
            }
        }
        foreach (var key in same ?? [])
        {
            layer.Remove(key);
        }
        if (layer.Count <= Math.Max(MinChangesBeforeFreeze, _base.Count / 8))
        {
            return new LayeredTable<TKey, TValue>(_base, layer, count);
        }
        var all = new Dictionary<TKey, TValue>(count, comparer);
        foreach (var (key, value) in _base)
        {
            if (!layer.ContainsKey(key))
            {
                all[key] = value;
            }
        }
        foreach (var (key, value) in layer)
        {
            if (value is not null)
            {
                all[key] = value;
            }
        }
        return new LayeredTable<TKey, TValue>(all.ToFrozenDictionary(comparer), null, all.Count);
    }

    /// <summary>Whether <paramref name="key"/> is in the table as <paramref name="layer"/> changes it.</summary>
    private bool TryGetValue(Dictionary<TKey, TValue?> layer, TKey key, [MaybeNullWhen(false)] out TValue value)
    {
        if (layer.TryGetValue(key, out var changed))
        {
            value = changed;
            return changed is not null;
        }
        return _base.TryGetValue(key, out value);
    }

    public bool TryGetValue(TKey key, [MaybeNullWhen(false)] out TValue value)
    {
        if (_changes is not null && _changes.TryGetValue(key, out var changed))
        {
            value = changed;
            return changed is not null;
        }
        return _base.TryGetValue(key, out value);
    }

    public TValue? GetValueOrDefault(TKey key) => TryGetValue(key, out var value) ? value : null;

    public bool ContainsKey(TKey key) => TryGetValue(key, out _);

    public TValue this[TKey key] => TryGetValue(key, out var value) ? value : throw new KeyNotFoundException($"'{key}' is not in the table");

    public IEnumerable<TKey> Keys => this.Select(static e => e.Key);

    public IEnumerable<TValue> Values => this.Select(static e => e.Value);

    public IEnumerator<KeyValuePair<TKey, TValue>> GetEnumerator()
    {
        foreach (var entry in _base)
        {
            if (_changes is null || !_changes.ContainsKey(entry.Key))
            {
                yield return entry;
            }
        }
        if (_changes is not null)
        {
            foreach (var (key, value) in _changes)
            {
                if (value is not null)
                {
                    yield return new KeyValuePair<TKey, TValue>(key, value);
                }
            }
        }
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}
