using Microsoft.Extensions.Logging;

namespace SharedRuntime.Diagnostics;

internal static partial class CoreLog
{
    [LoggerMessage(1001, LogLevel.Information, "Configuration applied from {Source}: {TenantCount} tenants, {ComponentCount} components (generation {Generation})")]
    public static partial void ConfigurationApplied(ILogger logger, string source, int tenantCount, int componentCount, long generation);

    [LoggerMessage(1002, LogLevel.Error, "Configuration change refused, the last good configuration stays: {Problem}")]
    public static partial void ReloadRefused(ILogger logger, string problem);

    [LoggerMessage(1003, LogLevel.Information, "Tenant {AppId} added")]
    public static partial void TenantAdded(ILogger logger, string appId);

    [LoggerMessage(1004, LogLevel.Information, "Tenant {AppId} changed")]
    public static partial void TenantChanged(ILogger logger, string appId);

    [LoggerMessage(1005, LogLevel.Information, "Tenant {AppId} removed; its token is no longer accepted")]
    public static partial void TenantRemoved(ILogger logger, string appId);

    [LoggerMessage(1006, LogLevel.Information, "Component {Component} ({Type}) ready")]
    public static partial void ComponentReady(ILogger logger, string component, string type);

    [LoggerMessage(1007, LogLevel.Error, "Component {Component} ({Type}) failed to initialise; only the apps using it are affected: {Problem}")]
    public static partial void ComponentFailed(ILogger logger, string component, string type, string problem);

    [LoggerMessage(1008, LogLevel.Information, "Component {Component} removed")]
    public static partial void ComponentRemoved(ILogger logger, string component);

    [LoggerMessage(1009, LogLevel.Warning, "Disposing component {Component} failed")]
    public static partial void ComponentDisposeFailed(ILogger logger, Exception exception, string component);

    [LoggerMessage(1010, LogLevel.Warning, "Serving the last good configuration from {CacheFile}: the configuration source failed at start-up: {Problem}")]
    public static partial void ServingLastGood(ILogger logger, string problem, string cacheFile);

    [LoggerMessage(1011, LogLevel.Information, "The configuration source applied again ({Source}); no longer serving the cached last good configuration")]
    public static partial void LeftLastGood(ILogger logger, string source);

    [LoggerMessage(1012, LogLevel.Warning, "Could not save the last good configuration to {CacheFile}: {Problem}")]
    public static partial void LastGoodNotSaved(ILogger logger, string cacheFile, string problem);

    [LoggerMessage(1013, LogLevel.Error, "The cached last good configuration {CacheFile} cannot be read either: {Problem}")]
    public static partial void LastGoodUnreadable(ILogger logger, string cacheFile, string problem);

    [LoggerMessage(1014, LogLevel.Error, "Tenant refused, it is unusable until its resource is fixed; the other tenants are applied: {File}: {Document}: field '{Field}': {Problem}")]
    public static partial void TenantRefused(ILogger logger, string file, string document, string? field, string problem);

    [LoggerMessage(1015, LogLevel.Error, "Configuration change failed unexpectedly, the last good configuration stays")]
    public static partial void ReloadFailed(ILogger logger, Exception exception);

    [LoggerMessage(1016, LogLevel.Error, "Subscription refused, the apps it names ({Apps}) do not get it until its resource is fixed; the rest is applied: {File}: {Document}: field '{Field}': {Problem}")]
    public static partial void SubscriptionRefused(ILogger logger, string apps, string file, string document, string? field, string problem);

    [LoggerMessage(1017, LogLevel.Warning, "Resource folder {Folder} cannot be watched, changes to it are found by the scan every {ScanSeconds} s instead: {Problem}")]
    public static partial void FolderNotWatched(ILogger logger, string folder, double scanSeconds, string problem);
}
