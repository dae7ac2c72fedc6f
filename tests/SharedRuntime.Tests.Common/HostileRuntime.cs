using System.Globalization;
using System.Net;
using Xunit;

namespace SharedRuntime.Tests;

/// <summary>
/// The runtime as its own process with two tenants, for attacks a hostile tenant could send: an attacker
/// (<see cref="Attacker"/>, token <c>attacker-token</c>) and a bystander (<see cref="Bystander"/>, token
/// <c>bystander-token</c>). Running out of process means a crash (a stack overflow, an out-of-memory kill) ends the
/// runtime, not the test run, and the runtime's peak resident memory can be read from the kernel.
/// </summary>
public sealed class HostileRuntime : IAsyncDisposable
{
    public const string AttackerToken = "attacker-token";
    public const string BystanderToken = "bystander-token";

    /// <summary>The node-wide ceiling every attack must stay under (the DaemonSet's memory limit).</summary>
    public const long MaxPeakRssBytes = 512L * 1024 * 1024;

    private readonly string _folder;

    private HostileRuntime(RuntimeProcess process, string folder)
    {
        Process = process;
        _folder = folder;
        Attacker = NewClient(AttackerToken);
        Bystander = NewClient(BystanderToken);
    }

    public RuntimeProcess Process { get; }
    public string ResourcesPath => _folder;

    /// <summary>The hostile tenant's client (app-id <c>attacker</c>).</summary>
    public HttpClient Attacker { get; }

    /// <summary>The other tenant on the node (app-id <c>bystander</c>), whose requests must keep succeeding.</summary>
    public HttpClient Bystander { get; }

    /// <summary>
    /// Starts the runtime with <paramref name="resources"/> (file name to YAML) beside the two tenants. When
    /// <paramref name="attackerTenant"/> or <paramref name="bystanderTenant"/> is given it replaces that tenant's
    /// default document (use <see cref="Resources.Tenant"/> with the tokens above). An in-memory state store
    /// <c>statestore</c> and pub/sub <c>pubsub</c> are there unless <paramref name="resources"/> names them.
    /// </summary>
    public static async Task<HostileRuntime> StartAsync(IReadOnlyDictionary<string, string>? resources = null,
        string? attackerTenant = null, string? bystanderTenant = null, params string[] args)
    {
        var folder = Directory.CreateTempSubdirectory("sharedruntime-hostile-").FullName;
        await File.WriteAllTextAsync(Path.Combine(folder, "tenants.yaml"),
            (attackerTenant ?? Resources.Tenant("attacker", AttackerToken)) + (bystanderTenant ?? Resources.Tenant("bystander", BystanderToken)));
        var files = new Dictionary<string, string>(resources ?? new Dictionary<string, string>());
        if (!files.Values.Any(y => y.Contains("\n  name: statestore\n", StringComparison.Ordinal)))
        {
            files["zz-statestore.yaml"] = Resources.Component("statestore", "state.in-memory");
        }
        if (!files.Values.Any(y => y.Contains("\n  name: pubsub\n", StringComparison.Ordinal)))
        {
            files["zz-pubsub.yaml"] = Resources.Component("pubsub", "pubsub.in-memory");
        }
        foreach (var (name, yaml) in files)
        {
            await File.WriteAllTextAsync(Path.Combine(folder, name), yaml);
        }
        var process = await RuntimeProcess.StartReadyAsync(["--resources-path", folder, "--state-dir", folder + "-state", .. args]);
        return new HostileRuntime(process, folder);
    }

    public HttpClient NewClient(string? token, TimeSpan? timeout = null)
    {
        var client = new HttpClient { BaseAddress = Process.HttpAddress, Timeout = timeout ?? TimeSpan.FromSeconds(30) };
        if (token is not null)
        {
            client.DefaultRequestHeaders.Add("dapr-api-token", token);
        }
        return client;
    }

    /// <summary>The runtime's peak resident memory so far (VmHWM), in bytes.</summary>
    public long PeakRssBytes => ReadStatus("VmHWM:");

    /// <summary>The runtime's resident memory now (VmRSS), in bytes.</summary>
    public long RssBytes => ReadStatus("VmRSS:");

