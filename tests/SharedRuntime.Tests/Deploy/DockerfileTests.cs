using System.Text.RegularExpressions;

namespace SharedRuntime.Tests.Deploy;

/// <summary>The image is built without a docker engine here; these checks keep the Dockerfile in step with the projects.</summary>
public sealed partial class DockerfileTests
{
    private static readonly string Dockerfile = File.ReadAllText(Path.Combine(DeployFiles.RepositoryRoot, "Dockerfile"));

    [GeneratedRegex("""<ProjectReference Include="([^"]+)" />""")]
    private static partial Regex ProjectReference();

    [Fact]
    public void TheRestoreLayerCopiesEveryProjectTheRuntimeIsBuiltFrom()
    {
        var host = Path.Combine(DeployFiles.RepositoryRoot, "src", "SharedRuntime.Host", "SharedRuntime.Host.csproj");
        var projects = new HashSet<string>(StringComparer.Ordinal);
        var pending = new Stack<string>([host]);
        while (pending.TryPop(out var project))
        {
            if (!projects.Add(Path.GetFullPath(project)))
            {
                continue;
            }
            foreach (Match match in ProjectReference().Matches(File.ReadAllText(project)))
            {
                pending.Push(Path.Combine(Path.GetDirectoryName(project)!, match.Groups[1].Value.Replace('\\', '/')));
            }
        }
        var restore = Dockerfile.IndexOf("RUN dotnet restore", StringComparison.Ordinal);
        foreach (var project in projects)
        {
            var relative = Path.GetRelativePath(DeployFiles.RepositoryRoot, project).Replace('\\', '/');
            var copy = Dockerfile.IndexOf($"COPY {relative} ", StringComparison.Ordinal);
            Assert.True(copy >= 0 && copy < restore, $"{relative} is copied before the restore");
        }
    }

    [Fact]
    public void TheImageRunsTheNativeExecutableAsANonRootUser()
    {
        Assert.Contains("FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build", Dockerfile);
        // The native executable needs no .NET runtime in the image, only its native dependencies.
        Assert.Contains("FROM mcr.microsoft.com/dotnet/runtime-deps:10.0", Dockerfile);
        Assert.Matches(@"RUN dotnet publish src/SharedRuntime.Host/SharedRuntime.Host.csproj -c Release -r linux-x64 ", Dockerfile);
        Assert.DoesNotContain("--self-contained false", Dockerfile);
        Assert.Contains("USER $APP_UID", Dockerfile);
        Assert.Contains("""ENTRYPOINT ["/app/shared-runtime"]""", Dockerfile);
        Assert.Contains("EXPOSE 3500 50001 9090", Dockerfile);
        var runtimeStage = Dockerfile[Dockerfile.LastIndexOf("FROM ", StringComparison.Ordinal)..];
        Assert.DoesNotContain("COPY src", runtimeStage);
    }
}
