using System.Collections.Concurrent;
using System.Net;
using System.Text;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Xunit.Abstractions;
using Autogen = Dapr.Client.Autogen.Grpc.v1;

namespace SharedRuntime.FunctionalTests.Hostile;

/// <summary>
/// A tenant that makes the runtime hold memory for it: bulk gets of large values named many times, many large
/// bodies at once, gRPC messages past its body limit. Its requests hold at most its memory budget; the bystander is
/// served during and after; the process stays far under 512 MB.
/// </summary>
[Collection(HostileTenantsCollection.Name)]
public sealed class MemoryHostileTests(ITestOutputHelper output)
{
    private const int ValueBytes = 3_000_000;
    private const int DistinctKeys = 25;
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task Three_bulk_gets_naming_a_3MB_key_300_times_answer_it_once_and_larger_answers_are_refused_over_http()
    {
        await using var runtime = await HostileRuntime.StartAsync();
        await SaveLargeValuesAsync(runtime.Attacker, DistinctKeys);
        await using var bystander = BystanderLoop.Start(runtime);

        // The attack as reported: each answer names the key once, so the three hold 3 MB each instead of 900 MB.
        var once = JsonContentOf(Enumerable.Repeat("big-0", 300));
        var answers = await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => runtime.Attacker.PostAsync("/v1.0/state/statestore/bulk", once())));
        foreach (var answer in answers)
        {
            Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
            using var items = System.Text.Json.JsonDocument.Parse(await answer.Content.ReadAsStreamAsync());
            var item = Assert.Single(items.RootElement.EnumerateArray());
            Assert.Equal(ValueBytes, item.GetProperty("data").GetString()!.Length);
        }

        // The same with 25 distinct 3 MB keys (each named 12 times): 75 MB per answer, over the 64 MiB budget.
        var distinct = JsonContentOf(Enumerable.Range(0, 300).Select(i => $"big-{i % DistinctKeys}"));
        var refused = await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => runtime.Attacker.PostAsync("/v1.0/state/statestore/bulk", distinct())));
        foreach (var answer in refused)
        {
            Assert.Contains(answer.StatusCode, new[] { HttpStatusCode.RequestEntityTooLarge, HttpStatusCode.TooManyRequests });
            await HostileRuntime.AssertClientErrorAsync(answer, "ERR_TENANT_MEMORY_BUDGET");
        }

        await bystander.AssertServedAsync();
        var peak = await runtime.AssertSurvivedAsync();
        output.WriteLine($"peak RSS {peak / 1048576} MB");
    }

    [Fact]
    public async Task Three_bulk_gets_naming_a_3MB_key_300_times_answer_it_once_and_larger_answers_are_refused_over_grpc()
    {
        await using var runtime = await HostileRuntime.StartAsync();
        await SaveLargeValuesAsync(runtime.Attacker, DistinctKeys);
        await using var bystander = BystanderLoop.Start(runtime);
        using var channel = GrpcChannel.ForAddress(runtime.Process.GrpcAddress, new GrpcChannelOptions { MaxReceiveMessageSize = null });
        var client = new Autogen.Dapr.DaprClient(channel);
        var headers = new Metadata { { "dapr-api-token", HostileRuntime.AttackerToken } };

        var once = new Autogen.GetBulkStateRequest { StoreName = "statestore", Parallelism = 16 };
        once.Keys.Add(Enumerable.Repeat("big-0", 300));
        var answers = await Task.WhenAll(Enumerable.Range(0, 3).Select(_ => client.GetBulkStateAsync(once, headers, deadline: Deadline()).ResponseAsync));
        foreach (var answer in answers)
        {
            var item = Assert.Single(answer.Items);
            Assert.Equal(ValueBytes + 2, item.Data.Length);
        }

        var distinct = new Autogen.GetBulkStateRequest { StoreName = "statestore", Parallelism = 16 };
        distinct.Keys.Add(Enumerable.Range(0, 300).Select(i => $"big-{i % DistinctKeys}"));
        var refusals = await Task.WhenAll(Enumerable.Range(0, 3).Select(async _ =>
            await Assert.ThrowsAsync<RpcException>(() => client.GetBulkStateAsync(distinct, headers, deadline: Deadline()).ResponseAsync)));
        foreach (var refusal in refusals)
        {
            Assert.Equal(StatusCode.ResourceExhausted, refusal.StatusCode);
            Assert.Contains("ERR_TENANT_MEMORY_BUDGET", refusal.Status.Detail, StringComparison.Ordinal);
        }

        await bystander.AssertServedAsync();
        var peak = await runtime.AssertSurvivedAsync();
        output.WriteLine($"peak RSS {peak / 1048576} MB");
    }

    [Fact]
    public async Task Many_large_bodies_at_once_hold_at_most_the_tenant_budget_over_http()
    {
        await using var runtime = await HostileRuntime.StartAsync();
        await using var bystander = BystanderLoop.Start(runtime);

        // 64 saves of almost 4 MiB at once over HTTP (the default concurrency and body limit).
        var body = Encoding.UTF8.GetBytes($$"""[{"key":"body","value":"{{new string('b', 4 * 1024 * 1024 - 64)}}"}]""");
        var saves = await Task.WhenAll(Enumerable.Range(0, 64).Select(_ =>
        {
            var content = new ByteArrayContent(body);
            content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
            return runtime.Attacker.PostAsync("/v1.0/state/statestore", content);
        }));
        var httpRefused = 0;
        foreach (var save in saves)
        {
            if (save.StatusCode != HttpStatusCode.NoContent)
            {
                await HostileRuntime.AssertRefusedAsync(save, "ERR_TENANT_MEMORY_BUDGET");
                httpRefused++;
            }
        }

        await bystander.AssertServedAsync();
        var peak = await runtime.AssertSurvivedAsync();
        output.WriteLine($"HTTP saves refused {httpRefused} of 64");
        output.WriteLine($"peak RSS {peak / 1048576} MB");
    }

    [Fact]
    public async Task Many_large_messages_at_once_hold_at_most_the_tenant_budget_and_one_past_the_body_limit_is_refused_unread_over_grpc()
    {
        await using var runtime = await HostileRuntime.StartAsync();
        await using var bystander = BystanderLoop.Start(runtime);
        using var channel = GrpcChannel.ForAddress(runtime.Process.GrpcAddress);
        var client = new Autogen.Dapr.DaprClient(channel);
        var headers = new Metadata { { "dapr-api-token", HostileRuntime.AttackerToken } };
        var value = ByteString.CopyFrom(new byte[4 * 1024 * 1024 - 256]);
        var grpcOutcomes = await Task.WhenAll(Enumerable.Range(0, 64).Select(async _ =>
        {
            try
            {
                await client.SaveStateAsync(SaveRequest(value), headers, deadline: Deadline());
                return (StatusCode?)null;
            }
            catch (RpcException ex)
            {
                Assert.True(ex.Status.Detail.Contains("ERR_TENANT_MEMORY_BUDGET", StringComparison.Ordinal) ||
                    ex.StatusCode == StatusCode.ResourceExhausted && HostileRuntime.IsFairShareRefusal(429, ex.Status.Detail), ex.Status.Detail);
                return ex.StatusCode;
            }
        }));
        Assert.All(grpcOutcomes, status => Assert.True(status is null or StatusCode.ResourceExhausted, $"{status}"));
        var tooLarge = await Assert.ThrowsAsync<RpcException>(() =>
            client.SaveStateAsync(SaveRequest(ByteString.CopyFrom(new byte[5 * 1024 * 1024])), headers, deadline: Deadline()).ResponseAsync);
        Assert.Equal(StatusCode.ResourceExhausted, tooLarge.StatusCode);
        Assert.Contains("ERR_TENANT_BODY_TOO_LARGE", tooLarge.Status.Detail, StringComparison.Ordinal);

        await bystander.AssertServedAsync();
        var peak = await runtime.AssertSurvivedAsync();
        output.WriteLine($"gRPC saves refused {grpcOutcomes.Count(s => s is not null)} of 64");
        output.WriteLine($"peak RSS {peak / 1048576} MB");
    }

    private static Autogen.SaveStateRequest SaveRequest(ByteString value)
    {
        var request = new Autogen.SaveStateRequest { StoreName = "statestore" };
        request.States.Add(new Autogen.StateItem { Key = "grpc-body", Value = value });
        return request;
    }

    private static DateTime Deadline() => TimeProvider.System.GetUtcNow().UtcDateTime.Add(Timeout);

    /// <summary>Saves keys <c>big-0</c>.. whose values are JSON strings of <see cref="ValueBytes"/> characters.</summary>
    private static async Task SaveLargeValuesAsync(HttpClient attacker, int count)
    {
        var value = new string('x', ValueBytes);
        for (var i = 0; i < count; i++)
        {
            using var save = await attacker.PostAsync("/v1.0/state/statestore",
                new StringContent($$"""[{"key":"big-{{i}}","value":"{{value}}"}]""", Encoding.UTF8, "application/json"));
            Assert.True(save.StatusCode == HttpStatusCode.NoContent, $"save big-{i}: {(int)save.StatusCode} {await save.Content.ReadAsStringAsync()}");
        }
    }

    private static Func<HttpContent> JsonContentOf(IEnumerable<string> keys)
    {
        var json = System.Text.Json.JsonSerializer.Serialize(new { keys = keys.ToArray() });
        return () => new StringContent(json, Encoding.UTF8, "application/json");
    }

    /// <summary>The bystander saving and reading back its state in a loop while the attack runs.</summary>
    private sealed class BystanderLoop : IAsyncDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private readonly ConcurrentQueue<string> _failures = new();
        private readonly Task _loop;
        private int _served;

        private BystanderLoop(HostileRuntime runtime) => _loop = Task.Run(() => RunAsync(runtime));

        public static BystanderLoop Start(HostileRuntime runtime) => new(runtime);

        private async Task RunAsync(HostileRuntime runtime)
        {
            while (!_stop.IsCancellationRequested)
            {
                try
                {
                    await runtime.AssertBystanderServedAsync();
                    Interlocked.Increment(ref _served);
                }
                catch (Exception ex) when (!_stop.IsCancellationRequested)
                {
                    _failures.Enqueue(ex.Message);
                }
            }
        }

        /// <summary>Stops the loop; asserts that it was served at least once and never failed.</summary>
        public async Task AssertServedAsync()
        {
            await Eventually.TrueAsync(() => Task.FromResult(Volatile.Read(ref _served) > 0), Timeout, "the bystander was served during the attack");
            await _stop.CancelAsync();
            await _loop.WaitAsync(Timeout);
            Assert.True(_failures.IsEmpty, $"the bystander failed during the attack: {string.Join("; ", _failures.Take(5))}");
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            await _loop.WaitAsync(Timeout).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            _stop.Dispose();
        }
    }
}
