using System.Globalization;
using Microsoft.Extensions.Logging;
using SharedRuntime.Components.State;
using StackExchange.Redis;

namespace SharedRuntime.Components.Lock;

/// <summary>
/// <c>lock.redis</c>, with the data layout of Dapr's Redis lock: a lock on resource <c>r</c> of app <c>a</c> is the string
/// key <c>lock||a||r</c> holding the owner, with Redis's own expiry, so Dapr sidecars and SharedRuntime runtimes on the
/// same Redis exclude each other. TryLock sets the key only when absent; Unlock deletes it only for its owner (a script:
/// <see cref="UnlockStatus.LockDoesNotExist"/> when absent or expired, <see cref="UnlockStatus.LockBelongsToOthers"/>
/// for another owner). Each app holds at most <c>maxLocksPerApp</c> live locks (default
/// <see cref="DefaultMaxLocksPerApp"/>), counted in the sorted set <c>sharedruntime:locks:a</c> (lock
/// keys scored by their expiry on the server's clock) by the same script that takes the lock, so the bound holds across
/// every runtime using the store. Needs one Redis server without replicas (as Dapr's: a failover could lose a lock).
/// </summary>
internal sealed class RedisLockStore(RedisStateOptions options, int maxLocksPerApp, ILogger<RedisLockStore> logger) : ILockStore
{
    public const int DefaultMaxLocksPerApp = 1000;

    /// <summary>The prefix Dapr puts before every lock key.</summary>
    public const string KeyPrefix = "lock||";

    /// <summary>The sorted set of one app's live locks; no such name contains <c>||</c>, so none is a lock or state key.</summary>
    public const string AppLocksPrefix = "sharedruntime:locks:";

    // KEYS: lock key, app's set. ARGV: owner, expiry ms, bound. {1} taken, {0} held, {-1, ms until the app's first lock expires} at the bound.
    private const string TryLockScript = """
        if redis.call('EXISTS', KEYS[1]) == 1 then return {0} end
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        local expiry = tonumber(ARGV[2])
        redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
        if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[3]) then
          local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
          return {-1, tonumber(first[2]) - now}
        end
        redis.call('SET', KEYS[1], ARGV[1], 'PX', expiry)
        redis.call('ZADD', KEYS[2], now + expiry, KEYS[1])
        if redis.call('PTTL', KEYS[2]) < expiry then redis.call('PEXPIRE', KEYS[2], expiry) end
        return {1}
        """;

    // KEYS: lock key, app's set. ARGV: owner. Dapr's statuses: 1 deleted, -1 no such lock, -2 another owner's.
    private const string UnlockScript = """
        local v = redis.call('GET', KEYS[1])
        if v == false then return -1 end
        if v ~= ARGV[1] then return -2 end
        redis.call('DEL', KEYS[1])
        redis.call('ZREM', KEYS[2], KEYS[1])
        return 1
        """;

    private ConnectionMultiplexer? _connection;

    public IReadOnlyList<string> Capabilities { get; } = [];

    public int MaxLocksPerApp { get; } = maxLocksPerApp;

    public static RedisLockStore Create(ComponentContext context, ILogger<RedisLockStore> logger)
    {
        var text = context.GetMetadata("maxLocksPerApp");
        var max = DefaultMaxLocksPerApp;
        if (!string.IsNullOrEmpty(text) && (!int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out max) || max <= 0))
        {
            throw new ComponentException($"metadata 'maxLocksPerApp' must be a positive whole number, not '{text}'");
        }
        return new RedisLockStore(RedisStateOptions.From(context), max, logger);
    }

    private IDatabase Database => (_connection ?? throw new ComponentException("redis lock store is not initialised")).GetDatabase();

    public async ValueTask InitAsync(CancellationToken cancellationToken)
    {
        var configuration = options.Configuration.Clone();
        configuration.AllowAdmin = true; // INFO replication, checked once here
        _connection = await RedisConnection.OpenAsync(configuration, options.Endpoint, logger, cancellationToken).ConfigureAwait(false);
        var replication = await _connection.GetServers()[0].InfoRawAsync("replication").WaitAsync(cancellationToken).ConfigureAwait(false) ?? "";
        foreach (var line in replication.Split('\n', StringSplitOptions.TrimEntries))
        {
            if (line.StartsWith("connected_slaves:", StringComparison.Ordinal) && line != "connected_slaves:0")
            {
                await _connection.DisposeAsync().ConfigureAwait(false);
                _connection = null;
                throw new ComponentException($"redis at {options.Endpoint} has replicas; lock.redis needs a server without replicas (replication is not supported)");
            }
        }
    }

    public async ValueTask<bool> TryLockAsync(string resourceId, string owner, TimeSpan expiry, CancellationToken cancellationToken)
    {
        var app = StateKeys.PrefixOf(resourceId).ToString();
        var result = (RedisResult[])(await RunAsync("try lock", db => db.ScriptEvaluateAsync(TryLockScript,
            [KeyPrefix + resourceId, AppLocksPrefix + app],
            [owner, Math.Max(1, (long)expiry.TotalMilliseconds), MaxLocksPerApp]), cancellationToken).ConfigureAwait(false))!;
        return (long)result[0] switch
        {
            1 => true,
            0 => false,
            _ => throw new LockLimitExceededException(app, MaxLocksPerApp, TimeSpan.FromMilliseconds(Math.Max(0, (long)result[1]))),
        };
    }

    public async ValueTask<UnlockStatus> UnlockAsync(string resourceId, string owner, CancellationToken cancellationToken)
    {
        var app = StateKeys.PrefixOf(resourceId).ToString();
        var result = (long)await RunAsync("unlock", db => db.ScriptEvaluateAsync(UnlockScript, [KeyPrefix + resourceId, AppLocksPrefix + app], [owner]), cancellationToken).ConfigureAwait(false);
        return result switch
        {
            >= 0 => UnlockStatus.Success,
            -1 => UnlockStatus.LockDoesNotExist,
            -2 => UnlockStatus.LockBelongsToOthers,
            _ => UnlockStatus.InternalError,
        };
    }

    /// <summary>The app's live locks as the store counts them (for tests).</summary>
    internal async Task<long> HeldByAsync(string app) =>
        (long)await Database.ScriptEvaluateAsync("""
            local t = redis.call('TIME')
            return redis.call('ZCOUNT', KEYS[1], '(' .. (tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)), '+inf')
            """, [AppLocksPrefix + app]).ConfigureAwait(false);

    private async Task<RedisResult> RunAsync(string operation, Func<IDatabase, Task<RedisResult>> command, CancellationToken cancellationToken)
    {
        try
        {
            return await command(Database).WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (RedisServerException ex) when (RedisStateStore.IsRequestFault(ex.Message))
        {
            throw new ComponentRequestRejectedException($"redis refused the {operation}: {ex.Message}", ex);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            throw new ComponentException($"redis {operation} failed: {ex.Message}", ex);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_connection is not null)
        {
            await _connection.DisposeAsync().ConfigureAwait(false);
        }
    }
}
