namespace SharedRuntime.Host.Lifecycle;

/// <summary>
/// Holds off Kestrel's stop for <see cref="RuntimeOptions.DrainDelayMilliseconds"/> once a drain has begun (SIGTERM): the
/// listeners are already closed and readiness is false, and connections still open keep being served, HTTP/1.1 responses
/// with <c>Connection: close</c>, HTTP/2 connections after their GOAWAY (<see cref="Http2ConnectionDrain"/>). Clients thus move to the process that took over on their own, after a response,
/// instead of having a connection closed under a request they are just sending when Kestrel closes idle connections.
/// </summary>
/// <remarks>
/// The host runs every <see cref="IHostedLifecycleService.StoppingAsync"/> before any StopAsync, so Kestrel stops after
/// this. A stop that did not start with a drain (the host stopped in-process: StoppingAsync then runs before
/// ApplicationStopping) is not delayed. On SIGTERM the host signals ApplicationStopping first and runs StoppingAsync on
/// another thread at the same time as the ApplicationStopping callbacks: the drain is begun here too (it runs once), so
/// the listeners are closed before the delay starts instead of the delay being skipped because they were not yet.
/// </remarks>
internal sealed class DrainDelay(ShutdownDrain drain, IHostApplicationLifetime lifetime, RuntimeOptions options, TimeProvider time) : IHostedLifecycleService
{
    public async Task StoppingAsync(CancellationToken cancellationToken)
    {
        if (!lifetime.ApplicationStopping.IsCancellationRequested && !drain.Begun)
        {
            return;
        }
        drain.Begin();
        if (options.DrainDelayMilliseconds <= 0)
        {
            return;
        }
        try
        {
            await Task.Delay(TimeSpan.FromMilliseconds(options.DrainDelayMilliseconds), time, cancellationToken);
        }
        catch (OperationCanceledException)
        {
            // The host's shutdown time ran out: stop now.
        }
    }

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
