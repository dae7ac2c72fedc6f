namespace SharedRuntime.Configuration;

/// <summary>A resource file that cannot be used, with the file, the document and the field at fault.</summary>
public sealed class ResourceException : Exception
{
    public ResourceException(string file, string document, string? field, string problem)
        : base(Format(file, document, field, problem))
    {
        File = file;
        Document = document;
        Field = field;
        Problem = problem;
    }

    public string File { get; }

    /// <summary>"Kind/name" when known, else "document N".</summary>
    public string Document { get; }

    public string? Field { get; }

    public string Problem { get; }

    private static string Format(string file, string document, string? field, string problem) =>
        field is null ? $"{file}: {document}: {problem}" : $"{file}: {document}: field '{field}': {problem}";
}
