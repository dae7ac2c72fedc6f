namespace SharedRuntime.Host.Lifecycle;

internal static partial class HostLog
{
    [LoggerMessage(3001, LogLevel.Information, "Runtime ready: {TenantCount} tenants; Dapr HTTP on port {HttpPort}, gRPC on {GrpcPort}, metrics on {MetricsPort} (reuse-port {ReusePort})")]
    public static partial void Ready(ILogger logger, int tenantCount, int httpPort, int grpcPort, int metricsPort, string reusePort);

    [LoggerMessage(3002, LogLevel.Information, "Draining: readiness is now false and the listeners close; {InFlight} requests in flight get up to {DrainSeconds}s to finish, keep-alive connections are closed after their response, HTTP/2 connections get GOAWAY")]
    public static partial void DrainStarted(ILogger logger, int inFlight, int drainSeconds);

    [LoggerMessage(3003, LogLevel.Information, "Drain complete after {ElapsedMs} ms: every request in flight finished")]
    public static partial void DrainCompleted(ILogger logger, long elapsedMs);

    [LoggerMessage(3004, LogLevel.Warning, "Drain time ran out after {ElapsedMs} ms: {InFlight} requests in flight were cut off")]
    public static partial void DrainCutShort(ILogger logger, long elapsedMs, int inFlight);

    [LoggerMessage(3005, LogLevel.Warning, "net.ipv4.tcp_migrate_req is 0: connections the kernel queued on this process's listeners but not yet accepted are reset when they close; set it to 1 (Linux 5.14+) so they move to the process that took over")]
    public static partial void AcceptQueueNotMigrated(ILogger logger);

    [LoggerMessage(3006, LogLevel.Information, "Took over {Count} listeners ({Endpoints}) from process {Pid} through {Path}: connections waiting in their queues are served here, none is reset")]
    public static partial void HandoffTaken(ILogger logger, int count, string endpoints, int pid, string path);

    [LoggerMessage(3007, LogLevel.Information, "No runtime answered on {Path} ({Reason}): binding the ports (reuse-port {ReusePort})")]
    public static partial void HandoffNoPredecessor(ILogger logger, string path, string reason, string reusePort);

    [LoggerMessage(3008, LogLevel.Warning, "Listeners of process {Pid} not taken over: {Reason}; binding the ports instead")]
    public static partial void HandoffNotTaken(ILogger logger, int pid, string reason);

    [LoggerMessage(3009, LogLevel.Information, "Handed the listeners ({Endpoints}) over to process {Pid}: this process accepts no more connections and drains the ones it has")]
    public static partial void HandedOver(ILogger logger, string endpoints, int pid);

    [LoggerMessage(3010, LogLevel.Warning, "Listener hand-off to process {Pid} refused or failed, this process keeps its listeners: {Reason}")]
    public static partial void HandoffRefused(ILogger logger, int pid, string reason);

    [LoggerMessage(3011, LogLevel.Warning, "Listener hand-off not offered on {Path}: {Reason}; the next runtime process will bind the ports with reuse-port instead")]
    public static partial void HandoffNotOffered(ILogger logger, string path, string reason);

    [LoggerMessage(3012, LogLevel.Warning, "{Count} listeners handed over matched no endpoint of this process and were closed")]
    public static partial void HandoffUnclaimed(ILogger logger, int count);

    [LoggerMessage(3013, LogLevel.Warning, "Could not confirm the listener hand-off to the predecessor ({Reason}): it keeps accepting on the same queues until it stops")]
    public static partial void HandoffNotConfirmed(ILogger logger, string reason);

    [LoggerMessage(3014, LogLevel.Debug, "Gave back {Megabytes} MB of executable and assembly pages that start-up touched")]
    public static partial void StartupPagesReleased(ILogger logger, long megabytes);

    [LoggerMessage(3017, LogLevel.Debug, "Gave back again the pages of {Mappings} executable mappings that the first seconds of serving touched")]
    public static partial void StartupPagesReleasedAgain(ILogger logger, int mappings);

    [LoggerMessage(3015, LogLevel.Debug, "Collected after a reload ({Kind}): {ElapsedMs:0.0} ms, {CpuMs:0.0} ms of CPU; {HeapMb:0.0} MB of objects live; {FullCollections} whole collections so far")]
    public static partial void ReloadCollected(ILogger logger, ReloadCollection kind, double elapsedMs, double cpuMs, double heapMb, int fullCollections);

    [LoggerMessage(3016, LogLevel.Debug, "Gave back again the pages of {Mappings} executable mappings after a reload: {ElapsedMs:0.00} ms")]
    public static partial void PagesReleasedAfterReload(ILogger logger, int mappings, double elapsedMs);

    [LoggerMessage(3018, LogLevel.Warning, "Client connections are bounded at {Max}, half the process's open-files limit ({OpenFiles}), below --max-connections {Configured}: raise the limit (ulimit -n, the container runtime's nofile) to allow more")]
    public static partial void ConnectionsBoundedByOpenFiles(ILogger logger, int max, long openFiles, int configured);

    [LoggerMessage(3030, LogLevel.Debug, "Start-up took {TotalMs:0} ms: {Phases}; {AllocatedMb:0.0} MB allocated, {Collections} collections")]
    public static partial void StartupTimes(ILogger logger, double totalMs, string phases, double allocatedMb, int collections);
}
