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
/// </summary>
internal sealed class RedisStateStore(RedisStateOptions options, TimeProvider time, ILogger<RedisStateStore> logger) : IStateStore
{
    private const int UsageBatch = 512;
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
        var versions = await WriteAsync([new StateOperation(request, null)], cancellationToken).ConfigureAwait(false);
        return versions[0];
    }

    public async ValueTask DeleteAsync(StateDeleteRequest request, CancellationToken cancellationToken) =>
        await WriteAsync([new StateOperation(null, request)], cancellationToken).ConfigureAwait(false);

    public async ValueTask TransactAsync(IReadOnlyList<StateOperation> operations, CancellationToken cancellationToken)
    {
        if (operations.Count > 0)
        {
            await WriteAsync(operations, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task<string[]> WriteAsync(IReadOnlyList<StateOperation> operations, CancellationToken cancellationToken)
    {
        var keys = new RedisKey[operations.Count];
        var args = new RedisValue[operations.Count * RedisScripts.ArgsPerOperation];
        for (var i = 0; i < operations.Count; i++)
        {
            var operation = operations[i];
            keys[i] = operation.Key;
            var at = i * RedisScripts.ArgsPerOperation;
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
        var result = (RedisResult[])(await RunAsync("write", db => db.ScriptEvaluateAsync(RedisScripts.Write, keys, args), cancellationToken).ConfigureAwait(false))!;
        if ((long)result[0] < 0)
        {
            throw new StateETagMismatchException(operations[(int)(long)result[1] - 1].Key);
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

    public async ValueTask<StateUsage> GetUsageAsync(string prefix, CancellationToken cancellationToken)
    {
        var connection = _connection ?? throw new ComponentException("redis state store is not initialised");
        var pattern = EscapeGlob(prefix) + StateKeys.Separator + "*";
        var total = default(StateUsage);
        try
        {
            foreach (var server in connection.GetServers())
            {
                if (server.IsReplica)
                {
                    continue;
                }
                var seen = new HashSet<string>(StringComparer.Ordinal);
                var batch = new List<RedisKey>(UsageBatch);
                await foreach (var key in server.KeysAsync(Database.Database, pattern, UsageBatch).WithCancellation(cancellationToken).ConfigureAwait(false))
                {
                    if (seen.Add(key!))
                    {
                        batch.Add(key);
                    }
                    if (batch.Count == UsageBatch)
                    {
                        total += await CountAsync(batch).ConfigureAwait(false);
                        batch.Clear();
                    }
                }
                total += await CountAsync(batch).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is RedisException or TimeoutException)
        {
            throw new ComponentException($"redis usage failed: {ex.Message}", ex);
        }
        return total;
    }

    private async Task<StateUsage> CountAsync(List<RedisKey> keys)
    {
        if (keys.Count == 0)
        {
            return default;
        }
        var result = (RedisResult[])(await Database.ScriptEvaluateAsync(RedisScripts.Usage, [.. keys]).ConfigureAwait(false))!;
        return new StateUsage((long)result[0], (long)result[1]);
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
