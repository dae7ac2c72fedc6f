using System.Net;
using System.Text;
using System.Text.Json;
using SharedRuntime.BuildingBlocks;
using Xunit.Abstractions;

namespace SharedRuntime.FunctionalTests.Hostile;

/// <summary>
/// A tenant that tries to store more than its quota through what the quota used not to count (keys, content types),
/// and to hold locks without bound. Each attack is refused with the attacker's own 4xx while the bystander is served.
/// </summary>
[Collection(HostileTenantsCollection.Name)]
public sealed class StateHostileTests(ITestOutputHelper output)
{
    private const int MiB = 1024 * 1024;

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    /// <summary>A save of one key with value 1 and <paramref name="contentType"/> as its metadata.contentType.</summary>
    private static StringContent Save(string key, string contentType) =>
        Json(JsonSerializer.Serialize(new[] { new { key, value = 1, metadata = new Dictionary<string, string> { ["contentType"] = contentType } } }));

    /// <summary>The contract's answer over a state quota: 507 with a Dapr-style ERR_TENANT_QUOTA_EXCEEDED body.</summary>
    private static async Task AssertQuotaExceededAsync(HttpResponseMessage response)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True((int)response.StatusCode == 507, $"expected 507, got {(int)response.StatusCode}: {body}");
        using var json = JsonDocument.Parse(body);
        Assert.Equal("ERR_TENANT_QUOTA_EXCEEDED", json.RootElement.GetProperty("errorCode").GetString());
        Assert.False(string.IsNullOrEmpty(json.RootElement.GetProperty("message").GetString()));
    }

    private static string Attacker(string limits) => Resources.Tenant("attacker", HostileRuntime.AttackerToken, limits);

    [Fact]
    public async Task Keys_of_200_KB_are_refused_and_key_bytes_count_toward_stateMaxBytes()
    {
        await using var runtime = await HostileRuntime.StartAsync(attackerTenant: Attacker($"stateMaxBytes: {MiB}"));

        // The attack as reported: 20 keys of 200 KB, each with a one-byte value, against a 1 MiB quota.
        for (var i = 0; i < 20; i++)
        {
            var key = new string((char)('a' + i), 200 * 1024);
            using var refused = await runtime.Attacker.PostAsync("/v1.0/state/statestore", Json($$"""[{"key":"{{key}}","value":1}]"""));
            await HostileRuntime.AssertClientErrorAsync(refused, "ERR_MALFORMED_REQUEST");
        }

        // The same attack within the key bound: keys of 1000 bytes, 100 per request. Each stored key costs its
        // 1010 bytes ("attacker||" + key) and its one-byte value, so the quota ends at 1037 keys.
        const int perKey = 1010 + 1;
        var stored = 0;
        HttpResponseMessage? full = null;
        for (var batch = 0; batch < 20 && full is null; batch++)
        {
            var items = Enumerable.Range(0, 100).Select(i => $$"""{"key":"{{batch:D4}}-{{i:D4}}-{{new string('k', 990)}}","value":1}""");
            var response = await runtime.Attacker.PostAsync("/v1.0/state/statestore", Json("[" + string.Join(',', items) + "]"));
            if (response.StatusCode == HttpStatusCode.NoContent)
            {
                stored += 100;
                response.Dispose();
            }
            else
            {
                full = response;
            }
            await runtime.AssertBystanderServedAsync();
        }
        Assert.NotNull(full);
        await AssertQuotaExceededAsync(full);
        full.Dispose();
        Assert.InRange((long)stored * perKey, MiB - (100 * perKey), MiB);

        var peak = await runtime.AssertSurvivedAsync();
        output.WriteLine($"{stored} keys stored before 507; peak RSS {peak / MiB} MB");
    }

    [Fact]
    public async Task Content_type_bytes_count_toward_stateMaxBytes_and_are_bounded()
    {
        await using var runtime = await HostileRuntime.StartAsync(attackerTenant: Attacker("stateMaxBytes: 1000"));
        var contentType = "application/" + new string('x', 238);
        Assert.Equal(250, contentType.Length);

        // Each key costs 12 ("attacker||c0") + 1 + 250 = 263 bytes: three fit in 1000, a fourth does not. Counting
        // values alone, all of them would have fit.
        for (var i = 0; i < 3; i++)
        {
            using var saved = await runtime.Attacker.PostAsync("/v1.0/state/statestore", Save($"c{i}", contentType));
            Assert.Equal(HttpStatusCode.NoContent, saved.StatusCode);
        }
        using (var over = await runtime.Attacker.PostAsync("/v1.0/state/statestore", Save("c3", contentType)))
        {
            await AssertQuotaExceededAsync(over);
        }
        using (var read = await runtime.Attacker.GetAsync("/v1.0/state/statestore/c0"))
        {
            Assert.Equal(HttpStatusCode.OK, read.StatusCode);
            Assert.Equal(contentType, read.Content.Headers.ContentType?.MediaType);
        }

        // Longer than the bound, or not printable ASCII (a read answers it as a header): the request is malformed.
        foreach (var bad in new[] { new string('x', StateApi.MaxContentTypeLength + 1), "text/plain\r\nX-Injected: 1", "text/\0plain", "text/é" })
        {
            using var refused = await runtime.Attacker.PostAsync("/v1.0/state/statestore", Save("bad", bad));
            Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
            await HostileRuntime.AssertClientErrorAsync(refused, "ERR_MALFORMED_REQUEST");
        }
        using (var longKey = await runtime.Attacker.GetAsync("/v1.0/state/statestore/" + new string('k', StateApi.MaxKeyBytes + 1)))
        {
            await HostileRuntime.AssertClientErrorAsync(longKey, "ERR_MALFORMED_REQUEST");
        }

        var peak = await runtime.AssertSurvivedAsync();
        output.WriteLine($"peak RSS {peak / MiB} MB");
    }

    [Fact]
    public async Task Locks_are_bounded_in_count_length_and_expiry_and_expired_locks_are_reclaimed()
    {
        await using var runtime = await HostileRuntime.StartAsync(new Dictionary<string, string> { ["locks.yaml"] = Resources.Component("lockstore", "lock.in-memory") });

        async Task<HttpResponseMessage> LockAsync(HttpClient client, string resourceId, int expiry, string owner = "owner") =>
            await client.PostAsync("/v1.0-alpha1/lock/lockstore", Json(JsonSerializer.Serialize(new { resourceId, lockOwner = owner, expiryInSeconds = expiry })));
        async Task<bool> LockedAsync(HttpClient client, string resourceId, int expiry)
        {
            using var response = await LockAsync(client, resourceId, expiry);
            var body = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.OK, $"lock {resourceId}: {(int)response.StatusCode} {body}");
            using var json = JsonDocument.Parse(body);
            return json.RootElement.GetProperty("success").GetBoolean();
        }

        // The whole bound in locks that expire after a second. Once the last of them has expired (it can be taken
        // again), every place is free again: the bound counts live locks only.
        await Parallel.ForAsync(0, 999, new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (i, _) =>
            Assert.True(await LockedAsync(runtime.Attacker, $"e{i}", 1)));
        Assert.True(await LockedAsync(runtime.Attacker, "e999", 1));
        await Eventually.TrueAsync(() => LockedAsync(runtime.Attacker, "e999", 3600), TimeSpan.FromSeconds(10), "the expired lock was never free again");
        await Parallel.ForAsync(1, 1000, new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (i, _) =>
            Assert.True(await LockedAsync(runtime.Attacker, $"r{i}", 3600)));

        // Now 1000 live locks: one more is refused, the attacker's own 429.
        using (var refused = await LockAsync(runtime.Attacker, "one-more", 3600))
        {
            Assert.Equal(HttpStatusCode.TooManyRequests, refused.StatusCode);
            await HostileRuntime.AssertClientErrorAsync(refused, "ERR_TENANT_LOCKS_EXCEEDED");
            Assert.NotNull(refused.Headers.RetryAfter?.Delta);
        }

        // The bystander's locks are its own.
        Assert.True(await LockedAsync(runtime.Bystander, "r1", 60));

        // Unlocking frees a place as well.
        using (var unlocked = await runtime.Attacker.PostAsync("/v1.0-alpha1/unlock/lockstore", Json("""{"resourceId":"r1","lockOwner":"owner"}""")))
        {
            Assert.Contains("\"status\":0", await unlocked.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
        Assert.True(await LockedAsync(runtime.Attacker, "and-another", 3600));

        // Lengths and expiry beyond their bounds are malformed.
        foreach (var (resourceId, owner, expiry) in new[]
        {
            (new string('r', LockApi.MaxResourceIdLength + 1), "owner", 60),
            ("id", new string('o', LockApi.MaxOwnerLength + 1), 60),
            ("id", "owner", 0),
            ("id", "owner", -5),
            ("id", "owner", LockApi.MaxExpirySeconds + 1),
            ("id", "owner", int.MaxValue),
        })
        {
            using var refused = await LockAsync(runtime.Attacker, resourceId, expiry, owner);
            Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
            await HostileRuntime.AssertClientErrorAsync(refused, "ERR_MALFORMED_REQUEST");
        }
        using (var decades = await runtime.Attacker.PostAsync("/v1.0-alpha1/lock/lockstore", Json("""{"resourceId":"id","lockOwner":"owner","expiryInSeconds":946080000000}""")))
        {
            await HostileRuntime.AssertClientErrorAsync(decades, "ERR_MALFORMED_REQUEST");
        }

        Assert.True(await LockedAsync(runtime.Bystander, "r2", 60));
        var peak = await runtime.AssertSurvivedAsync();
        output.WriteLine($"peak RSS {peak / MiB} MB");
    }
}
