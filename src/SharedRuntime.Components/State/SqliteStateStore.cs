using System.Globalization;
using System.Text.RegularExpressions;
using Microsoft.Data.Sqlite;

namespace SharedRuntime.Components.State;

/// <summary>
/// <c>state.sqlite</c>: a durable store in one SQLite file (WAL mode). Metadata as Dapr's component:
/// <c>connectionString</c> (a path, relative to the resource file, or a full connection string), <c>tableName</c>,
/// <c>busyTimeout</c>. Etags are integers; expired keys are invisible, count toward usage until deleted, and are deleted
/// by a periodic sweep. Usage per prefix is counted once per process from the table and then kept under the write gate
/// (one process writes the file), so the allowance of a write is checked inside its transaction.
/// </summary>
internal sealed partial class SqliteStateStore : IStateStore
{
    private readonly TimeProvider _time;
    private readonly string _connectionString;
    private readonly string _table;
    private readonly SemaphoreSlim _writeGate = new(1, 1);

    /// <summary>Usage per key prefix, read once from the table and then kept up to date by every committed write.</summary>
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, StateUsage> _usage = new(StringComparer.Ordinal);
    private SqliteConnection? _keepAlive;
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
        if (int.TryParse(context.GetMetadata("busyTimeout")?.TrimEnd('s'), NumberStyles.Integer, CultureInfo.InvariantCulture, out var busySeconds))
        {
            builder.DefaultTimeout = busySeconds;
        }
        builder.Pooling = true;
        _connectionString = builder.ToString();
    }

    public IReadOnlyList<string> Capabilities { get; } = ["ETAG", "TRANSACTIONAL", "TTL"];

    public async ValueTask InitAsync(CancellationToken cancellationToken)
    {
        _keepAlive = new SqliteConnection(_connectionString);
        await _keepAlive.OpenAsync(cancellationToken).ConfigureAwait(false);
        await ExecuteAsync(_keepAlive, $"""
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
            """, cancellationToken).ConfigureAwait(false);
        _sweeper = _time.CreateTimer(static state => _ = ((SqliteStateStore)state!).SweepAsync(), this, TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(10));
    }

    private long Now => _time.GetUtcNow().ToUnixTimeMilliseconds();

    private async Task<SqliteConnection> OpenAsync(CancellationToken cancellationToken)
    {
        var connection = new SqliteConnection(_connectionString);
        await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
        return connection;
    }

    public async ValueTask<StateEntry?> GetAsync(string key, CancellationToken cancellationToken)
    {
        try
        {
            await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
            return await ReadAsync(connection, null, key, cancellationToken).ConfigureAwait(false);
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

    private async Task<StateEntry?> ReadAsync(SqliteConnection connection, SqliteTransaction? transaction, string key, CancellationToken cancellationToken)
    {
        await using var command = connection.CreateCommand();
        command.Transaction = transaction;
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

    public async ValueTask<string> SetAsync(StateSetRequest request, CancellationToken cancellationToken)
    {
        string etag = "";
        await InTransactionAsync("set", async (connection, transaction) =>
            etag = await ApplySetAsync(connection, transaction, request, cancellationToken).ConfigureAwait(false), cancellationToken).ConfigureAwait(false);
        return etag;
    }

    public ValueTask DeleteAsync(StateDeleteRequest request, CancellationToken cancellationToken) =>
        new(InTransactionAsync("delete", (connection, transaction) => ApplyDeleteAsync(connection, transaction, request, cancellationToken), cancellationToken));

    public ValueTask TransactAsync(IReadOnlyList<StateOperation> operations, CancellationToken cancellationToken) =>
        TransactAsync(operations, StateAllowance.Unlimited(""), cancellationToken);

    public ValueTask TransactAsync(IReadOnlyList<StateOperation> operations, StateAllowance allowance, CancellationToken cancellationToken) =>
        new(InTransactionAsync("transaction", allowance, async (connection, transaction) =>
        {
            foreach (var operation in operations)
            {
                if (operation.Set is { } set)
                {
                    await ApplySetAsync(connection, transaction, set, cancellationToken).ConfigureAwait(false);
                }
                else
                {
                    await ApplyDeleteAsync(connection, transaction, operation.Delete!, cancellationToken).ConfigureAwait(false);
                }
            }
        }, cancellationToken));

    public async ValueTask<StateUsage> GetUsageAsync(string prefix, CancellationToken cancellationToken)
    {
        if (_usage.TryGetValue(prefix, out var cached))
        {
            return cached;
        }
        await _writeGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (!_usage.TryGetValue(prefix, out cached))
            {
                cached = await CountUsageAsync(prefix, cancellationToken).ConfigureAwait(false);
                _usage[prefix] = cached;
            }
            return cached;
        }
        catch (SqliteException ex)
        {
            throw Failure("usage", ex);
        }
        finally
        {
            _writeGate.Release();
        }
    }

    /// <summary>Every row of the prefix, expired or not (an expired row takes room until the sweep deletes it), by <see cref="StateUsage.Of(string, int, string?)"/>.</summary>
    private async Task<StateUsage> CountUsageAsync(string prefix, CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = connection.CreateCommand();
        command.CommandText = $"SELECT COUNT(*), COALESCE(SUM({StoredBytes}), 0) FROM {_table} WHERE prefix = $prefix";
        command.Parameters.AddWithValue("$prefix", prefix);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        return new StateUsage(reader.GetInt64(0), reader.GetInt64(1));
    }

    /// <summary>The bytes one row counts (<see cref="StateUsage.Of(string, int, string?)"/>): UTF-8 bytes of key and content type, and the value's.</summary>
    private const string StoredBytes = "length(CAST(key AS BLOB)) + length(value) + COALESCE(length(CAST(content_type AS BLOB)), 0)";

    /// <summary>Writes go one at a time (SQLite has one writer anyway), each in its own transaction.</summary>
    private Task InTransactionAsync(string operation, Func<SqliteConnection, SqliteTransaction, Task> work, CancellationToken cancellationToken) =>
        InTransactionAsync(operation, StateAllowance.Unlimited(""), work, cancellationToken);

    private async Task InTransactionAsync(string operation, StateAllowance allowance, Func<SqliteConnection, SqliteTransaction, Task> work, CancellationToken cancellationToken)
    {
        try
        {
            await InTransactionAsync(allowance, work, cancellationToken).ConfigureAwait(false);
        }
        catch (SqliteException ex)
        {
            throw Failure(operation, ex);
        }
    }

    private Task InTransactionAsync(Func<SqliteConnection, SqliteTransaction, Task> work, CancellationToken cancellationToken) =>
        InTransactionAsync(StateAllowance.Unlimited(""), work, cancellationToken);

    /// <summary>
    /// Runs <paramref name="work"/> in one transaction under the write gate. With a limited <paramref name="allowance"/>, the
    /// prefix's usage is seeded first if this process has not counted it yet (one scan, under the gate, so no write is
    /// counted twice), and the transaction rolls back with <see cref="StateQuotaExceededException"/> when its changes
    /// would pass the allowance.
    /// </summary>
    private async Task InTransactionAsync(StateAllowance allowance, Func<SqliteConnection, SqliteTransaction, Task> work, CancellationToken cancellationToken)
    {
        await _writeGate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            _pendingUsage.Clear();
            if (!allowance.IsUnlimited && !_usage.ContainsKey(allowance.Prefix))
            {
                _usage[allowance.Prefix] = await CountUsageAsync(allowance.Prefix, cancellationToken).ConfigureAwait(false);
            }
            await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
            await using var transaction = (SqliteTransaction)await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            await work(connection, transaction).ConfigureAwait(false);
            if (!allowance.IsUnlimited)
            {
                allowance.Check(_usage.GetValueOrDefault(allowance.Prefix), _pendingUsage.GetValueOrDefault(allowance.Prefix));
            }
            await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
            foreach (var (prefix, delta) in _pendingUsage)
            {
                if (_usage.TryGetValue(prefix, out var usage))
                {
                    _usage[prefix] = usage + delta;
                }
            }
        }
        finally
        {
            _pendingUsage.Clear();
            _writeGate.Release();
        }
    }

    /// <summary>Usage changes of the transaction in progress (under the write gate), applied only once it commits.</summary>
    private readonly Dictionary<string, StateUsage> _pendingUsage = new(StringComparer.Ordinal);

    /// <summary>Notes how <paramref name="key"/>'s row changes usage: it becomes <paramref name="stored"/> (null: deleted).</summary>
    private async Task NoteChangeAsync(SqliteConnection connection, SqliteTransaction transaction, string key, StateUsage? stored, CancellationToken cancellationToken)
    {
        var existing = await StoredUsageAsync(connection, transaction, key, cancellationToken).ConfigureAwait(false);
        var delta = (stored ?? default) - existing;
        var prefix = StateKeys.PrefixOf(key).ToString();
        _pendingUsage[prefix] = _pendingUsage.GetValueOrDefault(prefix) + delta;
    }

    /// <summary>What <paramref name="key"/>'s row counts, expired or not; nothing when there is no row.</summary>
    private async Task<StateUsage> StoredUsageAsync(SqliteConnection connection, SqliteTransaction transaction, string key, CancellationToken cancellationToken)
    {
        await using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = $"SELECT {StoredBytes} FROM {_table} WHERE key = $key";
        command.Parameters.AddWithValue("$key", key);
        return await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is long bytes ? new StateUsage(1, bytes) : default;
    }

    private async Task CheckETagAsync(SqliteConnection connection, SqliteTransaction transaction, string key, string? etag, StateConcurrency concurrency, CancellationToken cancellationToken)
    {
        if (etag is null && concurrency != StateConcurrency.FirstWrite)
        {
            return;
        }
        if (etag is not null && concurrency == StateConcurrency.LastWrite)
        {
            return;
        }
        var current = await ReadAsync(connection, transaction, key, cancellationToken).ConfigureAwait(false);
        if (etag is null)
        {
            if (current is not null)
            {
                throw new StateETagMismatchException(key);
            }
            return;
        }
        if (!long.TryParse(etag, NumberStyles.Integer, CultureInfo.InvariantCulture, out _))
        {
            throw new StateETagInvalidException(key);
        }
        if (current is null || current.ETag != etag)
        {
            throw new StateETagMismatchException(key);
        }
    }

    private async Task<string> ApplySetAsync(SqliteConnection connection, SqliteTransaction transaction, StateSetRequest request, CancellationToken cancellationToken)
    {
        await CheckETagAsync(connection, transaction, request.Key, request.ETag, request.Concurrency, cancellationToken).ConfigureAwait(false);
        await NoteChangeAsync(connection, transaction, request.Key, StateUsage.Of(request), cancellationToken).ConfigureAwait(false);
        await using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = $"""
            INSERT INTO {_table} (key, value, etag, expires_at, content_type, prefix)
            VALUES ($key, $value, (SELECT COALESCE(MAX(etag), 0) + 1 FROM {_table} WHERE key = $key), $expires, $contentType, $prefix)
            ON CONFLICT(key) DO UPDATE SET value = excluded.value, etag = {_table}.etag + 1, expires_at = excluded.expires_at, content_type = excluded.content_type
            RETURNING etag
            """;
        command.Parameters.AddWithValue("$key", request.Key);
        command.Parameters.AddWithValue("$value", request.Value.ToArray());
        command.Parameters.AddWithValue("$expires", request.Ttl is { } ttl ? Now + (long)ttl.TotalMilliseconds : DBNull.Value);
        command.Parameters.AddWithValue("$contentType", (object?)request.ContentType ?? DBNull.Value);
        command.Parameters.AddWithValue("$prefix", StateKeys.PrefixOf(request.Key).ToString());
        var etag = await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
        return Convert.ToInt64(etag, CultureInfo.InvariantCulture).ToString(CultureInfo.InvariantCulture);
    }

    private async Task ApplyDeleteAsync(SqliteConnection connection, SqliteTransaction transaction, StateDeleteRequest request, CancellationToken cancellationToken)
    {
        if (request.ETag is not null)
        {
            await CheckETagAsync(connection, transaction, request.Key, request.ETag, request.Concurrency, cancellationToken).ConfigureAwait(false);
        }
        await NoteChangeAsync(connection, transaction, request.Key, null, cancellationToken).ConfigureAwait(false);
        await using var command = connection.CreateCommand();
        command.Transaction = transaction;
        command.CommandText = $"DELETE FROM {_table} WHERE key = $key";
        command.Parameters.AddWithValue("$key", request.Key);
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    private async Task SweepAsync()
    {
        try
        {
            await InTransactionAsync(async (connection, transaction) =>
            {
                await using var command = connection.CreateCommand();
                command.Transaction = transaction;
                // Expired rows were counted until now: what is deleted is subtracted once the deletion commits.
                command.CommandText = $"DELETE FROM {_table} WHERE expires_at IS NOT NULL AND expires_at <= $now RETURNING prefix, {StoredBytes}";
                command.Parameters.AddWithValue("$now", Now);
                await using var reader = await command.ExecuteReaderAsync().ConfigureAwait(false);
                while (await reader.ReadAsync().ConfigureAwait(false))
                {
                    var prefix = reader.GetString(0);
                    _pendingUsage[prefix] = _pendingUsage.GetValueOrDefault(prefix) - new StateUsage(1, reader.GetInt64(1));
                }
            }, CancellationToken.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is SqliteException or ObjectDisposedException)
        {
            // The next sweep tries again; expired rows are invisible meanwhile.
        }
    }

    private static async Task ExecuteAsync(SqliteConnection connection, string sql, CancellationToken cancellationToken)
    {
        await using var command = connection.CreateCommand();
        command.CommandText = sql;
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    public async ValueTask DisposeAsync()
    {
        if (_sweeper is not null)
        {
            await _sweeper.DisposeAsync().ConfigureAwait(false);
        }
        if (_keepAlive is not null)
        {
            await _keepAlive.DisposeAsync().ConfigureAwait(false);
        }
    }
}
