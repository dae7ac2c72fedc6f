using System.Globalization;
using System.Text;
using Microsoft.Extensions.Logging;
using Npgsql;
using NpgsqlTypes;

namespace SharedRuntime.Components.State;

/// <summary>
/// <c>state.postgresql</c>: one row per key in a table created on first use. The etag is an integer version bumped
/// by every write; each etag check is part of the statement that writes, so concurrent writers cannot slip between
/// check and write. TTL uses the server's clock: expired rows are invisible at once, count toward usage until deleted,
/// and are deleted every <c>cleanupInterval</c>.
/// Each prefix's usage is a row of <c>&lt;table&gt;_usage</c> (prefix, keys, bytes), changed by the same statement or
/// transaction as the data; a write past its <see cref="StateAllowance"/> writes nothing. A write of one key is one
/// round trip; a transaction of several is two.
/// Connections: the store prepares its statements on each pooled connection the first time it runs them there (one
/// round trip), so a request sends only the parameters; and a pooled connection is not reset when it returns to the
/// pool (<c>No Reset On Close</c>: the store sets no session state, so there is nothing to reset, and a reset would ride
/// on every request). A connection string that sets either keeps its own: <c>Max Auto Prepare=N</c> hands preparation
/// to Npgsql, and <c>Max Auto Prepare=0</c> prepares nothing, for a pooler that does not keep prepared statements
/// (PgBouncer in transaction mode before 1.21). Npgsql's own automatic preparation is not the default because a
/// statement that fails while it is being auto-prepared (a value PostgreSQL refuses) can leave the connection's
/// bookkeeping wrong (npgsql/npgsql#6391).
/// </summary>
internal sealed class PostgreSqlStateStore(PostgreSqlStateOptions options, TimeProvider time, ILogger<PostgreSqlStateStore> logger) : IStateStore
{
    private readonly PostgreSqlStateSql _sql = new(options.Table, options.BareTable);
    private NpgsqlDataSource? _source;
    private bool _prepare;
    private ITimer? _sweeper;

    public IReadOnlyList<string> Capabilities { get; } = ["ETAG", "TRANSACTIONAL", "TTL"];

    private NpgsqlDataSource Source => _source ?? throw new ComponentException("postgresql state store is not initialised");

    public async ValueTask InitAsync(CancellationToken cancellationToken)
    {
        (_source, _prepare) = CreateSource(options.ConnectionString);
        await RunAsync("create table", async connection =>
        {
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
            // Several runtimes may start together: one creates the table, the others wait and find it.
            await using (var lockCommand = new NpgsqlCommand("SELECT pg_advisory_xact_lock(hashtext(@table))", connection, transaction))
            {
                lockCommand.Parameters.AddWithValue("table", options.Table);
                await lockCommand.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }
            await using (var create = new NpgsqlCommand(_sql.CreateTable, connection, transaction))
            {
                await create.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
            }
            await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
            return 0;
        }).ConfigureAwait(false);
        BackendsLog.PostgreSqlTableReady(logger, options.Table);
        if (options.CleanupInterval > TimeSpan.Zero)
        {
            _sweeper = time.CreateTimer(static state => _ = ((PostgreSqlStateStore)state!).SweepAsync(), this, options.CleanupInterval, options.CleanupInterval);
        }
    }

    /// <summary>
    /// The data source with this store's defaults for what <paramref name="connectionString"/> leaves unsaid, and whether
    /// the store prepares its statements itself: it does unless the connection string sets <c>Max Auto Prepare</c>
    /// (then Npgsql's automatic preparation does as told, and <c>0</c> prepares nothing).
    /// </summary>
    internal static (NpgsqlDataSource Source, bool Prepare) CreateSource(string connectionString)
    {
        var builder = new NpgsqlDataSourceBuilder(connectionString);
        var given = new System.Data.Common.DbConnectionStringBuilder { ConnectionString = connectionString };
        if (!given.ContainsKey("No Reset On Close"))
        {
            builder.ConnectionStringBuilder.NoResetOnClose = true;
        }
        return (builder.Build(), !given.ContainsKey("Max Auto Prepare"));
    }

