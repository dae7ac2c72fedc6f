using System.Globalization;
using SharedRuntime.FuzzTests.Generators;
using Xunit.Abstractions;

namespace SharedRuntime.FuzzTests;

/// <summary>
/// The bounded fuzz run CI does: 50,000 generated and mutated requests over every HTTP route and gRPC method, sent by
/// one tenant while another is served. The runtime must not crash, must answer no input with a 500 of its own making,
/// must serve the bystander without a single error, and must stay under 512 MB of peak RSS.
/// Set <c>SHAREDRUNTIME_FUZZ_CASES</c> for a shorter run, <c>SHAREDRUNTIME_FUZZ_SEED</c> for another one, and
/// <c>SHAREDRUNTIME_FUZZ_REPLAY</c> to the case seeds a failing run printed to send just those again.
/// </summary>
[Collection(FuzzCollection.Name)]
public sealed class FuzzRunTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Generated_requests_from_one_tenant_crash_nothing_and_fail_nothing_for_another()
    {
        var settings = FuzzSettings.FromEnvironment();
        await using var node = await FuzzNode.StartAsync(SubscriptionAnswers.Generate(settings.Seed));
        var run = new FuzzRun(node, settings);

        await run.RunAsync();

        var runtime = node.Runtime;
        var exited = runtime.Process.HasExited;
        var peak = exited ? 0 : runtime.PeakRssBytes;
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"seed {settings.Seed}: {run.Sent} cases ({run.HttpSent} HTTP, {run.GrpcSent} gRPC) in {run.Elapsed.TotalSeconds:F1} s, " +
            $"{run.BystanderRequests} bystander requests, peak RSS {peak / 1048576} MB, {run.TransportErrorCount} transport errors, {run.Findings.Count} findings"));
        foreach (var (answer, count) in run.Answers.OrderBy(a => a.Key, StringComparer.Ordinal))
        {
            output.WriteLine($"  {answer}: {count}");
        }
        foreach (var (answer, example) in run.Examples.Where(e => Environment.GetEnvironmentVariable("SHAREDRUNTIME_FUZZ_EXAMPLES") is not null).OrderBy(e => e.Key, StringComparer.Ordinal))
        {
            output.WriteLine($"example of {answer}: {example}");
        }
        foreach (var error in run.TransportErrors.Take(5))
        {
            output.WriteLine($"transport error (not a failure by itself): {error}");
        }

        foreach (var group in run.Findings.GroupBy(f => $"{f.Request.Split('\n')[0].Split(' ')[0]} {f.Request.Split('\n')[0].Split(' ')[^1]} -> {f.Problem}").OrderByDescending(g => g.Count()))
        {
            output.WriteLine($"findings: {group.Count()} x {group.Key}");
        }
        foreach (var finding in run.Findings.Take(40))
        {
            output.WriteLine($"finding: {finding}");
        }

        if (run.Findings.Count > 0)
        {
            // The runtime's own account of the unexpected exceptions behind the findings, once each.
            var failures = runtime.Process.Log.Split('\n')
                .Where(l => l.Contains(" fail: ", StringComparison.Ordinal) && l.Contains("Exception", StringComparison.Ordinal))
                .GroupBy(l => System.Text.RegularExpressions.Regex.Match(l, @"(method '\w+'\. )?[\w.]+Exception: .{0,100}").Value);
            foreach (var failure in failures.Take(20))
            {
                output.WriteLine($"runtime log: {failure.Count()} x {failure.Key}");
            }
        }

        // What went wrong, last in the output (a log's tail is what is kept of it), before the assertions that fail on it.
        foreach (var slow in run.SlowCases)
        {
            output.WriteLine($"slow case: {slow}");
        }
        foreach (var waiting in run.Unanswered)
        {
            output.WriteLine($"unanswered at the end: {waiting}");
        }
        output.WriteLine($"verdict: runtime {(exited ? "EXITED" : "alive")}; {run.BystanderErrors.Count} bystander errors; {run.Findings.Count} findings; " +
                         $"{run.Sent} of {settings.Cases} cases sent{(run.TimedOut ? $", TIMED OUT after {settings.TimeCap.TotalSeconds} s" : "")}");
        foreach (var error in run.BystanderErrors.Take(5))
        {
            output.WriteLine($"bystander error: {error}");
        }

        Assert.False(exited, $"the runtime exited during the fuzz run:\n{Tail(runtime.Process.Log)}");
        Assert.True(run.BystanderErrors.Count == 0,
            $"{run.BystanderErrors.Count} bystander requests failed during the run:\n{string.Join('\n', run.BystanderErrors.Take(10))}");
        Assert.True(run.Findings.Count == 0,
            $"{run.Findings.Count} wrong answers (seed {settings.Seed}; replay one with SHAREDRUNTIME_FUZZ_REPLAY=<case seed>):\n\n" +
            string.Join("\n\n", run.Findings.Take(8)));
        Assert.False(run.TimedOut, $"only {run.Sent} of {settings.Cases} cases were sent within {settings.TimeCap.TotalSeconds} s; the slowest:\n{string.Join('\n', run.SlowCases.Concat(run.Unanswered))}");
        Assert.Equal(settings.Cases, run.Sent);
        await Eventually.TrueAsync(() => Task.FromResult(node.BystanderDeliveries > 0), TimeSpan.FromSeconds(10), "an event delivered to the bystander's app");
        var after = await runtime.AssertSurvivedAsync();
        output.WriteLine($"peak RSS {after / 1048576} MB");
    }

    private static string Tail(string text) => text.Length <= 6000 ? text : text[^6000..];
}
