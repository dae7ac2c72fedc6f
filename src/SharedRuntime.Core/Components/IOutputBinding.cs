namespace SharedRuntime.Components;

/// <summary>An output binding request (Dapr: data, metadata, operation).</summary>
public sealed record BindingRequest(string Operation, ReadOnlyMemory<byte> Data, IReadOnlyDictionary<string, string> Metadata);

public sealed record BindingResponse(ReadOnlyMemory<byte> Data, IReadOnlyDictionary<string, string> Metadata, string? ContentType = null);

internal interface IOutputBinding : IComponent
{
    IReadOnlyList<string> Operations { get; }

    ValueTask<BindingResponse> InvokeAsync(BindingRequest request, CancellationToken cancellationToken);
}
