namespace SharedRuntime.Components.State;

/// <summary>
/// Lua scripts of <see cref="RedisStateStore"/>. Each key is a hash <c>{data, version, contenttype}</c> as in Dapr's
/// Redis store; the etag is <c>version</c>. Scripts run atomically on the server, so checks and writes see one state.
/// </summary>
internal static class RedisScripts
{
    /// <summary>Arguments per operation of <see cref="Write"/>.</summary>
    public const int ArgsPerOperation = 5;

    /// <summary>Arguments of <see cref="Write"/> before the first operation's.</summary>
    public const int HeaderArgs = 3;

    /// <summary>
    /// Usage bookkeeping, kept in the same database as the data. None of these key names contains <c>||</c>, so none can
    /// ever be a state key (every state key is <c>prefix||key</c>). <see cref="UsageKeys"/> and <see cref="UsageBytes"/>
    /// are hashes with one field per prefix; a prefix without a field there has not been seeded yet.
    /// <see cref="Expiring"/> is a sorted set of the state keys that have a TTL, scored by their expiry in ms of the
    /// server's clock, and <see cref="ExpiringCost"/> the bytes each of them counts, so that a key Redis expires and
    /// deletes by itself can still be subtracted from its prefix's usage afterwards.
    /// </summary>
    public const string UsageKeys = "sharedruntime:usage:keys";

    public const string UsageBytes = "sharedruntime:usage:bytes";

    public const string Expiring = "sharedruntime:usage:expiring";

    public const string ExpiringCost = "sharedruntime:usage:expiring-cost";

    /// <summary>Most TTL keys found expired that one write subtracts from usage on the way (lazily, O(1) per write).</summary>
    public const int ReclaimPerWrite = 32;

    private const string Common = $$"""
        local UK, UB, EXP, COST = '{{UsageKeys}}', '{{UsageBytes}}', '{{Expiring}}', '{{ExpiringCost}}'
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        local function prefixOf(k)
          local at = string.find(k, '||', 1, true)
          if at then return string.sub(k, 1, at - 1) end
          return ''
        end
        local function cost(k)
          return #k + redis.call('HSTRLEN', k, 'data') + redis.call('HSTRLEN', k, 'contenttype')
        end
        -- A TTL key that Redis has expired and deleted: subtract what it counted, once.
        local function reconcile(k)
          local pttl = redis.call('PTTL', k)
          if pttl == -2 then
            local c = redis.call('HGET', COST, k)
            if c then
              local p = prefixOf(k)
              redis.call('HINCRBY', UK, p, -1)
              redis.call('HINCRBY', UB, p, -tonumber(c))
              redis.call('HDEL', COST, k)
            end
            redis.call('ZREM', EXP, k)
          elseif pttl == -1 then
            redis.call('ZREM', EXP, k)
            redis.call('HDEL', COST, k)
          else
            redis.call('ZADD', EXP, now + pttl, k)
          end
        end
        """;

