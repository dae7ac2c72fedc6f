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
/// Transactions run in one database transaction. Each prefix's usage is a row of <c>&lt;table&gt;_usage</c> (prefix, keys,
/// bytes), changed in the same transaction as the data, which a write past its <see cref="StateAllowance"/> rolls back.
/// </summary>
internal sealed class PostgreSqlStateStore(PostgreSqlStateOptions options, TimeProvider time, ILogger<PostgreSqlStateStore> logger) : IStateStore
{
    private readonly PostgreSqlStateSql _sql = new(options.Table, options.BareTable);
    private NpgsqlDataSource? _source;
    private ITimer? _sweeper;

    public IReadOnlyList<string> Capabilities { get; } = ["ETAG", "TRANSACTIONAL", "TTL"];

    private NpgsqlDataSource Source => _source ?? throw new ComponentException("postgresql state store is not initialised");

    public async ValueTask InitAsync(CancellationToken cancellationToken)
    {
        _source = NpgsqlDataSource.Create(options.ConnectionString);
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

    public ValueTask<StateEntry?> GetAsync(string key, CancellationToken cancellationToken) =>
        new(RunAsync("get", async connection =>
        {
            await using var command = new NpgsqlCommand(_sql.Get, connection);
            command.Parameters.AddWithValue("key", key);
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
    /// Applies <paramref name="operations"/> in one database transaction together with the usage of the prefixes they
    /// touch: seeds a prefix without usage (one count), reads and locks the rows the keys hold now, writes, then adds the
    /// change to the usage rows and checks <paramref name="allowance"/> against the result. An etag mismatch or a refused
    /// allowance rolls everything back. A key that another transaction created after it was read as absent makes the
    /// change unknown: the transaction is rolled back and run again.
    /// </summary>
    private async Task<string[]> WriteAsync(string operation, IReadOnlyList<StateOperation> operations, StateAllowance? allowance, CancellationToken cancellationToken)
    {
        // Invalid etags are refused before anything reaches the database.
        var conditions = operations.Select(o => o.Set is { } set ? ETagCondition.For(set) : ETagCondition.For(o.Delete!)).ToArray();
        var final = new Dictionary<string, StateSetRequest?>(StringComparer.Ordinal);
        foreach (var o in operations)
        {
            final[o.Key] = o.Set;
        }
        var prefixes = final.Keys.Select(k => StateKeys.PrefixOf(k).ToString()).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray();
        for (var attempt = 1; ; attempt++)
        {
            var versions = await RunAsync(operation, connection => TryWriteAsync(connection, operations, conditions, final, prefixes, allowance, cancellationToken)).ConfigureAwait(false);
            if (versions is not null)
            {
                return versions;
            }
            if (attempt == 3)
            {
                throw new ComponentException($"postgresql {operation}: keys kept being created concurrently; try again");
            }
        }
    }

    private async Task<string[]?> TryWriteAsync(NpgsqlConnection connection, IReadOnlyList<StateOperation> operations, ETagCondition[] conditions,
        Dictionary<string, StateSetRequest?> final, string[] prefixes, StateAllowance? allowance, CancellationToken cancellationToken)
    {
        await SeedAsync(connection, prefixes, cancellationToken).ConfigureAwait(false);
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
        var change = new Dictionary<string, StateUsage>(StringComparer.Ordinal);
        foreach (var (key, set) in final)
        {
            var prefix = StateKeys.PrefixOf(key).ToString();
            change[prefix] = change.GetValueOrDefault(prefix) + (set is null ? default : StateUsage.Of(set));
        }
        var existing = new HashSet<string>(StringComparer.Ordinal);
        await using (var costs = new NpgsqlCommand(_sql.Costs, connection, transaction))
        {
            costs.Parameters.AddWithValue("keys", final.Keys.ToArray());
            await using var reader = await costs.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                var key = reader.GetString(0);
                existing.Add(key);
                var prefix = StateKeys.PrefixOf(key).ToString();
                change[prefix] = change.GetValueOrDefault(prefix) - new StateUsage(1, reader.GetInt32(1));
            }
        }
        var versions = new string[operations.Count];
        for (var i = 0; i < operations.Count; i++)
        {
            if (operations[i].Set is { } set)
            {
                versions[i] = await ApplySetAsync(connection, transaction, set, conditions[i], cancellationToken).ConfigureAwait(false);
                if (versions[i] != "1" && !existing.Contains(set.Key) && !operations.Take(i).Any(o => o.Key == set.Key))
                {
                    // Created by another transaction after the read above: what it held is unknown here.
                    return null;
                }
            }
            else
            {
                await ApplyDeleteAsync(connection, transaction, operations[i].Delete!, conditions[i], cancellationToken).ConfigureAwait(false);
                versions[i] = "";
            }
        }
        foreach (var (prefix, delta) in change)
        {
            if (delta == default)
            {
                continue;
            }
            await using var add = new NpgsqlCommand(_sql.AddUsage, connection, transaction);
            add.Parameters.AddWithValue("prefix", prefix);
            add.Parameters.AddWithValue("keys", delta.Keys);
            add.Parameters.AddWithValue("bytes", delta.Bytes);
            await using var reader = await add.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            if (!await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                return null;
            }
            var after = new StateUsage(reader.GetInt64(0), reader.GetInt64(1));
            if (allowance is { } limit && string.Equals(limit.Prefix, prefix, StringComparison.Ordinal))
            {
                limit.Check(after - delta, delta);
            }
        }
        // A mismatch or a refusal above throws; disposing the transaction uncommitted rolls every operation back.
        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        return versions;
    }

    /// <summary>
    /// Seeds the usage of those of <paramref name="prefixes"/> that have none, each by one count of its rows. A writer
    /// that finds a prefix unseeded waits here for a concurrent seeder to commit before it writes, so a write is either
    /// in the count or added to it afterwards, never both.
    /// </summary>
    private async Task SeedAsync(NpgsqlConnection connection, string[] prefixes, CancellationToken cancellationToken)
    {
        if (prefixes.All(_seeded.ContainsKey))
        {
            return;
        }
        var seeded = new HashSet<string>(StringComparer.Ordinal);
        await using (var command = new NpgsqlCommand(_sql.SeededPrefixes, connection))
        {
            command.Parameters.AddWithValue("prefixes", prefixes);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
            while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
            {
                seeded.Add(reader.GetString(0));
            }
        }
        foreach (var prefix in prefixes.Where(p => !seeded.Contains(p)))
        {
            await using var seed = new NpgsqlCommand(_sql.SeedUsage, connection);
            seed.Parameters.AddWithValue("prefix", prefix);
            if (await seed.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) > 0)
            {
                BackendsLog.StateUsageSeeded(logger, "postgresql", prefix);
            }
        }
        foreach (var prefix in prefixes)
        {
            if (_seeded.Count < MaxSeededPrefixes)
            {
                _seeded.TryAdd(prefix, true);
            }
        }
    }

    /// <summary>Most prefixes remembered as seeded; beyond, a write asks the database once more (one more round trip).</summary>
    private const int MaxSeededPrefixes = 100_000;

    /// <summary>Prefixes known to have usage: a usage row is never deleted, so a write need not ask again.</summary>
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, bool> _seeded = new(StringComparer.Ordinal);

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
                await using var seed = new NpgsqlCommand(_sql.SeedUsage, connection);
                seed.Parameters.AddWithValue("prefix", prefix);
                if (await seed.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false) > 0)
                {
                    BackendsLog.StateUsageSeeded(logger, "postgresql", prefix);
                }
            }
        }));

    private async Task<string> ApplySetAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, StateSetRequest request, ETagCondition condition, CancellationToken cancellationToken)
    {
        var sql = condition.Kind switch
        {
            ETagConditionKind.MustNotExist => _sql.Insert,
            ETagConditionKind.MustHaveVersion => _sql.Update,
            _ => _sql.Upsert,
        };
        await using var command = new NpgsqlCommand(sql, connection, transaction);
        command.Parameters.AddWithValue("key", request.Key);
        command.Parameters.AddWithValue("value", request.Value.ToArray());
        command.Parameters.Add(new NpgsqlParameter("ttlms", NpgsqlDbType.Bigint) { Value = request.Ttl is { } ttl ? Math.Max(1, (long)ttl.TotalMilliseconds) : DBNull.Value });
        command.Parameters.Add(new NpgsqlParameter("contenttype", NpgsqlDbType.Text) { Value = (object?)request.ContentType ?? DBNull.Value });
        if (condition.Kind == ETagConditionKind.MustHaveVersion)
        {
            command.Parameters.AddWithValue("etag", condition.Version);
        }
        var etag = await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
        return etag is long version
            ? version.ToString(CultureInfo.InvariantCulture)
            : throw new StateETagMismatchException(request.Key);
    }

    private async Task<int> ApplyDeleteAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, StateDeleteRequest request, ETagCondition condition, CancellationToken cancellationToken)
    {
        var checks = condition.Kind == ETagConditionKind.MustHaveVersion;
        await using var command = new NpgsqlCommand(checks ? _sql.DeleteVersion : _sql.Delete, connection, transaction);
        command.Parameters.AddWithValue("key", request.Key);
        if (checks)
        {
            command.Parameters.AddWithValue("etag", condition.Version);
        }
        var rows = await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
        return checks && rows == 0 ? throw new StateETagMismatchException(request.Key) : rows;
    }

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
