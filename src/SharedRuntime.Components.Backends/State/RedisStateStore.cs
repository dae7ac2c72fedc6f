using System.Globalization;
using System.Text;
using Microsoft.Extensions.Logging;
using StackExchange.Redis;

namespace SharedRuntime.Components.State;

/// <summary>
/// <c>state.redis</c>: each key is a Redis hash <c>{data, version}</c> like Dapr's Redis store, so both can read the
/// same data; the etag is the integer version. Writes and transactions run as one Lua script (all or nothing); TTL is
/// Redis's own expiry. While the server is unreachable every call fails at once with a <see cref="ComponentException"/>
/// and the connection is retried in the background. Needs a single Redis server (a transaction's keys share one node).
/// Each prefix's usage lives in the same database (<see cref="RedisScripts.UsageKeys"/> and its siblings), changed by
/// the write script itself, which also refuses a write past its <see cref="StateAllowance"/>: exact across nodes.
/// </summary>
internal sealed class RedisStateStore(RedisStateOptions options, TimeProvider time, ILogger<RedisStateStore> logger) : IStateStore
{
    private ConnectionMultiplexer? _connection;

    public IReadOnlyList<string> Capabilities { get; } = ["ETAG", "TRANSACTIONAL", "TTL"];

    private IDatabase Database => (_connection ?? throw new ComponentException("redis state store is not initialised")).GetDatabase();

    public async ValueTask InitAsync(CancellationToken cancellationToken)
    {
        _connection = await RedisConnection.OpenAsync(options.Configuration, options.Endpoint, logger, cancellationToken).ConfigureAwait(false);
    }

    public async ValueTask<StateEntry?> GetAsync(string key, CancellationToken cancellationToken)
    {
        var result = await RunAsync("get", db => db.ScriptEvaluateAsync(RedisScripts.Read, [key]), cancellationToken).ConfigureAwait(false);
        if (result.IsNull)
        {
            return null;
        }
        var fields = (RedisResult[])result!;
        var ttl = (long)fields[3];
        DateTimeOffset? expires = ttl > 0 ? time.GetUtcNow().AddMilliseconds(ttl) : null;
        var contentType = (string?)fields[2];
        return new StateEntry(key, (byte[])fields[0]!, (string)fields[1]!, expires, string.IsNullOrEmpty(contentType) ? null : contentType);
    }

    public async ValueTask<string> SetAsync(StateSetRequest request, CancellationToken cancellationToken)
    {
        var versions = await WriteAsync([new StateOperation(request, null)], null, cancellationToken).ConfigureAwait(false);
        return versions[0];
    }

    public async ValueTask DeleteAsync(StateDeleteRequest request, CancellationToken cancellationToken) =>
        await WriteAsync([new StateOperation(null, request)], null, cancellationToken).ConfigureAwait(false);

    public ValueTask TransactAsync(IReadOnlyList<StateOperation> operations, CancellationToken cancellationToken) =>
        TransactAsync(operations, StateAllowance.Unlimited(""), cancellationToken);

