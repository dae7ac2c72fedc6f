using System.Globalization;

namespace SharedRuntime.Components.State;

/// <summary>What a write requires of the stored key: nothing, that it does not exist, or that it holds one version.</summary>
internal enum ETagConditionKind { None, MustNotExist, MustHaveVersion }

/// <summary>
/// What a write requires of the stored key under Dapr's etag rules, for stores whose etags are integer versions. The one
/// place the rule is written: every store (in-memory, SQLite, Redis, PostgreSQL) asks it, checking in its own way
/// (in memory, in SQL, in a Lua script).
/// </summary>
internal readonly record struct ETagCondition(ETagConditionKind Kind, long Version)
{
    /// <summary>
    /// No etag: nothing, except that first-write on a set only creates. An etag with last-write: nothing. Any other etag
    /// must be the stored version; one that is not an integer throws <see cref="StateETagInvalidException"/>.
    /// </summary>
    public static ETagCondition For(string key, string? etag, StateConcurrency concurrency, bool isSet)
    {
        if (etag is null)
        {
            return isSet && concurrency == StateConcurrency.FirstWrite ? new(ETagConditionKind.MustNotExist, 0) : default;
        }
        if (concurrency == StateConcurrency.LastWrite)
        {
            return default;
        }
        return long.TryParse(etag, NumberStyles.Integer, CultureInfo.InvariantCulture, out var version)
            ? new(ETagConditionKind.MustHaveVersion, version)
            : throw new StateETagInvalidException(key);
    }

    public static ETagCondition For(StateSetRequest set) => For(set.Key, set.ETag, set.Concurrency, isSet: true);

    public static ETagCondition For(StateDeleteRequest delete) => For(delete.Key, delete.ETag, delete.Concurrency, isSet: false);

    /// <summary>
    /// Checks the condition against the stored key's version (null when the key does not exist) and throws
    /// <see cref="StateETagMismatchException"/> when it is not met.
    /// </summary>
    public void Verify(string key, long? storedVersion)
    {
        var met = Kind switch
        {
            ETagConditionKind.MustNotExist => storedVersion is null,
            ETagConditionKind.MustHaveVersion => storedVersion == Version,
            _ => true,
        };
        if (!met)
        {
            throw new StateETagMismatchException(key);
        }
    }
}
