using SharedRuntime.Configuration;
using SharedRuntime.Diagnostics;

namespace SharedRuntime.Tenancy;

/// <summary>Fail-static: every configuration that applies is cached; a start whose source fails runs from the cache.</summary>
public sealed partial class RuntimeConfiguration
{
    private volatile bool _servingLastGood;

    /// <summary>Where the last good configuration is kept; null keeps none.</summary>
    public LastGoodResourceCache? LastGood { get; init; }

    /// <summary>True while the runtime serves the cached configuration because its source failed at start-up.</summary>
    public bool ServingLastGood => _servingLastGood;

    private static bool IsSourceFailure(Exception ex) => ex is ResourceException or IOException or UnauthorizedAccessException;

    private async Task StartFromLastGoodAsync(LastGoodResourceCache cache, Exception problem, CancellationToken cancellationToken)
    {
        ResourceSet set;
        try
        {
            set = await cache.LoadAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (IsSourceFailure(ex))
        {
            CoreLog.LastGoodUnreadable(_logger, cache.FilePath, ex.Message);
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(problem);
            throw;
        }
        _servingLastGood = true;
        _metrics.ServingLastGood(true);
        CoreLog.ServingLastGood(_logger, problem.Message, cache.FilePath);
        await ApplyAsync(set, cache.Description, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Called under the apply gate after a set applied: it becomes the last good configuration.</summary>
    private void SaveLastGood(ResourceSet set)
    {
        if (LastGood is null || (set.Documents.Count == 0 && set.Tenants.Count + set.Components.Count > 0))
        {
            return; // a set built in code has no files to cache
        }
        try
        {
            LastGood.Save(set.Documents);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            CoreLog.LastGoodNotSaved(_logger, LastGood.FilePath, ex.Message);
        }
    }

    private void LeaveLastGood()
    {
        if (_servingLastGood)
        {
            _servingLastGood = false;
            _metrics.ServingLastGood(false);
            CoreLog.LeftLastGood(_logger, _source?.Description ?? "");
        }
    }
}
