namespace SharedRuntime.Components.State;

/// <summary>
/// SQL of <see cref="PostgreSqlStateStore"/> for one table. The etag check of a write sits in the same statement:
/// zero rows returned or changed means the etag did not match. Rows past <c>expiresat</c> count as missing.
/// </summary>
internal sealed class PostgreSqlStateSql(string table, string bareTable)
{
    private const string Live = "(expiresat IS NULL OR expiresat > now())";
    private const string Expires = "now() + @ttlms * interval '1 millisecond'";

    public string CreateTable { get; } = $"""
        CREATE TABLE IF NOT EXISTS {table} (
          key text NOT NULL PRIMARY KEY,
          value bytea NOT NULL,
          etag bigint NOT NULL,
          expiresat timestamptz NULL,
          contenttype text NULL,
          prefix text GENERATED ALWAYS AS (CASE WHEN strpos(key, '||') > 0 THEN left(key, strpos(key, '||') - 1) ELSE '' END) STORED);
        CREATE INDEX IF NOT EXISTS {bareTable}_prefix ON {table} (prefix);
        CREATE INDEX IF NOT EXISTS {bareTable}_expiresat ON {table} (expiresat) WHERE expiresat IS NOT NULL;
        """;

    public string Get { get; } = $"SELECT value, etag, expiresat, contenttype FROM {table} WHERE key = @key AND {Live}";

    /// <summary>Last-write or no etag: creates or overwrites.</summary>
    public string Upsert { get; } = $"""
        INSERT INTO {table} AS t (key, value, etag, expiresat, contenttype) VALUES (@key, @value, 1, {Expires}, @contenttype)
        ON CONFLICT (key) DO UPDATE SET value = excluded.value, etag = t.etag + 1, expiresat = excluded.expiresat, contenttype = excluded.contenttype
        RETURNING etag
        """;

    /// <summary>First-write without an etag: creates, or replaces only an expired row.</summary>
    public string Insert { get; } = $"""
        INSERT INTO {table} AS t (key, value, etag, expiresat, contenttype) VALUES (@key, @value, 1, {Expires}, @contenttype)
        ON CONFLICT (key) DO UPDATE SET value = excluded.value, etag = t.etag + 1, expiresat = excluded.expiresat, contenttype = excluded.contenttype
        WHERE t.expiresat IS NOT NULL AND t.expiresat <= now()
        RETURNING etag
        """;

    /// <summary>With an etag: overwrites only the live row of that version.</summary>
    public string Update { get; } = $"""
        UPDATE {table} SET value = @value, etag = etag + 1, expiresat = {Expires}, contenttype = @contenttype
        WHERE key = @key AND etag = @etag AND {Live}
        RETURNING etag
        """;

    public string Delete { get; } = $"DELETE FROM {table} WHERE key = @key";

    public string DeleteVersion { get; } = $"DELETE FROM {table} WHERE key = @key AND etag = @etag AND {Live}";

    public string DeleteExpired { get; } = $"DELETE FROM {table} WHERE expiresat IS NOT NULL AND expiresat <= now()";

    /// <summary>
    /// Every row of the prefix, expired or not (an expired row takes room until the cleanup deletes it), each counted as
    /// <c>StateUsage.Of</c> counts it: the bytes of key, value and content type.
    /// </summary>
    public string Usage { get; } = $"SELECT count(*), COALESCE(sum(octet_length(key) + octet_length(value) + COALESCE(octet_length(contenttype), 0)), 0)::bigint FROM {table} WHERE prefix = @prefix";
}
