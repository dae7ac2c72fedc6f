namespace SharedRuntime.Tenancy;

/// <summary>
/// What one reload did to the tenants: the contexts it made (new tenants, and tenants rebuilt because their resource,
/// limits, routes or policy changed, each with the context it replaces) and the tenants it removed. Tenants it carried
/// over as they were are not listed, so a reload's work after the build is proportional to this, not to every tenant.
/// </summary>
internal sealed class TenantChanges
{
    public static TenantChanges None { get; } = new();

    /// <summary>Each context made by the reload, with the one of the same app-id it replaces (null for a new tenant).</summary>
    public List<(TenantContext? Before, TenantContext After)> Updated { get; } = [];

    /// <summary>The contexts of tenants the reload no longer has.</summary>
    public List<TenantContext> Removed { get; } = [];

    public bool IsEmpty => Updated.Count == 0 && Removed.Count == 0;

    /// <summary>The changes to the table by app-id: removals, then the contexts made.</summary>
    public IEnumerable<KeyValuePair<string, TenantContext?>> ById()
    {
        foreach (var removed in Removed)
        {
            yield return new(removed.AppId, null);
        }
        foreach (var (_, after) in Updated)
        {
            yield return new(after.AppId, after);
        }
    }

    /// <summary>
    /// The changes to the table by token: every token that went away first (a removed tenant's, a replaced one's), then
    /// the tokens of the contexts made, so a token that moved to another tenant ends up with it.
    /// </summary>
    public IEnumerable<KeyValuePair<TokenKey, TenantContext?>> ByToken()
    {
        foreach (var removed in Removed)
        {
            yield return new(removed.TokenKey, null);
        }
        foreach (var (before, _) in Updated)
        {
            if (before is not null)
            {
                yield return new(before.TokenKey, null);
            }
        }
        foreach (var (_, after) in Updated)
        {
            yield return new(after.TokenKey, after);
        }
    }
}
