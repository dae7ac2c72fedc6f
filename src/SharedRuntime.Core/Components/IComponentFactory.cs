namespace SharedRuntime.Components;

/// <summary>Builds components of the types it names (for example <c>state.in-memory</c>).</summary>
public interface IComponentFactory
{
    /// <summary>Component types this factory builds, as written in <c>spec.type</c>.</summary>
    IReadOnlyCollection<string> Types { get; }

    IComponent Create(ComponentContext context);
}