    private long ReadStatus(string field)
    {
        foreach (var line in File.ReadLines($"/proc/{Process.Id}/status"))
        {
            if (line.StartsWith(field, StringComparison.Ordinal))
            {
                // "VmHWM:     123456 kB"
                var kb = line[field.Length..].Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries)[0];
                return long.Parse(kb, CultureInfo.InvariantCulture) * 1024;
            }
        }
        throw new InvalidOperationException($"{field} not found in /proc/{Process.Id}/status");
    }

    /// <summary>
    /// What every hostile test shows after its attack: the runtime is still running, the bystander's state save and
    /// get succeed, and the runtime's peak RSS stayed under <see cref="MaxPeakRssBytes"/>. Returns the peak RSS so
    /// the test can report it.
    /// </summary>
    public async Task<long> AssertSurvivedAsync()
    {
        Assert.False(Process.HasExited, $"the runtime exited during the attack:\n{Tail(Process.Log)}");
        await AssertBystanderServedAsync();
        var peak = PeakRssBytes;
        Assert.True(peak < MaxPeakRssBytes, $"peak RSS {peak / (1024 * 1024)} MB reached the {MaxPeakRssBytes / (1024 * 1024)} MB ceiling");
        return peak;
    }

    /// <summary>The bystander saves and reads back a value; throws with the answer when either fails.</summary>
    public async Task AssertBystanderServedAsync()
    {
        var value = Guid.NewGuid().ToString("N");
        using (var save = await Bystander.PostAsync("/v1.0/state/statestore",
            new StringContent($$"""[{"key":"bystander-probe","value":"{{value}}"}]""", System.Text.Encoding.UTF8, "application/json")))
        {
            Assert.True(save.StatusCode == HttpStatusCode.NoContent, $"bystander save: {(int)save.StatusCode} {await save.Content.ReadAsStringAsync()}");
        }
        using var get = await Bystander.GetAsync("/v1.0/state/statestore/bystander-probe");
        var body = await get.Content.ReadAsStringAsync();
        Assert.True(get.StatusCode == HttpStatusCode.OK && body.Contains(value, StringComparison.Ordinal), $"bystander get: {(int)get.StatusCode} {body}");
    }

    /// <summary>
    /// Asserts a refusal for <paramref name="errorCode"/>, or the fair share's 429: many requests at once from one tenant
    /// while the runtime is saturated may be turned away by the fair share before they reach the bound under test.
    /// </summary>
    public static async Task AssertRefusedAsync(HttpResponseMessage response, string errorCode)
    {
        var body = await AssertClientErrorAsync(response);
        Assert.True(body.Contains($"\"{errorCode}\"", StringComparison.Ordinal) || IsFairShareRefusal((int)response.StatusCode, body),
            $"expected {errorCode} or a fair-share refusal, got {(int)response.StatusCode}: {Tail(body)}");
    }

    /// <summary>Whether an error (an HTTP status and body, or a gRPC status detail with status 429) is the fair share's refusal.</summary>
    public static bool IsFairShareRefusal(int status, string detail) =>
        status == 429 && detail.Contains("ERR_TENANT_RATE_LIMITED", StringComparison.Ordinal) && detail.Contains("over its fair share", StringComparison.Ordinal);

    /// <summary>Asserts a Dapr-style 4xx (or the contract's 507 for a full state quota) whose errorCode is <paramref name="errorCode"/> (or any when null); returns the body.</summary>
    public static async Task<string> AssertClientErrorAsync(HttpResponseMessage response, string? errorCode = null)
    {
        var body = await response.Content.ReadAsStringAsync();
        var status = (int)response.StatusCode;
        Assert.True(status is >= 400 and < 500 or 507, $"expected a 4xx or 507, got {status}: {Tail(body)}");
        Assert.Contains("\"errorCode\"", body, StringComparison.Ordinal);
        if (errorCode is not null)
        {
            Assert.Contains($"\"{errorCode}\"", body, StringComparison.Ordinal);
        }
        return body;
    }

    private static string Tail(string text) => text.Length <= 4000 ? text : text[^4000..];

    public async ValueTask DisposeAsync()
    {
        Attacker.Dispose();
        Bystander.Dispose();
        await Process.DisposeAsync();
        foreach (var path in new[] { _folder, _folder + "-state" })
        {
            try
            {
                if (Directory.Exists(path))
                {
                    Directory.Delete(path, recursive: true);
                }
            }
            catch (IOException)
            {
            }
        }
    }
}
