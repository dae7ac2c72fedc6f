using System.Globalization;
using System.Net;

// An empty Kestrel app: one endpoint, GET /v1.0/healthz answering 204, on 127.0.0.1 at the port given with
// --dapr-http-port (the runtime's own option, so that the startup scenario starts it with the runtime's arguments;
// it ignores the others). Logging at Warning, as the runtime runs in the scenario.
var at = Array.IndexOf(args, "--dapr-http-port");
var port = at >= 0 && at + 1 < args.Length ? int.Parse(args[at + 1], CultureInfo.InvariantCulture) : 5000;
var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [] });
builder.Logging.SetMinimumLevel(LogLevel.Warning);
builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, port));
var app = builder.Build();
app.MapGet("/v1.0/healthz", static context =>
{
    context.Response.StatusCode = StatusCodes.Status204NoContent;
    return Task.CompletedTask;
});
await app.RunAsync();
