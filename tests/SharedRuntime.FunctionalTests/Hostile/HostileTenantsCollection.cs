namespace SharedRuntime.FunctionalTests.Hostile;

/// <summary>
/// Attacks by one tenant on a runtime process it shares with another. Each test runs its own process and reads its
/// peak RSS, so they run one at a time: two attacks at once would blur whose memory is whose on a 2-core machine.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class HostileTenantsCollection
{
    public const string Name = "hostile tenants";
}
