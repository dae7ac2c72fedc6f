using System.Text;
using Microsoft.AspNetCore.Http;

namespace SharedRuntime.FuzzTests;

/// <summary>
/// The node under fuzzing: the runtime as its own process (<see cref="HostileRuntime"/>) with an attacker tenant whose
/// limits let every input reach a handler, a bystander tenant, an app behind each, and one component of every
/// embedded kind. The attacker's app answers variously (echo, 500, slow, 404, RETRY, DROP) so invocation, binding and
/// delivery paths all run; the bystander's app answers every call and counts the events it receives.
/// </summary>
internal sealed class FuzzNode : IAsyncDisposable
{
    public const string AttackerToken = HostileRuntime.AttackerToken;
    public const string BystanderToken = HostileRuntime.BystanderToken;

    /// <summary>The header the apps put on every answer, so an app's own 5xx is told apart from the runtime's.</summary>
    public const string AppAnswerHeader = "x-fuzz-app";

    /// <summary>The attacker's request body limit: small, so generated large bodies cross it.</summary>
    public const int AttackerBodyLimit = 64 * 1024;

    private int _bystanderDeliveries;

    private FuzzNode(HostileRuntime runtime, TestApp attackerApp, TestApp bystanderApp)
    {
        Runtime = runtime;
        AttackerApp = attackerApp;
        BystanderApp = bystanderApp;
    }

    public HostileRuntime Runtime { get; }
    public TestApp AttackerApp { get; }
    public TestApp BystanderApp { get; }
    public int BystanderDeliveries => Volatile.Read(ref _bystanderDeliveries);

    public static async Task<FuzzNode> StartAsync(string attackerSubscriptions)
    {
        // The env secret store reads the runtime's environment, which the process inherits from this one.
        Environment.SetEnvironmentVariable("FUZZ_SECRET_TOKEN", "s3cr3t");
        Environment.SetEnvironmentVariable("FUZZ_SECRET_OTHER", "\u00e9\u4e00");
        FuzzNode? node = null;
        var attackerApp = await TestApp.StartAsync(context => AttackerAppAsync(context, attackerSubscriptions));
        var bystanderApp = await TestApp.StartAsync(context => node!.BystanderAppAsync(context));
        var resources = new Dictionary<string, string>
        {
            ["statestore.yaml"] = Resources.Component("statestore", "state.in-memory"),
            ["durable.yaml"] = Resources.Component("durable", "state.sqlite", new Dictionary<string, string> { ["connectionString"] = "fuzz-state.db" }),
            ["pubsub.yaml"] = Resources.Component("pubsub", "pubsub.in-memory"),
            ["envsecrets.yaml"] = Resources.Component("envsecrets", "secretstores.local.env", new Dictionary<string, string> { ["prefix"] = "FUZZ_SECRET_" }),
            ["appbinding.yaml"] = Resources.Component("appbinding", "bindings.http", new Dictionary<string, string> { ["url"] = $"{attackerApp.Address}binding" }),
            ["appconfig.yaml"] = Resources.Component("appconfig", "configuration.in-memory",
                new Dictionary<string, string> { ["attacker||feature"] = "on", ["bystander||feature"] = "off" }),
            ["lockstore.yaml"] = Resources.Component("lockstore", "lock.in-memory"),
            ["subscriptions.yaml"] = """
                apiVersion: dapr.io/v2alpha1
                kind: Subscription
                metadata:
                  name: bystander-orders
                spec:
                  pubsubname: pubsub
                  topic: bystander-orders
                  routes:
                    default: /orders
                scopes:
                  - bystander
                ---

                """,
        };
        var attacker = $"""
            apiVersion: sharedruntime.io/v1alpha1
            kind: Tenant
            metadata:
              name: attacker
            spec:
              appId: attacker
              apiToken:
                value: "{AttackerToken}"
              appEndpoint: {attackerApp.Address.ToString().TrimEnd('/')}
              appChannel:
                discoverSubscriptions: true
                timeout: 2s
              limits:
                requestsPerSecond: 100000
                burst: 100000
                maxConcurrency: 64
                maxQueue: 256
                maxRequestBodyBytes: {AttackerBodyLimit}
            ---

            """;
        var bystander = Resources.Tenant("bystander", BystanderToken, appEndpoint: bystanderApp.Address.ToString().TrimEnd('/'));
        try
        {
            var runtime = await HostileRuntime.StartAsync(resources, attacker, bystander);
            node = new FuzzNode(runtime, attackerApp, bystanderApp);
            return node;
        }
        catch
        {
            await attackerApp.DisposeAsync();
            await bystanderApp.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// The attacker's app: the answer depends on a hash of the path, so each generated path always meets the same
    /// behaviour: mostly an echo, sometimes a 500, a slow answer, a 404, or a delivery answer asking for a retry or a drop.
    /// </summary>
    private static async Task AttackerAppAsync(HttpContext context, string subscriptions)
    {
        var request = context.Request;
        context.Response.Headers[AppAnswerHeader] = "attacker";
        if (request.Path == "/dapr/subscribe")
        {
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync(subscriptions);
            return;
        }
        var body = await ReadBoundedAsync(request.Body, context.RequestAborted);
        switch ((uint)StableHash(request.Path.Value + request.QueryString.Value) % 20)
        {
            case 0 or 1:
                context.Response.StatusCode = 500;
                await context.Response.WriteAsync("the attacker's app failed on purpose");
                return;
            case 2:
                await Task.Delay(TimeSpan.FromMilliseconds(300), context.RequestAborted);
                break;
            case 3:
                context.Response.StatusCode = 404;
                return;
            case 4:
                context.Response.ContentType = "application/json";
                await context.Response.WriteAsync("""{"status":"RETRY"}""");
                return;
            case 5:
                context.Response.ContentType = "application/json";
                await context.Response.WriteAsync("""{"status":"DROP"}""");
                return;
        }
        context.Response.StatusCode = 200;
        context.Response.ContentType = "application/octet-stream";
        await context.Response.Body.WriteAsync(body, context.RequestAborted);
    }

    /// <summary>The bystander's app: answers every call with 200 and counts the events delivered to it.</summary>
    private async Task BystanderAppAsync(HttpContext context)
    {
        context.Response.Headers[AppAnswerHeader] = "bystander";
        var body = await ReadBoundedAsync(context.Request.Body, context.RequestAborted);
        if (context.Request.Path == "/orders")
        {
            Interlocked.Increment(ref _bystanderDeliveries);
            context.Response.ContentType = "application/json";
            await context.Response.WriteAsync("""{"status":"SUCCESS"}""");
            return;
        }
        context.Response.StatusCode = 200;
        await context.Response.Body.WriteAsync(body, context.RequestAborted);
    }

    private static async Task<byte[]> ReadBoundedAsync(Stream body, CancellationToken cancellationToken)
    {
        using var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        int read;
        while ((read = await body.ReadAsync(chunk, cancellationToken)) > 0)
        {
            if (buffer.Length < 1024 * 1024)
            {
                buffer.Write(chunk, 0, read);
            }
        }
        return buffer.ToArray();
    }

    private static int StableHash(string text)
    {
        var hash = 17;
        foreach (var c in Encoding.UTF8.GetBytes(text))
        {
            hash = unchecked((hash * 31) + c);
        }
        return hash;
    }

    public async ValueTask DisposeAsync()
    {
        await Runtime.DisposeAsync();
        await AttackerApp.DisposeAsync();
        await BystanderApp.DisposeAsync();
    }
}