    public ValueTask<StateEntry?> GetAsync(string key, CancellationToken cancellationToken) =>
        new(RunAsync("get", async connection =>
        {
            await using var command = new NpgsqlCommand(_sql.Get, connection);
            command.Parameters.Add(new NpgsqlParameter<string>("key", NpgsqlDbType.Text) { TypedValue = key });
            await PrepareAsync(command, cancellationToken).ConfigureAwait(false);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                return null;
            }
            DateTimeOffset? expires = reader.IsDBNull(2) ? null : new DateTimeOffset(reader.GetDateTime(2), TimeSpan.Zero);
            return new StateEntry(key, reader.GetFieldValue<byte[]>(0), reader.GetInt64(1).ToString(CultureInfo.InvariantCulture), expires, reader.IsDBNull(3) ? null : reader.GetString(3));
        }));

    public async ValueTask<string> SetAsync(StateSetRequest request, CancellationToken cancellationToken) =>
        (await WriteAsync("set", [new StateOperation(request, null)], null, cancellationToken).ConfigureAwait(false))[0];

    public async ValueTask DeleteAsync(StateDeleteRequest request, CancellationToken cancellationToken) =>
        await WriteAsync("delete", [new StateOperation(null, request)], null, cancellationToken).ConfigureAwait(false);

    public async ValueTask TransactAsync(IReadOnlyList<StateOperation> operations, CancellationToken cancellationToken) =>
        await WriteAsync("transaction", operations, null, cancellationToken).ConfigureAwait(false);

    public async ValueTask TransactAsync(IReadOnlyList<StateOperation> operations, StateAllowance allowance, CancellationToken cancellationToken) =>
        await WriteAsync("transaction", operations, allowance.IsUnlimited ? null : allowance, cancellationToken).ConfigureAwait(false);

    /// <summary>
    /// Applies <paramref name="operations"/> with the usage of the prefixes they touch, all or none. One operation is one
    /// statement (<see cref="PostgreSqlStateSql.Write"/>, one round trip) that checks the etag and
    /// <paramref name="allowance"/> and writes only when both pass. Several run as one batch in a transaction (two
    /// round trips: the batch, then the commit or rollback), whose allowance is checked against the change of all of
    /// them together. A prefix without usage is seeded (one count) and the write run again; so is a write that met a
    /// key another writer created meanwhile.
    /// </summary>
    private async Task<string[]> WriteAsync(string operation, IReadOnlyList<StateOperation> operations, StateAllowance? allowance, CancellationToken cancellationToken)
    {
        // Invalid etags are refused before anything reaches the database.
        var writes = new PlannedWrite[operations.Count];
        for (var i = 0; i < writes.Length; i++)
        {
            writes[i] = PlannedWrite.For(operations[i]);
        }
        for (var attempt = 1; ; attempt++)
        {
            var outcome = await RunAsync(operation, connection => writes.Length == 1
                ? WriteOneAsync(connection, writes[0], allowance, cancellationToken)
                : WriteManyAsync(connection, writes, allowance, cancellationToken)).ConfigureAwait(false);
            if (outcome.Versions is { } versions)
            {
                return versions;
            }
            foreach (var prefix in outcome.Unseeded ?? [])
            {
                await RunAsync("usage", connection => SeedAsync(connection, prefix, cancellationToken)).ConfigureAwait(false);
            }
            if (attempt == MaxAttempts)
            {
                throw new ComponentException($"postgresql {operation}: keys kept being created concurrently; try again");
            }
        }
    }

    /// <summary>Runs of a write: seeding a prefix takes one, and a key created concurrently another, rarely more.</summary>
    private const int MaxAttempts = 4;

    /// <summary>What a write did: the new etags (a delete's is empty), or null with the prefixes to seed, if any, to run it again.</summary>
    private readonly record struct WriteOutcome(string[]? Versions, IReadOnlyCollection<string>? Unseeded)
    {
        public static WriteOutcome Again(IReadOnlyCollection<string>? unseeded) => new(null, unseeded);
    }

    /// <summary>One operation as <see cref="PostgreSqlStateSql.Write"/> takes it: its etag condition and what it stores.</summary>
    private readonly record struct PlannedWrite(StateOperation Operation, ETagCondition Condition, string Prefix, StateUsage Stored)
    {
        public static PlannedWrite For(StateOperation operation) => operation.Set is { } set
            ? new(operation, ETagCondition.For(set), StateKeys.PrefixOf(set.Key).ToString(), StateUsage.Of(set))
            : new(operation, ETagCondition.For(operation.Delete!), StateKeys.PrefixOf(operation.Key).ToString(), default);
    }

    /// <summary>
    /// One statement, committed on its own: it writes nothing unless the etag and the allowance pass. A set of a key
    /// that exists is first tried as an overwrite (<see cref="PostgreSqlStateSql.Overwrite"/>): as cheap as a bare update
    /// when the value counts as many bytes as before, and when it does not, the same round trip adds the difference to
    /// the prefix's usage within the allowance. When it writes nothing (a new key, an etag that does not match, a usage
    /// not seeded, a value over the quota), the full statement decides, at the price of one more round trip.
    /// </summary>
    private async Task<WriteOutcome> WriteOneAsync(NpgsqlConnection connection, PlannedWrite write, StateAllowance? allowance, CancellationToken cancellationToken)
    {
        var limit = allowance is { } a && string.Equals(a.Prefix, write.Prefix, StringComparison.Ordinal) ? a : (StateAllowance?)null;
        if (write.Operation.Set is not null && write.Condition.Kind != ETagConditionKind.MustNotExist
            && await OverwriteAsync(connection, write, limit, cancellationToken).ConfigureAwait(false) is { } version)
        {
            return new WriteOutcome([version], null);
        }
        await using var command = WriteCommand(connection, write, limit);
        await PrepareAsync(command, cancellationToken).ConfigureAwait(false);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        var result = WriteResult.Read(reader);
        if (result.Again(write) is { } again)
        {
            return again;
        }
        if (result.Refused)
        {
            limit!.Value.Check(result.Before, result.Change);
            throw new InvalidOperationException("postgresql refused a write that its allowance admits");
        }
        return new WriteOutcome([result.Version], null);
    }

    /// <summary>The new etag of an overwrite that changed the row, or null when it changed nothing.</summary>
    private async Task<string?> OverwriteAsync(NpgsqlConnection connection, PlannedWrite write, StateAllowance? limit, CancellationToken cancellationToken)
    {
        var set = write.Operation.Set!;
        await using var command = new NpgsqlCommand(_sql.Overwrite, connection);
        command.Parameters.Add(new NpgsqlParameter<string>("key", NpgsqlDbType.Text) { TypedValue = set.Key });
        command.Parameters.Add(new NpgsqlParameter("value", NpgsqlDbType.Bytea) { Value = set.Value });
        command.Parameters.Add(new NpgsqlParameter("ttlms", NpgsqlDbType.Bigint) { Value = TtlMilliseconds(set) });
        command.Parameters.Add(new NpgsqlParameter("contenttype", NpgsqlDbType.Text) { Value = (object?)set.ContentType ?? DBNull.Value });
        command.Parameters.Add(new NpgsqlParameter<long>("cost", NpgsqlDbType.Bigint) { TypedValue = write.Stored.Bytes });
        command.Parameters.Add(new NpgsqlParameter<int>("condition", NpgsqlDbType.Integer) { TypedValue = (int)write.Condition.Kind });
        command.Parameters.Add(new NpgsqlParameter<long>("version", NpgsqlDbType.Bigint) { TypedValue = write.Condition.Version });
        command.Parameters.Add(new NpgsqlParameter<string>("prefix", NpgsqlDbType.Text) { TypedValue = write.Prefix });
        command.Parameters.Add(new NpgsqlParameter<long>("maxbytes", NpgsqlDbType.Bigint) { TypedValue = limit?.MaxBytes ?? long.MaxValue });
        await PrepareAsync(command, cancellationToken).ConfigureAwait(false);
        return await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false) is long etag
            ? etag.ToString(CultureInfo.InvariantCulture)
            : null;
    }

    private static object TtlMilliseconds(StateSetRequest set) => set.Ttl is { } ttl ? Math.Max(1, (long)ttl.TotalMilliseconds) : DBNull.Value;

    /// <summary>
    /// Several operations as one batch in one transaction: the keys locked in order, the usage rows too when there are
    /// several prefixes, then each write with no limit of its own and, last, the allowance prefix's usage, against which
    /// the change of all the writes is checked before the commit. Anything refused rolls the transaction back.
    /// </summary>
    private async Task<WriteOutcome> WriteManyAsync(NpgsqlConnection connection, PlannedWrite[] writes, StateAllowance? allowance, CancellationToken cancellationToken)
    {
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        await using var batch = new NpgsqlBatch(connection, transaction);
        var keys = writes.Select(w => w.Operation.Key).Distinct(StringComparer.Ordinal).ToArray();
        var prefixes = writes.Select(w => w.Prefix).Distinct(StringComparer.Ordinal).ToArray();
        var lockKeys = new NpgsqlBatchCommand(_sql.LockKeys);
        lockKeys.Parameters.AddWithValue("keys", keys);
        batch.BatchCommands.Add(lockKeys);
        if (prefixes.Length > 1)
        {
            var lockUsage = new NpgsqlBatchCommand(_sql.LockUsage);
            lockUsage.Parameters.AddWithValue("prefixes", prefixes);
            batch.BatchCommands.Add(lockUsage);
        }
        foreach (var write in writes)
        {
            var command = new NpgsqlBatchCommand(_sql.Write);
            AddWriteParameters(command.Parameters, write, null);
            batch.BatchCommands.Add(command);
        }
        if (allowance is { } limited)
        {
            var usage = new NpgsqlBatchCommand(_sql.Usage);
            usage.Parameters.AddWithValue("prefix", limited.Prefix);
            batch.BatchCommands.Add(usage);
        }

        var versions = new string[writes.Length];
        var unseeded = new HashSet<string>(StringComparer.Ordinal);
        var change = default(StateUsage);
        var after = default(StateUsage);
        if (_prepare)
        {
            await batch.PrepareAsync(cancellationToken).ConfigureAwait(false);
        }
        await using (var reader = await batch.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
        {
            // The locks return rows nobody needs.
            for (var skip = prefixes.Length > 1 ? 2 : 1; skip > 0; skip--)
            {
                await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
            }
            for (var i = 0; i < writes.Length; i++)
            {
                await reader.ReadAsync(cancellationToken).ConfigureAwait(false);
                var result = WriteResult.Read(reader);
                if (result.Unseeded)
                {
                    // Every prefix to seed is seeded before the transaction runs again.
                    unseeded.Add(writes[i].Prefix);
                }
                else if (result.Again(writes[i]) is { } again)
                {
                    // Disposing the transaction uncommitted rolls back what the batch did.
                    return again;
                }
                versions[i] = result.Version;
                if (allowance is { } a && string.Equals(a.Prefix, writes[i].Prefix, StringComparison.Ordinal))
                {
                    change += result.Change;
                }
                await reader.NextResultAsync(cancellationToken).ConfigureAwait(false);
            }
            if (allowance is not null && await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                after = new StateUsage(reader.GetInt64(0), reader.GetInt64(1));
            }
        }
        if (unseeded.Count > 0)
        {
            return WriteOutcome.Again(unseeded);
        }
        // A refusal throws; disposing the transaction uncommitted rolls every operation back.
        allowance?.Check(after - change, change);
        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        return new WriteOutcome(versions, null);
    }

    /// <summary>Prepares <paramref name="command"/> on its connection unless it is already (no round trip then) or preparing is off.</summary>
    private Task PrepareAsync(NpgsqlCommand command, CancellationToken cancellationToken) =>
        _prepare ? command.PrepareAsync(cancellationToken) : Task.CompletedTask;

    private NpgsqlCommand WriteCommand(NpgsqlConnection connection, PlannedWrite write, StateAllowance? limit)
    {
        var command = new NpgsqlCommand(_sql.Write, connection);
        AddWriteParameters(command.Parameters, write, limit);
        return command;
    }

    /// <summary>The parameters of <see cref="PostgreSqlStateSql.Write"/>, each typed so that the statement's plan can be reused.</summary>
    private static void AddWriteParameters(NpgsqlParameterCollection parameters, PlannedWrite write, StateAllowance? limit)
    {
        var set = write.Operation.Set;
        parameters.Add(new NpgsqlParameter<string>("key", NpgsqlDbType.Text) { TypedValue = write.Operation.Key });
        parameters.Add(new NpgsqlParameter<string>("prefix", NpgsqlDbType.Text) { TypedValue = write.Prefix });
        parameters.Add(new NpgsqlParameter<bool>("isset", NpgsqlDbType.Boolean) { TypedValue = set is not null });
        parameters.Add(new NpgsqlParameter("value", NpgsqlDbType.Bytea) { Value = set is null ? DBNull.Value : set.Value });
        parameters.Add(new NpgsqlParameter("ttlms", NpgsqlDbType.Bigint) { Value = set is null ? DBNull.Value : TtlMilliseconds(set) });
        parameters.Add(new NpgsqlParameter("contenttype", NpgsqlDbType.Text) { Value = (object?)set?.ContentType ?? DBNull.Value });
        parameters.Add(new NpgsqlParameter<long>("cost", NpgsqlDbType.Bigint) { TypedValue = write.Stored.Bytes });
        parameters.Add(new NpgsqlParameter<int>("condition", NpgsqlDbType.Integer) { TypedValue = (int)write.Condition.Kind });
        parameters.Add(new NpgsqlParameter<long>("version", NpgsqlDbType.Bigint) { TypedValue = write.Condition.Version });
        parameters.Add(new NpgsqlParameter<long>("maxkeys", NpgsqlDbType.Bigint) { TypedValue = limit?.MaxKeys ?? long.MaxValue });
        parameters.Add(new NpgsqlParameter<long>("maxbytes", NpgsqlDbType.Bigint) { TypedValue = limit?.MaxBytes ?? long.MaxValue });
    }

    /// <summary>The row <see cref="PostgreSqlStateSql.Write"/> returns.</summary>
    private readonly record struct WriteResult(bool Matches, bool Unseeded, bool Refused, StateUsage Before, StateUsage Change, long? ETag)
    {
        public static WriteResult Read(NpgsqlDataReader reader) => new(
            reader.GetBoolean(0),
            reader.GetBoolean(1),
            reader.GetBoolean(2),
            reader.IsDBNull(3) ? default : new StateUsage(reader.GetInt64(3), reader.GetInt64(4)),
            new StateUsage(reader.GetInt64(5), reader.GetInt64(6)),
            reader.IsDBNull(7) ? null : reader.GetInt64(7));

        public string Version => ETag is { } etag ? etag.ToString(CultureInfo.InvariantCulture) : "";

        /// <summary>Throws on an etag mismatch; says to run the write again when the prefix needs seeding or the key was created meanwhile.</summary>
        public WriteOutcome? Again(PlannedWrite write)
        {
            if (!Matches)
            {
                throw new StateETagMismatchException(write.Operation.Key);
            }
            if (Unseeded)
            {
                return WriteOutcome.Again([write.Prefix]);
            }
            return !Refused && write.Operation.Set is not null && ETag is null ? WriteOutcome.Again(null) : null;
        }
    }

    /// <summary>
    /// Seeds the usage of <paramref name="prefix"/> when it has none, by one count of its rows. A writer that finds it
    /// unseeded comes here and waits for a concurrent seeder to commit; its write, run again after, is added to the count.
    /// </summary>
    private async Task<int> SeedAsync(NpgsqlConnection connection, string prefix, CancellationToken cancellationToken)
    {
        await using var seed = new NpgsqlCommand(_sql.SeedUsage, connection);
        seed.Parameters.AddWithValue("prefix", prefix);
        var rows = await seed.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        if (rows > 0)
        {
            BackendsLog.StateUsageSeeded(logger, "postgresql", prefix);
        }
        return rows;
    }

    /// <summary>The usage kept for <paramref name="prefix"/> (O(1)); seeded by one count the first time it is missing.</summary>
    public ValueTask<StateUsage> GetUsageAsync(string prefix, CancellationToken cancellationToken) =>
        new(RunAsync("usage", async connection =>
        {
            for (var attempt = 0; ; attempt++)
            {
                await using (var command = new NpgsqlCommand(_sql.Usage, connection))
                {
                    command.Parameters.AddWithValue("prefix", prefix);
                    await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
                    if (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                    {
                        return new StateUsage(reader.GetInt64(0), reader.GetInt64(1));
                    }
                }
                if (attempt > 0)
                {
                    throw new ComponentException($"postgresql usage of prefix {prefix} is missing after seeding it");
                }
                await SeedAsync(connection, prefix, cancellationToken).ConfigureAwait(false);
            }
        }));

    private async Task SweepAsync()
    {
        try
        {
            var removed = await RunAsync("cleanup", async connection =>
            {
                // Expired rows count until deleted: one statement deletes them and subtracts them from their prefixes,
                // locking the rows first and the usage rows last, in the order writers lock them.
                await using var command = new NpgsqlCommand(_sql.DeleteExpiredCounted, connection);
                return (int)(await command.ExecuteScalarAsync().ConfigureAwait(false))!;
            }).ConfigureAwait(false);
            if (removed > 0)
            {
                BackendsLog.PostgreSqlExpiredRemoved(logger, options.Table, removed);
            }
        }
        catch (Exception ex) when (ex is ComponentException or ObjectDisposedException)
        {
            BackendsLog.PostgreSqlSweepFailed(logger, options.Table, ex);
        }
    }

    /// <summary>
    /// Runs work on a pooled connection. Database failures (not etag outcomes) become a <see cref="ComponentException"/>,
    /// or a <see cref="StateRequestRejectedException"/> when the server refused what the request carries.
    /// </summary>
    private async Task<T> RunAsync<T>(string operation, Func<NpgsqlConnection, Task<T>> work)
    {
        try
        {
            await using var connection = await Source.OpenConnectionAsync().ConfigureAwait(false);
            return await work(connection).ConfigureAwait(false);
        }
        catch (PostgresException ex) when (IsRequestFault(ex.SqlState))
        {
            throw new StateRequestRejectedException($"postgresql refused the {operation}: {ex.MessageText}", ex);
        }
        catch (EncoderFallbackException ex)
        {
            // Text the client cannot encode as UTF-8 (a lone surrogate) never reached the server.
            throw new StateRequestRejectedException($"postgresql {operation}: the request holds text that is not valid Unicode", ex);
        }
        catch (Exception ex) when (ex is NpgsqlException or TimeoutException)
        {
            throw new ComponentException($"postgresql {operation} failed: {ex.Message}", ex);
        }
    }

    /// <summary>
    /// SQLSTATE classes that blame the data sent, not the server: 22 data exception (U+0000 or an invalid byte sequence
    /// in text, 22021/22P05; a string too long, 22001), 23 integrity constraint violation, 54 program limit exceeded
    /// (a key too large for the index). Connection, resource and server faults (08, 53, 57, 58, XX) stay the backend's.
    /// </summary>
    internal static bool IsRequestFault(string sqlState) =>
        sqlState.StartsWith("22", StringComparison.Ordinal) || sqlState.StartsWith("23", StringComparison.Ordinal) || sqlState.StartsWith("54", StringComparison.Ordinal);

    public async ValueTask DisposeAsync()
    {
        if (_sweeper is not null)
        {
            await _sweeper.DisposeAsync().ConfigureAwait(false);
        }
        if (_source is not null)
        {
            await _source.DisposeAsync().ConfigureAwait(false);
        }
    }
}
