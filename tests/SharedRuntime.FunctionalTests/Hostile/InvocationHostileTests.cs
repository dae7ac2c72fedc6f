using System.Net;
using System.Text;
using Microsoft.AspNetCore.Http;
using SharedRuntime.FunctionalTests.AppChannel;
using Xunit.Abstractions;

namespace SharedRuntime.FunctionalTests.Hostile;

/// <summary>
/// Attacks through service invocation: a caller trying to open the bystander app's breakers, to slip past its access
/// control, or to grow the runtime's state with made-up app-ids.
/// </summary>
[Collection(HostileTenantsCollection.Name)]
public sealed class InvocationHostileTests(ITestOutputHelper output) : IAsyncLifetime
{
    private TestApp _app = null!;
    private readonly List<string> _seen = [];

    public async Task InitializeAsync()
    {
        _app = await TestApp.StartAsync(async context =>
        {
            lock (_seen)
            {
                _seen.Add(context.Request.Path + context.Request.QueryString);
            }
            await context.Request.Body.CopyToAsync(Stream.Null);
            await context.Response.WriteAsync($"{context.Request.Method} {context.Request.Path}");
        });
    }

    public async Task DisposeAsync() => await _app.DisposeAsync();

    /// <summary>The bystander, with its app behind it, guarded by <c>bystander-acl</c>: the attacker may not call /admin.</summary>
    private string BystanderTenant => $"""
        apiVersion: sharedruntime.io/v1alpha1
        kind: Tenant
        metadata:
          name: bystander
        spec:
          appId: bystander
          config: bystander-acl
          appEndpoint: {_app.Address.ToString().TrimEnd('/')}
          apiToken:
            value: "{HostileRuntime.BystanderToken}"
          appChannel:
            breakAfterFailures: 3
            breakDuration: 60s
        ---

        """;

    private const string BystanderAcl = """
        apiVersion: dapr.io/v1alpha1
        kind: Configuration
        metadata:
          name: bystander-acl
        spec:
          accessControl:
            defaultAction: allow
            policies:
              - appId: attacker
                defaultAction: allow
                operations:
                  - name: /admin/**
                    httpVerb: ["*"]
                    action: deny
        """;

    /// <summary>Every tenant's calls to the bystander's app retry and break on their own (a cache keyed by caller and target).</summary>
    private const string InvokePolicies = """
        apiVersion: dapr.io/v1alpha1
        kind: Resiliency
        metadata:
          name: invoke-policies
        spec:
          policies:
            retries:
              twice:
                policy: constant
                duration: 10ms
                maxRetries: 2
            circuitBreakers:
              tight:
                maxRequests: 1
                timeout: 60s
                trip: consecutiveFailures >= 2
          targets:
            apps:
              bystander:
                retry: twice
                circuitBreaker: tight
        """;

    private Task<HostileRuntime> StartAsync(string? attackerLimits = null) => HostileRuntime.StartAsync(
        new Dictionary<string, string> { ["acl.yaml"] = BystanderAcl, ["resiliency.yaml"] = InvokePolicies },
        attackerTenant: Resources.Tenant("attacker", HostileRuntime.AttackerToken, attackerLimits),
        bystanderTenant: BystanderTenant);

    /// <summary>The bystander's app is reachable: by the bystander itself and by a well-behaved call of the attacker.</summary>
    /// <param name="runtime">The runtime.</param>
    /// <param name="attackerFlooding">
    /// Whether the attacker floods meanwhile: then its own well-formed call may be turned away by the fair share (a 429
    /// that says so), never by a breaker or the access control.
    /// </param>
    private static async Task AssertBystanderAppServedAsync(HostileRuntime runtime, bool attackerFlooding = false)
    {
        using var own = await runtime.Bystander.GetAsync("/v1.0/invoke/bystander/method/orders/1");
        Assert.True(own.StatusCode == HttpStatusCode.OK, $"bystander's own call: {(int)own.StatusCode} {await own.Content.ReadAsStringAsync()}");
        using var other = await runtime.Attacker.GetAsync("/v1.0/invoke/bystander/method/orders/2");
        var body = await other.Content.ReadAsStringAsync();
        Assert.True(other.StatusCode == HttpStatusCode.OK || attackerFlooding && HostileRuntime.IsFairShareRefusal((int)other.StatusCode, body),
            $"a well-formed call: {(int)other.StatusCode} {body}");
    }

    [Fact]
    public async Task Headers_the_client_cannot_send_do_not_open_the_bystanders_breakers()
    {
        await using var runtime = await StartAsync();
        using var attacker = new HttpClient(new SocketsHttpHandler { RequestHeaderEncodingSelector = (_, _) => Encoding.UTF8 })
        {
            BaseAddress = runtime.Process.HttpAddress,
            Timeout = TimeSpan.FromSeconds(30),
        };
        attacker.DefaultRequestHeaders.Add("dapr-api-token", HostileRuntime.AttackerToken);

        for (var i = 0; i < 20; i++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1.0/invoke/bystander/method/orders")
            {
                Content = new StringContent("{}", Encoding.UTF8, "application/json"),
            };
            request.Headers.TryAddWithoutValidation("X-Name", $"caf\u00e9 {i} \u2603");
            using var response = await attacker.SendAsync(request);
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            await HostileRuntime.AssertClientErrorAsync(response, "ERR_DIRECT_INVOKE");
        }
        lock (_seen)
        {
            Assert.Empty(_seen);
        }

        await AssertBystanderAppServedAsync(runtime);
        var peak = await runtime.AssertSurvivedAsync();
        output.WriteLine($"peak RSS {peak / 1048576} MB");
    }

