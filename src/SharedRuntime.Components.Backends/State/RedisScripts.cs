namespace SharedRuntime.Components.State;

/// <summary>
/// Lua scripts of <see cref="RedisStateStore"/>. Each key is a hash <c>{data, version, contenttype}</c> as in Dapr's
/// Redis store; the etag is <c>version</c>. Scripts run atomically on the server, so checks and writes see one state.
/// </summary>
internal static class RedisScripts
{
    /// <summary>Arguments per operation of <see cref="Write"/>.</summary>
    public const int ArgsPerOperation = 5;

    /// <summary>
    /// Applies operations all or none. KEYS[i] is the key of operation i; its ARGV are kind (<c>s</c> set, <c>d</c> delete),
    /// check (<c>""</c> none, <c>"n"</c> must not exist, else the version it must have), value, ttl in ms (<c>""</c> none)
    /// and content type. Returns <c>{1, version1, ...}</c> (0 for a delete), or <c>{-1, i}</c> when operation i's check fails
    /// and nothing was written. Each check sees the state that the earlier operations leave.
    /// </summary>
    public const string Write = """
        local pending = {}
        for i = 1, #KEYS do
          local b = (i - 1) * 5
          local current = pending[KEYS[i]]
          if current == nil then
            current = redis.call('HGET', KEYS[i], 'version')
          end
          local check = ARGV[b + 2]
          if check == 'n' then
            if current then return {-1, i} end
          elseif check ~= '' then
            if current ~= check then return {-1, i} end
          end
          pending[KEYS[i]] = ARGV[b + 1] == 's' and 'pending' or false
        end
        local result = {1}
        for i = 1, #KEYS do
          local b = (i - 1) * 5
          local key = KEYS[i]
          if ARGV[b + 1] == 's' then
            local version = redis.call('HINCRBY', key, 'version', 1)
            redis.call('HSET', key, 'data', ARGV[b + 3])
            if ARGV[b + 5] ~= '' then redis.call('HSET', key, 'contenttype', ARGV[b + 5]) else redis.call('HDEL', key, 'contenttype') end
            if ARGV[b + 4] ~= '' then redis.call('PEXPIRE', key, ARGV[b + 4]) else redis.call('PERSIST', key) end
            result[i + 1] = version
          else
            redis.call('DEL', key)
            result[i + 1] = 0
          end
        end
        return result
        """;

    /// <summary>Returns <c>{data, version, contenttype, pttl}</c>, or nil when the key does not exist.</summary>
    public const string Read = """
        local r = redis.call('HMGET', KEYS[1], 'data', 'version', 'contenttype')
        if not r[2] then return nil end
        return {r[1] or '', r[2], r[3] or '', redis.call('PTTL', KEYS[1])}
        """;

    /// <summary>
    /// Returns <c>{keys, bytes}</c> for the state hashes among KEYS (other key types are not ours and not counted), each
    /// counted as <c>StateUsage.Of</c> counts it: the bytes of key, data and content type.
    /// </summary>
    public const string Usage = """
        local keys, bytes = 0, 0
        for i = 1, #KEYS do
          if redis.call('TYPE', KEYS[i]).ok == 'hash' then
            keys = keys + 1
            bytes = bytes + #KEYS[i] + redis.call('HSTRLEN', KEYS[i], 'data') + redis.call('HSTRLEN', KEYS[i], 'contenttype')
          end
        end
        return {keys, bytes}
        """;
}
