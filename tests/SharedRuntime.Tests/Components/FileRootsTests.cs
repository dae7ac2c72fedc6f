using SharedRuntime.Components;

namespace SharedRuntime.Tests.Components;

public sealed class FileRootsTests : IDisposable
{
    private readonly string _folder = FileRoots.RealPath(Directory.CreateTempSubdirectory("sharedruntime-roots-").FullName);

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public void APathUnderARootIsAllowedAndOneOutsideIsRefused()
    {
        var data = Directory.CreateDirectory(Path.Combine(_folder, "data")).FullName;
        var roots = new FileRoots([data], []);
        Assert.Equal(Path.Combine(data, "a.json"), roots.Check(Path.Combine(data, "a.json"), "secretsFile"));
        Assert.Throws<ComponentException>(() => roots.Check(Path.Combine(_folder, "a.json"), "secretsFile"));
        Assert.Throws<ComponentException>(() => roots.Check(Path.Combine(data, "..", "a.json"), "secretsFile"));
        Assert.Throws<ComponentException>(() => roots.Check(data + "-sibling/a.json", "secretsFile"));
        Assert.Throws<ComponentException>(() => new FileRoots([], []).Check(Path.Combine(data, "a.json"), "secretsFile"));
    }

    [Fact]
    public void TheStateFolderIsRefusedEvenUnderARootAndThroughASymbolicLink()
    {
        var state = Directory.CreateDirectory(Path.Combine(_folder, "state")).FullName;
        var data = Directory.CreateDirectory(Path.Combine(_folder, "data")).FullName;
        File.WriteAllText(Path.Combine(state, "cache.json"), "{}");
        File.CreateSymbolicLink(Path.Combine(data, "innocent.json"), Path.Combine(state, "cache.json"));
        Directory.CreateSymbolicLink(Path.Combine(data, "folder"), state);

        var everywhere = new FileRoots(null, [state]);
        Assert.Throws<ComponentException>(() => everywhere.Check(Path.Combine(state, "cache.json"), "secretsFile"));
        Assert.Throws<ComponentException>(() => new FileRoots([_folder], [state]).Check(Path.Combine(state, "cache.json"), "secretsFile"));
        var roots = new FileRoots([data], [state]);
        Assert.Throws<ComponentException>(() => roots.Check(Path.Combine(data, "innocent.json"), "secretsFile"));
        Assert.Throws<ComponentException>(() => roots.Check(Path.Combine(data, "folder", "cache.json"), "secretsFile"));
    }
}