    [Fact]
    public async Task Access_control_is_not_bypassed_by_case_or_encoding()
    {
        string[] targets =
        [
            "/v1.0/invoke/bystander/method/ADMIN/users",
            "/v1.0/invoke/bystander/method/Admin/Users/1",
            "/v1.0/invoke/bystander/method/%61dmin/users",
            "/v1.0/invoke/bystander/method/admin%2Fusers",
            "/v1.0/invoke/bystander/method/admin%2fusers",
            "/v1.0/invoke/bystander/method/admin%5Cusers",
            "/v1.0/invoke/bystander/method/admin\\users",
            "/v1.0/invoke/bystander/method/admin/./users",
            "/v1.0/invoke/bystander/method/admin//users",
            "/v1.0/invoke/bystander/method/public/..%2Fadmin",
            "/v1.0/invoke/bystander/method/%2E%2E%2Fadmin",
            "/v1.0/invoke/bystander/method/admin%252Fusers",
            "/ADMIN/users",
            "/admin%2Fusers",
            "/%61dmin/users",
        ];
        await using var runtime = await StartAsync();
        foreach (var target in targets)
        {
            var headerForm = !target.StartsWith("/v1.0/", StringComparison.Ordinal);
            var (status, body) = await InvocationFaultTests.RawAsync(runtime.Process.HttpAddress,
                $"GET {target} HTTP/1.1\r\nHost: localhost\r\ndapr-api-token: {HostileRuntime.AttackerToken}\r\n" +
                $"{(headerForm ? "dapr-app-id: bystander\r\n" : "")}Connection: close\r\n\r\n");
            Assert.True(status is 400 or 403, $"{target}: {status} {body}");
            Assert.Contains("\"errorCode\":\"ERR_DIRECT_INVOKE\"", body);
            output.WriteLine($"{target}: {status}");
        }
        lock (_seen)
        {
            Assert.DoesNotContain(_seen, path => path.Contains("admin", StringComparison.OrdinalIgnoreCase));
        }

        await AssertBystanderAppServedAsync(runtime);
        var peak = await runtime.AssertSurvivedAsync();
        output.WriteLine($"peak RSS {peak / 1048576} MB");
    }

    [Fact]
    public async Task Invoking_100000_made_up_app_ids_grows_nothing()
    {
        await using var runtime = await StartAsync("requestsPerSecond: 1000000\nburst: 1000000\nmaxConcurrency: 64");
        const int total = 100_000;
        const int workers = 16;
        var before = runtime.RssBytes;
        var refused = 0;
        using var stop = new CancellationTokenSource();
        var attack = Enumerable.Range(0, workers).Select(w => Task.Run(async () =>
        {
            for (var i = w; i < total; i += workers)
            {
                var appId = $"app-{Guid.NewGuid():N}";
                // A body with a length makes the runtime ask whether a retry policy could need it: the look-up that
                // once cached a pipeline per made-up app-id.
                using var response = i % 2 == 0
                    ? await runtime.Attacker.PostAsync($"/v1.0/invoke/{appId}/method/x", new ByteArrayContent(new byte[16]))
                    : await runtime.Attacker.SendAsync(new HttpRequestMessage(HttpMethod.Put, $"/x/{i}")
                    {
                        Headers = { { "dapr-app-id", appId } },
                        Content = new ByteArrayContent(new byte[16]),
                    });
                if (response.StatusCode != HttpStatusCode.NotFound)
                {
                    var body = await response.Content.ReadAsStringAsync();
                    if (HostileRuntime.IsFairShareRefusal((int)response.StatusCode, body))
                    {
                        // Turned away by the fair share before the look-up: this app-id is tried again.
                        i -= workers;
                        continue;
                    }
                    Assert.Fail($"{appId}: {(int)response.StatusCode} {body}");
                }
                if (Interlocked.Increment(ref refused) == 1)
                {
                    await HostileRuntime.AssertClientErrorAsync(response, "ERR_DIRECT_INVOKE");
                }
            }
        })).ToArray();

        // The bystander is served, round after round, for as long as the flood runs.
        var flood = Task.WhenAll(attack);
        while (!flood.IsCompleted)
        {
            await runtime.AssertBystanderServedAsync();
            await AssertBystanderAppServedAsync(runtime, attackerFlooding: true);
        }
        await flood;
        Assert.Equal(total, refused);

        var after = runtime.RssBytes;
        await AssertBystanderAppServedAsync(runtime);
        var peak = await runtime.AssertSurvivedAsync();
        output.WriteLine($"RSS {before / 1048576} MB before, {after / 1048576} MB after {total} made-up app-ids; peak RSS {peak / 1048576} MB");
    }
}