    /// <summary>
    /// Applies operations all or none, keeping each prefix's usage in <see cref="UsageKeys"/>/<see cref="UsageBytes"/>.
    /// ARGV[1..3] are the allowance: the prefix, its most keys and most bytes (<c>""</c>: no limit). KEYS[i] is the key of
    /// operation i; its ARGV (from 4) are kind (<c>s</c> set, <c>d</c> delete), check (<c>""</c> none, <c>"n"</c> must
    /// not exist, else the version it must have), value, ttl in ms (<c>""</c> none) and content type. Returns
    /// <c>{1, version1, ...}</c> (0 for a delete); <c>{-1, i}</c> when operation i's check fails; <c>{-2, what, needed,
    /// used, allowed}</c> when the allowance would be passed (what: <c>keys</c> or <c>bytes</c>); <c>{-3, prefix}</c> when
    /// a prefix touched has not been seeded. Nothing is written in the last three cases (beyond subtracting keys found
    /// expired). Each check sees the state that the earlier operations leave.
    /// </summary>
    public const string Write = Common + "\n" + """
        for i = 1, #KEYS do
          local p = prefixOf(KEYS[i])
          if redis.call('HEXISTS', UK, p) == 0 then return {-3, p} end
        end
        local due = redis.call('ZRANGEBYSCORE', EXP, '-inf', now, 'LIMIT', 0, 32)
        for _, k in ipairs(due) do reconcile(k) end
        local final = {}
        for i = 1, #KEYS do
          if redis.call('HEXISTS', COST, KEYS[i]) == 1 then reconcile(KEYS[i]) end
          final[KEYS[i]] = i
        end
        local pending = {}
        for i = 1, #KEYS do
          local b = 3 + (i - 1) * 5
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
        local dk, db, newcost = {}, {}, {}
        for key, i in pairs(final) do
          local b = 3 + (i - 1) * 5
          local p = prefixOf(key)
          local k, c = 0, 0
          if redis.call('EXISTS', key) == 1 then k, c = -1, -cost(key) end
          if ARGV[b + 1] == 's' then
            newcost[key] = #key + #ARGV[b + 3] + #ARGV[b + 5]
            k, c = k + 1, c + newcost[key]
          end
          dk[p] = (dk[p] or 0) + k
          db[p] = (db[p] or 0) + c
        end
        local limited = ARGV[1]
        if ARGV[2] ~= '' and (dk[limited] or 0) > 0 then
          local used = tonumber(redis.call('HGET', UK, limited) or '0')
          if used + dk[limited] > tonumber(ARGV[2]) then return {-2, 'keys', dk[limited], used, ARGV[2]} end
        end
        if ARGV[3] ~= '' and (db[limited] or 0) > 0 then
          local used = tonumber(redis.call('HGET', UB, limited) or '0')
          if used + db[limited] > tonumber(ARGV[3]) then return {-2, 'bytes', db[limited], used, ARGV[3]} end
        end
        local result = {1}
        for i = 1, #KEYS do
          local b = 3 + (i - 1) * 5
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
        for key, i in pairs(final) do
          local b = 3 + (i - 1) * 5
          if ARGV[b + 1] == 's' and ARGV[b + 4] ~= '' then
            redis.call('ZADD', EXP, now + tonumber(ARGV[b + 4]), key)
            redis.call('HSET', COST, key, newcost[key])
          else
            redis.call('ZREM', EXP, key)
            redis.call('HDEL', COST, key)
          end
        end
        for p, k in pairs(dk) do
          if k ~= 0 then redis.call('HINCRBY', UK, p, k) end
          if db[p] ~= 0 then redis.call('HINCRBY', UB, p, db[p]) end
        end
        return result
        """;

    /// <summary>
    /// Seeds the usage of prefix ARGV[1] once, if it has none yet: one SCAN (MATCH ARGV[2]) of the database inside the
    /// script, counting every state hash as <c>StateUsage.Of</c> counts it and noting the ones with a TTL in
    /// <see cref="Expiring"/>. It runs atomically, so no write made meanwhile is missed or counted twice. Returns 1 when
    /// it seeded, 0 when the prefix already had usage.
    /// </summary>
    public const string Seed = Common + "\n" + """
        local p = ARGV[1]
        if redis.call('HEXISTS', UK, p) == 1 then return 0 end
        local keys, bytes, cursor = 0, 0, '0'
        repeat
          local r = redis.call('SCAN', cursor, 'MATCH', ARGV[2], 'COUNT', 1000)
          cursor = r[1]
          for _, k in ipairs(r[2]) do
            if redis.call('TYPE', k).ok == 'hash' then
              local c = cost(k)
              keys, bytes = keys + 1, bytes + c
              local pttl = redis.call('PTTL', k)
              if pttl > 0 then
                redis.call('ZADD', EXP, now + pttl, k)
                redis.call('HSET', COST, k, c)
              end
            end
          end
        until cursor == '0'
        redis.call('HSET', UK, p, keys)
        redis.call('HSET', UB, p, bytes)
        return 1
        """;

    /// <summary>
    /// Returns <c>{keys, bytes}</c> kept for prefix ARGV[1] after subtracting TTL keys found expired, or nil when the
    /// prefix has not been seeded.
    /// </summary>
    public const string Usage = Common + "\n" + """
        local p = ARGV[1]
        if redis.call('HEXISTS', UK, p) == 0 then return nil end
        local due = redis.call('ZRANGEBYSCORE', EXP, '-inf', now, 'LIMIT', 0, 32)
        for _, k in ipairs(due) do reconcile(k) end
        return {tonumber(redis.call('HGET', UK, p)), tonumber(redis.call('HGET', UB, p))}
        """;

    /// <summary>Returns <c>{data, version, contenttype, pttl}</c>, or nil when the key does not exist.</summary>
    public const string Read = """
        local r = redis.call('HMGET', KEYS[1], 'data', 'version', 'contenttype')
        if not r[2] then return nil end
        return {r[1] or '', r[2], r[3] or '', redis.call('PTTL', KEYS[1])}
        """;
}
