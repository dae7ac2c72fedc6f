using Microsoft.AspNetCore.Builder;

namespace SharedRuntime.Tests;

/// <summary>Builders for the apps and fake servers the tests start beside the runtime.</summary>
public static class TestHost
{
    /// <summary>
    /// A slim web application builder that does not watch its content root for appsettings changes: that watch takes an
    /// inotify instance (and one watch per folder under the test's bin directory) for as long as the app lives, and a
    /// test run with many apps alive would use up the node's limit.
    /// </summary>
    public static WebApplicationBuilder CreateSlimBuilder() =>
        WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = ["--hostBuilder:reloadConfigOnChange=false"] });
}
