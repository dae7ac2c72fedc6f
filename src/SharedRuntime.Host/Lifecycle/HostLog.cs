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
}
