using System.Globalization;
using System.Text.RegularExpressions;
using Microsoft.Data.Sqlite;

namespace SharedRuntime.Components.State;

/// <summary>
/// <c>state.sqlite</c>: a durable store in one SQLite file (WAL mode). Metadata as Dapr's component:
/// <c>connectionString</c> (a path, relative to the resource file, or a full connection string), <c>tableName</c>,
/// <c>busyTimeout</c>. Etags are integers; expired keys are invisible, count toward usage until deleted, and are deleted
/// by a periodic sweep. Each prefix's usage is a row of <c>&lt;table&gt;_usage</c> (prefix, keys, bytes), changed in the
/// transaction that changes the data and checked there against the write's allowance; a prefix without a row (a file
/// written before usage was kept) is seeded by one count the first time it is touched. Writes run one at a time on the
/// store's own thread (<see cref="SqliteWriter"/>), so no thread-pool thread waits for SQLite or for the file's lock;
/// reads run on pooled connections beside them (WAL readers do not wait for the writer).
/// </summary>
internal sealed partial class SqliteStateStore : IStateStore
{
    private readonly TimeProvider _time;
    private readonly string _connectionString;
    private readonly string _table;
    private readonly SqliteWriter _writer;
    private ITimer? _sweeper;

    [GeneratedRegex("^[A-Za-z_][A-Za-z0-9_]{0,62}$")]
    private static partial Regex TableName();

    public SqliteStateStore(ComponentContext context, TimeProvider time)
    {
        _time = time;
        _table = context.GetMetadata("tableName") ?? "state";
        if (!TableName().IsMatch(_table))
        {
            throw new ComponentException($"tableName '{_table}' must be letters, digits and underscores");
        }
        var raw = context.GetMetadata("connectionString") ?? context.GetMetadata("databasePath")
            ?? throw new ComponentException("metadata 'connectionString' is required (a file path such as state.db)");
        var builder = raw.Contains('=', StringComparison.Ordinal) ? new SqliteConnectionStringBuilder(raw) : new SqliteConnectionStringBuilder { DataSource = raw };
        if (builder.DataSource.StartsWith("file:", StringComparison.OrdinalIgnoreCase))
        {
            builder.DataSource = builder.DataSource[5..];
        }
        if (builder.DataSource != ":memory:" && !Path.IsPathRooted(builder.DataSource) && context.BaseDirectory is not null)
        {
            builder.DataSource = Path.Combine(context.BaseDirectory, builder.DataSource);
        }
        if (builder.DataSource == ":memory:")
        {
            builder.DataSource = $"sharedruntime-{Guid.NewGuid():N}";
            builder.Mode = SqliteOpenMode.Memory;
            builder.Cache = SqliteCacheMode.Shared;
        }
        else if (builder.Mode != SqliteOpenMode.Memory)
        {
            builder.DataSource = FileRoots.Of(context).Check(builder.DataSource, "connectionString");
        }
        if (int.TryParse(context.GetMetadata("busyTimeout")?.TrimEnd('s'), NumberStyles.Integer, CultureInfo.InvariantCulture, out var busySeconds))
        {
            builder.DefaultTimeout = busySeconds;
        }
        builder.Pooling = true;
        _connectionString = builder.ToString();
        _writer = new SqliteWriter(_connectionString, $"sqlite-writer-{_table}");
    }

    public IReadOnlyList<string> Capabilities { get; } = ["ETAG", "TRANSACTIONAL", "TTL"];

    public async ValueTask InitAsync(CancellationToken cancellationToken)
    {
        // The writer's connection stays open for the store's life, which also keeps an in-memory database alive.
        await _writer.StartAsync().ConfigureAwait(false);
        await _writer.RunAsync(connection =>
        {
            using var command = connection.CreateCommand();
            command.CommandText = $"""
                PRAGMA journal_mode=WAL;
                PRAGMA synchronous=NORMAL;
                CREATE TABLE IF NOT EXISTS {_table} (
                  key TEXT NOT NULL PRIMARY KEY,
                  value BLOB NOT NULL,
                  etag INTEGER NOT NULL,
                  expires_at INTEGER NULL,
                  content_type TEXT NULL,
                  prefix TEXT NOT NULL);
                CREATE INDEX IF NOT EXISTS {_table}_prefix ON {_table} (prefix);
                CREATE INDEX IF NOT EXISTS {_table}_expires ON {_table} (expires_at) WHERE expires_at IS NOT NULL;
                CREATE TABLE IF NOT EXISTS {_table}_usage (
                  prefix TEXT NOT NULL PRIMARY KEY,
                  keys INTEGER NOT NULL,
                  bytes INTEGER NOT NULL) WITHOUT ROWID;
                """;
            return command.ExecuteNonQuery();
        }, cancellationToken).ConfigureAwait(false);
        _sweeper = _time.CreateTimer(static state => _ = ((SqliteStateStore)state!).SweepAsync(), this, TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(10));
    }

