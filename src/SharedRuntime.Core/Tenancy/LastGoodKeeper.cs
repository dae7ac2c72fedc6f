using Microsoft.Extensions.Logging;
using SharedRuntime.Configuration;
using SharedRuntime.Diagnostics;
using SharedRuntime.Metrics;

namespace SharedRuntime.Tenancy;

/// <summary>Fail-static: every configuration that applies is cached; a start whose source fails runs from the cache.</summary>
internal sealed class LastGoodKeeper(RuntimeMetrics metrics, ILogger logger)
{
    private volatile bool _serving;

    /// <summary>Where the last good configuration is kept; null keeps none.</summary>
    public LastGoodResourceCache? Cache { get; set; }

    /// <summary>True while the runtime serves the cached configuration because its source failed at start-up.</summary>
    public bool Serving => _serving;

    /// <summary>Whether <paramref name="ex"/> says the source could not be read or was bad (rather than a bug).</summary>
    public static bool IsSourceFailure(Exception ex) => ex is ResourceException or IOException or UnauthorizedAccessException;

    /// <summary>
    /// Reads <paramref name="cache"/> to start from because the source failed with <paramref name="problem"/>; when the
    /// cache cannot be read either, throws <paramref name="problem"/>.
    /// </summary>
    public async Task<ResourceSet> EnterAsync(LastGoodResourceCache cache, Exception problem, CancellationToken cancellationToken)
    {
        ResourceSet set;
        try
        {
            set = await cache.LoadAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (IsSourceFailure(ex))
        {
            CoreLog.LastGoodUnreadable(logger, cache.FilePath, ex.Message);
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(problem);
            throw;
        }
        _serving = true;
        metrics.ServingLastGood(true);
        CoreLog.ServingLastGood(logger, problem.Message, cache.FilePath);
        return set;
    }

    /// <summary>Called under the apply gate after a set applied: it becomes the last good configuration.</summary>
    public void Save(ResourceSet set)
    {
        if (Cache is null || (set.Documents.Count == 0 && set.Tenants.Count + set.Components.Count > 0))
        {
            return; // a set built in code has no files to cache
        }
        try
        {
            Cache.Save(set.Documents);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            CoreLog.LastGoodNotSaved(logger, Cache.FilePath, ex.Message);
        }
    }

    /// <summary>Called after the source loaded and applied again: the runtime no longer serves the cache.</summary>
    public void Leave(string sourceDescription)
    {
        if (_serving)
        {
            _serving = false;
            metrics.ServingLastGood(false);
            CoreLog.LeftLastGood(logger, sourceDescription);
        }
    }
}
