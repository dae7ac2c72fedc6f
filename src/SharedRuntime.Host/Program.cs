using SharedRuntime.Configuration;
using SharedRuntime.Host;
using SharedRuntime.Host.Lifecycle;

// Before any socket exists: .NET reads this once.
SocketCompletions.RunInlineUnlessSet();

// No collection until the runtime is ready: start-up's objects mostly live on (see StartupCollections).
StartupCollections.HoldOff();

RuntimeOptions? options;
try
{
    options = RuntimeOptions.Parse(args, Environment.GetEnvironmentVariable, out var help);
    if (help)
    {
        Console.Out.Write(RuntimeOptions.HelpText());
        return 0;
    }
}
catch (FormatException ex)
{
    Console.Error.WriteLine($"shared-runtime: {ex.Message}");
    return 2;
}

if (options!.ConfigFile is { } configFile && !File.Exists(configFile))
{
    Console.Error.WriteLine($"shared-runtime: --config {configFile}: no such file");
    return 2;
}

var app = RuntimeApplication.Build(options);
try
{
    await RuntimeApplication.StartAsync(app);
}
catch (ResourceException ex)
{
    Console.Error.WriteLine($"shared-runtime: refusing to start, bad resource: {ex.Message}");
    return 1;
}
catch (IOException ex)
{
    Console.Error.WriteLine($"shared-runtime: refusing to start: {ex.Message}");
    return 1;
}
await app.WaitForShutdownAsync();
await app.DisposeAsync();
return 0;