    private long Now => _time.GetUtcNow().ToUnixTimeMilliseconds();

    public async ValueTask<StateEntry?> GetAsync(string key, CancellationToken cancellationToken)
    {
        try
        {
            await using var connection = new SqliteConnection(_connectionString);
            await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
            await using var command = connection.CreateCommand();
            command.CommandText = $"SELECT value, etag, expires_at, content_type FROM {_table} WHERE key = $key AND (expires_at IS NULL OR expires_at > $now)";
            command.Parameters.AddWithValue("$key", key);
            command.Parameters.AddWithValue("$now", Now);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                return null;
            }
            var value = (byte[])reader.GetValue(0);
            DateTimeOffset? expires = reader.IsDBNull(2) ? null : DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(2));
            return new StateEntry(key, value, reader.GetInt64(1).ToString(CultureInfo.InvariantCulture), expires, reader.IsDBNull(3) ? null : reader.GetString(3));
        }
        catch (SqliteException ex)
        {
            throw Failure("get", ex);
        }
    }

    /// <summary>
    /// A SQLite error as a component error: a refusal of the data (a constraint, a string or blob too big, a type
    /// mismatch) is the request's fault; anything else (busy, I/O, a full disk, a corrupt file) is the backend's.
    /// </summary>
    private static ComponentException Failure(string operation, SqliteException ex) => (ex.SqliteErrorCode & 0xFF) switch
    {
        SqliteTooBig or SqliteConstraint or SqliteMismatch => new StateRequestRejectedException($"sqlite refused the {operation}: {ex.Message}", ex),
        _ => new ComponentException($"sqlite {operation} failed: {ex.Message}", ex),
    };

    private const int SqliteTooBig = 18;
    private const int SqliteConstraint = 19;
    private const int SqliteMismatch = 20;

    public async ValueTask<string> SetAsync(StateSetRequest request, CancellationToken cancellationToken) =>
        (await WriteAsync("set", [new StateOperation(request, null)], StateAllowance.Unlimited(""), cancellationToken).ConfigureAwait(false))[0];

    public async ValueTask DeleteAsync(StateDeleteRequest request, CancellationToken cancellationToken) =>
        await WriteAsync("delete", [new StateOperation(null, request)], StateAllowance.Unlimited(""), cancellationToken).ConfigureAwait(false);

    public async ValueTask TransactAsync(IReadOnlyList<StateOperation> operations, CancellationToken cancellationToken) =>
        await WriteAsync("transaction", operations, StateAllowance.Unlimited(""), cancellationToken).ConfigureAwait(false);

    public async ValueTask TransactAsync(IReadOnlyList<StateOperation> operations, StateAllowance allowance, CancellationToken cancellationToken) =>
        await WriteAsync("transaction", operations, allowance, cancellationToken).ConfigureAwait(false);

    /// <summary>The usage kept for <paramref name="prefix"/> (O(1)); seeded by one count, on the writer, the first time it is missing.</summary>
    public async ValueTask<StateUsage> GetUsageAsync(string prefix, CancellationToken cancellationToken)
    {
        try
        {
            await using (var connection = new SqliteConnection(_connectionString))
            {
                await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
                if (ReadUsage(connection, null, prefix) is { } kept)
                {
                    return kept;
                }
            }
            return await _writer.RunAsync(connection =>
            {
                using var transaction = connection.BeginTransaction();
                var usage = UsageOrSeed(connection, transaction, prefix);
                transaction.Commit();
                return usage;
            }, cancellationToken).ConfigureAwait(false);
        }
        catch (SqliteException ex)
        {
            throw Failure("usage", ex);
        }
    }

    private async Task<string[]> WriteAsync(string operation, IReadOnlyList<StateOperation> operations, StateAllowance allowance, CancellationToken cancellationToken)
    {
        try
        {
            return await _writer.RunAsync(connection => Write(connection, operations, allowance), cancellationToken).ConfigureAwait(false);
        }
        catch (SqliteException ex)
        {
            throw Failure(operation, ex);
        }
    }

    /// <summary>
    /// Applies <paramref name="operations"/> in one transaction, on the writer: each key's row is read, its etag checked
    /// and the row written; the usage rows of the prefixes touched (seeded first when missing, so the count never holds
    /// these writes) change by what the rows changed, after <paramref name="allowance"/> is checked against the change
    /// of all the operations together. An etag mismatch or a refusal throws, and the transaction rolls back whole.
    /// <c>BEGIN IMMEDIATE</c> takes the file's write lock first, so another process writing the file waits for this one.
    /// </summary>
    private string[] Write(SqliteConnection connection, IReadOnlyList<StateOperation> operations, StateAllowance allowance)
    {
        using var transaction = connection.BeginTransaction(deferred: false);
        var usage = new Dictionary<string, (StateUsage Before, StateUsage Change)>(StringComparer.Ordinal);
        foreach (var operation in operations)
        {
            var prefix = StateKeys.PrefixOf(operation.Key).ToString();
            if (!usage.ContainsKey(prefix))
            {
                usage[prefix] = (UsageOrSeed(connection, transaction, prefix), default);
            }
        }
        var now = Now;
        var versions = new string[operations.Count];
        for (var i = 0; i < operations.Count; i++)
        {
            var key = operations[i].Key;
            var row = ReadRow(connection, transaction, key);
            var live = row is { } r && (r.ExpiresAt is null || r.ExpiresAt > now) ? row : null;
            StateUsage stored = default;
            if (operations[i].Set is { } set)
            {
                ETagCondition.For(set).Verify(key, live?.ETag);
                versions[i] = Upsert(connection, transaction, set, (row?.ETag ?? 0) + 1, now);
                stored = StateUsage.Of(set);
            }
            else
            {
                var delete = operations[i].Delete!;
                ETagCondition.For(delete).Verify(key, live?.ETag);
                if (row is not null)
                {
                    Delete(connection, transaction, key);
                }
                versions[i] = "";
            }
            var prefix = StateKeys.PrefixOf(key).ToString();
            var (before, change) = usage[prefix];
            usage[prefix] = (before, change + stored - (row?.Usage ?? default));
        }
        if (!allowance.IsUnlimited && usage.TryGetValue(allowance.Prefix, out var limited))
        {
            allowance.Check(limited.Before, limited.Change);
        }
        foreach (var (prefix, (_, change)) in usage)
        {
            if (change != default)
            {
                AddUsage(connection, transaction, prefix, change);
            }
        }
        transaction.Commit();
        return versions;
    }

    private readonly record struct StoredRow(long ETag, long? ExpiresAt, StateUsage Usage);

    private StoredRow? ReadRow(SqliteConnection connection, SqliteTransaction transaction, string key)
    {
        using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = $"SELECT etag, expires_at, {StoredBytes} FROM {_table} WHERE key = $key";
        command.Parameters.AddWithValue("$key", key);
        using var reader = command.ExecuteReader();
        return reader.Read()
            ? new StoredRow(reader.GetInt64(0), reader.IsDBNull(1) ? null : reader.GetInt64(1), new StateUsage(1, reader.GetInt64(2)))
            : null;
    }

    private string Upsert(SqliteConnection connection, SqliteTransaction transaction, StateSetRequest request, long etag, long now)
    {
        using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = $"""
            INSERT INTO {_table} (key, value, etag, expires_at, content_type, prefix) VALUES ($key, $value, $etag, $expires, $contentType, $prefix)
            ON CONFLICT(key) DO UPDATE SET value = excluded.value, etag = excluded.etag, expires_at = excluded.expires_at, content_type = excluded.content_type
            """;
        command.Parameters.AddWithValue("$key", request.Key);
        command.Parameters.AddWithValue("$value", request.Value.ToArray());
        command.Parameters.AddWithValue("$etag", etag);
        command.Parameters.AddWithValue("$expires", request.Ttl is { } ttl ? now + (long)ttl.TotalMilliseconds : DBNull.Value);
        command.Parameters.AddWithValue("$contentType", (object?)request.ContentType ?? DBNull.Value);
        command.Parameters.AddWithValue("$prefix", StateKeys.PrefixOf(request.Key).ToString());
        command.ExecuteNonQuery();
        return etag.ToString(CultureInfo.InvariantCulture);
    }

    private void Delete(SqliteConnection connection, SqliteTransaction transaction, string key)
    {
        using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = $"DELETE FROM {_table} WHERE key = $key";
        command.Parameters.AddWithValue("$key", key);
        command.ExecuteNonQuery();
    }

    /// <summary>The bytes one row counts (<see cref="StateUsage.Of(string, int, string?)"/>): UTF-8 bytes of key and content type, and the value's.</summary>
    private const string StoredBytes = "length(CAST(key AS BLOB)) + length(value) + COALESCE(length(CAST(content_type AS BLOB)), 0)";

    /// <summary>The usage kept for <paramref name="prefix"/>, or null when it has no row yet.</summary>
    private StateUsage? ReadUsage(SqliteConnection connection, SqliteTransaction? transaction, string prefix)
    {
        using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = $"SELECT keys, bytes FROM {_table}_usage WHERE prefix = $prefix";
        command.Parameters.AddWithValue("$prefix", prefix);
        using var reader = command.ExecuteReader();
        return reader.Read() ? new StateUsage(reader.GetInt64(0), reader.GetInt64(1)) : null;
    }

    /// <summary>
    /// The usage kept for <paramref name="prefix"/>; when it has no row (rows written before usage was kept), seeds it by
    /// one count of the prefix's rows, expired or not, inside <paramref name="transaction"/>. Once only: the row stays.
    /// </summary>
    private StateUsage UsageOrSeed(SqliteConnection connection, SqliteTransaction transaction, string prefix)
    {
        if (ReadUsage(connection, transaction, prefix) is { } kept)
        {
            return kept;
        }
        using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = $"""
            INSERT INTO {_table}_usage (prefix, keys, bytes)
            SELECT $prefix, COUNT(*), COALESCE(SUM({StoredBytes}), 0) FROM {_table} WHERE prefix = $prefix
            RETURNING keys, bytes
            """;
        command.Parameters.AddWithValue("$prefix", prefix);
        using var reader = command.ExecuteReader();
        reader.Read();
        return new StateUsage(reader.GetInt64(0), reader.GetInt64(1));
    }

    private void AddUsage(SqliteConnection connection, SqliteTransaction transaction, string prefix, StateUsage change)
    {
        using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = $"UPDATE {_table}_usage SET keys = keys + $keys, bytes = bytes + $bytes WHERE prefix = $prefix";
        command.Parameters.AddWithValue("$prefix", prefix);
        command.Parameters.AddWithValue("$keys", change.Keys);
        command.Parameters.AddWithValue("$bytes", change.Bytes);
        command.ExecuteNonQuery();
    }

    /// <summary>
    /// Deletes expired rows and subtracts what they counted from their prefixes' usage, in one transaction on the writer.
    /// A prefix without usage is left alone: its seeding counts what is left.
    /// </summary>
    private async Task SweepAsync()
    {
        try
        {
            await _writer.RunAsync(connection =>
            {
                using var transaction = connection.BeginTransaction(deferred: false);
                var removed = new Dictionary<string, StateUsage>(StringComparer.Ordinal);
                using (var command = connection.CreateCommand())
                {
                    command.Transaction = transaction;
                    command.CommandText = $"DELETE FROM {_table} WHERE expires_at IS NOT NULL AND expires_at <= $now RETURNING prefix, {StoredBytes}";
                    command.Parameters.AddWithValue("$now", Now);
                    using var reader = command.ExecuteReader();
                    while (reader.Read())
                    {
                        var prefix = reader.GetString(0);
                        removed[prefix] = removed.GetValueOrDefault(prefix) + new StateUsage(1, reader.GetInt64(1));
                    }
                }
                foreach (var (prefix, gone) in removed)
                {
                    AddUsage(connection, transaction, prefix, default(StateUsage) - gone);
                }
                transaction.Commit();
                return removed.Count;
            }, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is SqliteException or ObjectDisposedException)
        {
            // The next sweep tries again; expired rows are invisible meanwhile.
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_sweeper is not null)
        {
            await _sweeper.DisposeAsync().ConfigureAwait(false);
        }
        await _writer.DisposeAsync().ConfigureAwait(false);
    }
}