    public async ValueTask TransactAsync(IReadOnlyList<StateOperation> operations, StateAllowance allowance, CancellationToken cancellationToken)
    {
        if (operations.Count > 0)
        {
            await WriteAsync(operations, allowance, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Runs <see cref="RedisScripts.Write"/>. When it finds a prefix without usage (data written before usage was kept),
    /// seeds that prefix once (<see cref="RedisScripts.Seed"/>) and runs the write again.
    /// </summary>
    private async Task<string[]> WriteAsync(IReadOnlyList<StateOperation> operations, StateAllowance? allowance, CancellationToken cancellationToken)
    {
        var keys = new RedisKey[operations.Count];
        var args = new RedisValue[RedisScripts.HeaderArgs + (operations.Count * RedisScripts.ArgsPerOperation)];
        var limited = allowance is { IsUnlimited: false } a ? a : (StateAllowance?)null;
        args[0] = limited?.Prefix ?? "";
        args[1] = limited is { MaxKeys: var maxKeys } && maxKeys != long.MaxValue ? maxKeys : "";
        args[2] = limited is { MaxBytes: var maxBytes } && maxBytes != long.MaxValue ? maxBytes : "";
        for (var i = 0; i < operations.Count; i++)
        {
            var operation = operations[i];
            keys[i] = operation.Key;
            var at = RedisScripts.HeaderArgs + (i * RedisScripts.ArgsPerOperation);
            if (operation.Set is { } set)
            {
                args[at] = "s";
                args[at + 1] = Check(ETagCondition.For(set));
                args[at + 2] = set.Value;
                args[at + 3] = set.Ttl is { } ttl ? Math.Max(1, (long)ttl.TotalMilliseconds) : "";
                args[at + 4] = set.ContentType ?? "";
            }
            else
            {
                var delete = operation.Delete!;
                args[at] = "d";
                args[at + 1] = Check(ETagCondition.For(delete));
                args[at + 2] = args[at + 3] = args[at + 4] = "";
            }
        }
        RedisResult[] result;
        var seeded = 0;
        while (true)
        {
            result = (RedisResult[])(await RunAsync("write", db => db.ScriptEvaluateAsync(RedisScripts.Write, keys, args), cancellationToken).ConfigureAwait(false))!;
            if ((long)result[0] != -3 || seeded++ >= operations.Count)
            {
                break;
            }
            await SeedAsync((string)result[1]!, cancellationToken).ConfigureAwait(false);
        }
        switch ((long)result[0])
        {
            case -1:
                throw new StateETagMismatchException(operations[(int)(long)result[1] - 1].Key);
            case -2:
                throw (string)result[1]! == "keys"
                    ? StateQuotaExceededException.Keys((long)result[2], (long)result[3], (long)result[4])
                    : StateQuotaExceededException.Bytes((long)result[2], (long)result[3], (long)result[4]);
            case < 0:
                throw new ComponentException($"redis write found prefix {(string?)result[1]} without usage after seeding it");
        }
        var versions = new string[operations.Count];
        for (var i = 0; i < versions.Length; i++)
        {
            versions[i] = ((long)result[i + 1]).ToString(CultureInfo.InvariantCulture);
        }
        return versions;
    }

    /// <summary>The script's check argument: <c>""</c> none, <c>"n"</c> must not exist, else the version.</summary>
    private static string Check(ETagCondition condition) => condition.Kind switch
    {
        ETagConditionKind.MustNotExist => "n",
        ETagConditionKind.MustHaveVersion => condition.Version.ToString(CultureInfo.InvariantCulture),
        _ => "",
    };

    /// <summary>The usage kept for <paramref name="prefix"/>: O(1), after seeding it once if it has none yet.</summary>
    public async ValueTask<StateUsage> GetUsageAsync(string prefix, CancellationToken cancellationToken)
    {
        for (var attempt = 0; ; attempt++)
        {
            var result = await RunAsync("usage", db => db.ScriptEvaluateAsync(RedisScripts.Usage, values: [prefix]), cancellationToken).ConfigureAwait(false);
            if (!result.IsNull)
            {
                var figures = (RedisResult[])result!;
                return new StateUsage((long)figures[0], (long)figures[1]);
            }
            if (attempt > 0)
            {
                throw new ComponentException($"redis usage of prefix {prefix} is missing after seeding it");
            }
            await SeedAsync(prefix, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Counts <paramref name="prefix"/>'s keys once, in one script (one SCAN of the database, atomic with every write), so
    /// usage written before this store kept it is known from then on. Only the first touch of such a prefix pays it.
    /// </summary>
    private async Task SeedAsync(string prefix, CancellationToken cancellationToken)
    {
        var seeded = await RunAsync("usage seeding", db => db.ScriptEvaluateAsync(RedisScripts.Seed, values: [prefix, EscapeGlob(prefix) + StateKeys.Separator + "*"]), cancellationToken).ConfigureAwait(false);
        if ((long)seeded == 1)
        {
            BackendsLog.StateUsageSeeded(logger, "redis", prefix);
        }
    }

    /// <summary>Escapes the characters that SCAN MATCH treats as a pattern, so a prefix only matches itself.</summary>
    internal static string EscapeGlob(string text)
    {
        var builder = new StringBuilder(text.Length + 4);
        foreach (var c in text)
        {
            if (c is '*' or '?' or '[' or ']' or '\\' or '^' or '-')
            {
                builder.Append('\\');
            }
            builder.Append(c);
        }
        return builder.ToString();
    }

    /// <summary>
    /// Runs one command. Redis failures (server gone, timeout, a server fault) become a <see cref="ComponentException"/>;
    /// an error reply that blames the request (<see cref="IsRequestFault"/>) becomes a <see cref="StateRequestRejectedException"/>.
    /// </summary>
    private async Task<RedisResult> RunAsync(string operation, Func<IDatabase, Task<RedisResult>> command, CancellationToken cancellationToken)
    {
        try
        {
            return await command(Database).WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (RedisServerException ex) when (IsRequestFault(ex.Message))
        {
            throw new StateRequestRejectedException($"redis refused the {operation}: {ex.Message}", ex);
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            throw new ComponentException($"redis {operation} failed: {ex.Message}", ex);
        }
    }

    /// <summary>
    /// Error replies about the key or the data the request names: a key that holds another type (WRONGTYPE, such as a
    /// list or stream where a state hash should be), a hash whose version is not a number, a value or expiry Redis
    /// cannot take. Replies about the server itself (OOM, BUSY, LOADING, READONLY, MASTERDOWN, ...) are not among them.
    /// </summary>
    internal static bool IsRequestFault(string message) =>
        message.Contains("WRONGTYPE", StringComparison.Ordinal)
        || message.Contains("not an integer", StringComparison.Ordinal)
        || message.Contains("invalid expire time", StringComparison.Ordinal)
        || message.Contains("exceeds maximum allowed size", StringComparison.Ordinal);

    public async ValueTask DisposeAsync()
    {
        if (_connection is not null)
        {
            await _connection.DisposeAsync().ConfigureAwait(false);
        }
    }
}
