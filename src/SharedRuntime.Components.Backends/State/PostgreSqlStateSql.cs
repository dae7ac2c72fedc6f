namespace SharedRuntime.Components.State;

/// <summary>
/// SQL of <see cref="PostgreSqlStateStore"/> for one table. The etag check of a write sits in the same statement:
/// zero rows returned or changed means the etag did not match. Rows past <c>expiresat</c> count as missing.
/// </summary>
internal sealed class PostgreSqlStateSql(string table, string bareTable)
{
    private const string Live = "(expiresat IS NULL OR expiresat > now())";

    /// <summary>What one row counts, as <c>StateUsage.Of</c> counts it: the bytes of key, value and content type.</summary>
    private const string Cost = "octet_length(key) + octet_length(value) + COALESCE(octet_length(contenttype), 0)";

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
        CREATE TABLE IF NOT EXISTS {table}_usage (
          prefix text NOT NULL PRIMARY KEY,
          keys bigint NOT NULL,
          bytes bigint NOT NULL);
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

    /// <summary>The prefixes among <c>@prefixes</c> that have usage (seeded).</summary>
    public string SeededPrefixes { get; } = $"SELECT prefix FROM {table}_usage WHERE prefix = ANY(@prefixes)";

    /// <summary>
    /// Seeds a prefix's usage once, when it has no row (rows written before usage was kept): one count of its rows,
    /// expired or not. Another writer seeding at the same time waits on the row's key and then does nothing.
    /// </summary>
    public string SeedUsage { get; } = $"""
        INSERT INTO {table}_usage (prefix, keys, bytes)
        SELECT @prefix, count(*), COALESCE(sum({Cost}), 0)::bigint FROM {table} WHERE prefix = @prefix
        ON CONFLICT (prefix) DO NOTHING
        """;

    /// <summary>
    /// What each of the keys stores now, expired or not, locking those rows (in key order, so writers never deadlock on
    /// them) until the transaction ends: no other writer changes them between this read and the write.
    /// </summary>
    public string Costs { get; } = $"SELECT key, {Cost} FROM {table} WHERE key = ANY(@keys) ORDER BY key FOR UPDATE";

    /// <summary>
    /// Adds a write's change to its prefix's usage and returns the new figures. The row lock it takes is held only from
    /// here to the commit, and serialises the prefix's usage across nodes: each writer adds to what the last committed.
    /// </summary>
    public string AddUsage { get; } = $"UPDATE {table}_usage SET keys = keys + @keys, bytes = bytes + @bytes WHERE prefix = @prefix RETURNING keys, bytes";

    /// <summary>Deletes expired rows and subtracts what they counted from their prefixes, in one statement.</summary>
    public string DeleteExpiredCounted { get; } = $"""
        WITH gone AS (DELETE FROM {table} WHERE expiresat IS NOT NULL AND expiresat <= now() RETURNING prefix, {Cost} AS cost),
        sums AS (SELECT prefix, count(*) AS k, sum(cost)::bigint AS b FROM gone GROUP BY prefix),
        counted AS (UPDATE {table}_usage u SET keys = u.keys - s.k, bytes = u.bytes - s.b FROM sums s WHERE u.prefix = s.prefix RETURNING 1)
        SELECT COALESCE(sum(k), 0)::int FROM sums
        """;

    /// <summary>The usage kept for a prefix (O(1)); no row when it has not been seeded.</summary>
    public string Usage { get; } = $"SELECT keys, bytes FROM {table}_usage WHERE prefix = @prefix";
}
