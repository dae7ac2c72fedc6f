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

    /// <summary>
    /// The common write in one round trip: an update of an existing row whose etag condition holds (<c>@condition</c> 0,
    /// none, or 2, the live row of version <c>@version</c>), by a value of any size. In order:
    /// <list type="number">
    /// <item><c>same</c> updates the row when the new value counts as much as the row did (the same key, as many bytes:
    /// <c>@cost</c>): the app's usage does not change, so nothing else is read, locked or written, and the write costs
    /// what a bare update does.</item>
    /// <item>Only when <c>same</c> changed nothing, <c>old</c> reads and locks the row (the latest version, its etag
    /// condition checked again) and <c>added</c> adds the difference of size to the prefix's usage row, in the same
    /// update that checks it against <c>@maxbytes</c> (the rule of <c>StateAllowance.Check</c>: a figure that does not
    /// grow is never refused). The update re-reads a usage row that another writer changed meanwhile, so the check
    /// counts every committed write; keys are locked before usage rows, as in <see cref="Write"/>.</item>
    /// <item><c>resized</c> then writes the row, only when its usage was added.</item>
    /// </list>
    /// No row returned: nothing was written (no such live row, an etag that does not match, a usage row not seeded or
    /// a value over the quota), and <see cref="Write"/> decides and says why.
    /// </summary>
    public string Overwrite { get; } = $"""
        WITH same AS (
          UPDATE {table} t SET value = @value, etag = t.etag + 1, expiresat = {Expires}, contenttype = @contenttype
          WHERE t.key = @key AND {Cost} = @cost AND (@condition = 0 OR ({Live} AND t.etag = @version))
          RETURNING t.etag),
        old AS MATERIALIZED (
          SELECT @cost - ({Cost}) AS dbytes FROM {table}
          WHERE key = @key AND NOT EXISTS (SELECT FROM same) AND (@condition = 0 OR ({Live} AND etag = @version))
          FOR UPDATE),
        added AS MATERIALIZED (
          UPDATE {table}_usage u SET bytes = u.bytes + o.dbytes FROM old o
          WHERE u.prefix = @prefix AND (o.dbytes <= 0 OR o.dbytes <= @maxbytes - u.bytes)
          RETURNING u.bytes),
        resized AS (
          UPDATE {table} t SET value = @value, etag = t.etag + 1, expiresat = {Expires}, contenttype = @contenttype
          FROM added a WHERE t.key = @key
          RETURNING t.etag)
        SELECT etag FROM same UNION ALL SELECT etag FROM resized
        """;

    /// <summary>
    /// One write of one key, its etag check, its quota check and its usage change, in one statement (one round trip,
    /// atomic on its own or as part of a transaction). In order, each step feeding the next:
    /// <list type="number">
    /// <item><c>old</c> reads and locks the key's row, expired or not, so no other writer changes it until the end.</item>
    /// <item><c>plan</c> checks the etag condition against it (<c>@condition</c>: 0 none, 1 must not exist or be expired,
    /// 2 must be the live row of version <c>@version</c>) and computes the change of usage: what the write stores
    /// (<c>@cost</c>, counted by the caller as <c>StateUsage.Of</c> counts) minus what the row counted.</item>
    /// <item><c>counted</c> locks the prefix's usage row, only when usage changes: writers of one prefix that change its
    /// usage go one at a time, each adding to what the last committed. Keys are always locked before usage rows.</item>
    /// <item><c>decided</c>: the write goes ahead when the etag matches, the usage row exists (else <c>unseeded</c>: nothing
    /// is written and the caller seeds it and runs the statement again) and the change stays within <c>@maxkeys</c> and
    /// <c>@maxbytes</c>, the rule of <c>StateAllowance.Check</c>: a figure that does not grow is never refused.</item>
    /// <item>The row is updated (it existed: it is locked), inserted (it did not) or deleted, and the usage row changed
    /// only when the data changed. An insert that meets a row another writer created after <c>old</c> read none changes
    /// nothing (no etag returned): the caller runs the statement again, which then finds and locks that row.</item>
    /// </list>
    /// Nothing is written unless everything passes, so a refusal needs no rollback.
    /// </summary>
    public string Write { get; } = $"""
        WITH old AS MATERIALIZED (
          SELECT etag, {Live} AS live, {Cost} AS cost FROM {table} WHERE key = @key FOR UPDATE),
        plan AS MATERIALIZED (
          SELECT o.etag IS NOT NULL AS existed,
            CASE @condition WHEN 1 THEN NOT COALESCE(o.live, false) WHEN 2 THEN COALESCE(o.live AND o.etag = @version, false) ELSE true END AS matches,
            (CASE WHEN @isset THEN 1 ELSE 0 END - CASE WHEN o.etag IS NULL THEN 0 ELSE 1 END)::bigint AS dkeys,
            (CASE WHEN @isset THEN @cost ELSE 0 END - COALESCE(o.cost, 0))::bigint AS dbytes
          FROM (VALUES (1)) AS one (x) LEFT JOIN old o ON true),
        counted AS MATERIALIZED (
          SELECT u.keys, u.bytes FROM {table}_usage u, plan p
          WHERE u.prefix = @prefix AND p.matches AND (p.dkeys <> 0 OR p.dbytes <> 0)
          FOR UPDATE OF u),
        checked AS MATERIALIZED (
          SELECT p.existed, p.matches, p.dkeys, p.dbytes, c.keys, c.bytes,
            p.matches AND (p.dkeys <> 0 OR p.dbytes <> 0) AND c.keys IS NULL AS unseeded,
            COALESCE((p.dkeys > 0 AND c.keys + p.dkeys > @maxkeys) OR (p.dbytes > 0 AND c.bytes + p.dbytes > @maxbytes), false) AS refused
          FROM plan p LEFT JOIN counted c ON true),
        decided AS MATERIALIZED (
          SELECT *, matches AND NOT unseeded AND NOT refused AS proceed FROM checked),
        updated AS (
          UPDATE {table} t SET value = @value, etag = t.etag + 1, expiresat = {Expires}, contenttype = @contenttype
          FROM decided d WHERE t.key = @key AND d.proceed AND @isset AND d.existed
          RETURNING t.etag),
        inserted AS (
          INSERT INTO {table} (key, value, etag, expiresat, contenttype)
          SELECT @key, @value, 1, {Expires}, @contenttype FROM decided d WHERE d.proceed AND @isset AND NOT d.existed
          ON CONFLICT (key) DO NOTHING
          RETURNING etag),
        deleted AS (
          DELETE FROM {table} t USING decided d WHERE t.key = @key AND d.proceed AND NOT @isset AND d.existed
          RETURNING t.etag),
        written AS (
          SELECT etag FROM updated UNION ALL SELECT etag FROM inserted UNION ALL SELECT etag FROM deleted),
        added AS (
          UPDATE {table}_usage u SET keys = u.keys + d.dkeys, bytes = u.bytes + d.dbytes
          FROM decided d WHERE u.prefix = @prefix AND (d.dkeys <> 0 OR d.dbytes <> 0) AND EXISTS (SELECT FROM written)
          RETURNING u.keys)
        SELECT d.matches, d.unseeded, d.refused, d.keys, d.bytes, d.dkeys, d.dbytes,
          (SELECT etag FROM updated UNION ALL SELECT etag FROM inserted) AS etag,
          (SELECT count(*) FROM added) AS counted
        FROM decided d
        """;

    /// <summary>
    /// Locks the rows of a transaction's keys that exist, in key order, before its writes lock anything else: two
    /// transactions writing the same keys in different orders wait for each other instead of deadlocking.
    /// </summary>
    public string LockKeys { get; } = $"SELECT key FROM {table} WHERE key = ANY(@keys) ORDER BY key FOR UPDATE";

    /// <summary>Locks the usage rows of a transaction's prefixes, in prefix order, after its keys and before its writes.</summary>
    public string LockUsage { get; } = $"SELECT prefix FROM {table}_usage WHERE prefix = ANY(@prefixes) ORDER BY prefix FOR UPDATE";

    /// <summary>
    /// Seeds a prefix's usage once, when it has no row (rows written before usage was kept): one count of its rows,
    /// expired or not. Another writer seeding at the same time waits on the row's key and then does nothing.
    /// </summary>
    public string SeedUsage { get; } = $"""
        INSERT INTO {table}_usage (prefix, keys, bytes)
        SELECT @prefix, count(*), COALESCE(sum({Cost}), 0)::bigint FROM {table} WHERE prefix = @prefix
        ON CONFLICT (prefix) DO NOTHING
        """;

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
