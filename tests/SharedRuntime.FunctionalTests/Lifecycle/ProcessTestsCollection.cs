namespace SharedRuntime.FunctionalTests.Lifecycle;

/// <summary>
/// Tests with deadlines of their own: runtime processes handing their ports over, and the Kubernetes watcher's
/// one-second bars. They run alone, after the rest of this assembly, so that other tests do not take the CPU they
/// are timed against.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ProcessTestsCollection
{
    public const string Name = "runtime processes";
}
