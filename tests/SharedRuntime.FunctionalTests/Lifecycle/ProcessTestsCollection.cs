namespace SharedRuntime.FunctionalTests.Lifecycle;

/// <summary>
/// Tests that start runtime processes and hand their ports over: they run alone, after the rest of this assembly,
/// so that other tests do not take the CPU a draining process needs to finish its connections in time.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class ProcessTestsCollection
{
    public const string Name = "runtime processes";
}
