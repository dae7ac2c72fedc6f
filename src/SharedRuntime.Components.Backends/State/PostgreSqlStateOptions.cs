using System.Text.RegularExpressions;
using Npgsql;

namespace SharedRuntime.Components.State;

/// <summary>
/// <c>state.postgresql</c> metadata, named as in Dapr: <c>connectionString</c> (required, Npgsql/libpq keywords),
/// <c>tableName</c> (default <c>state</c>, may be <c>schema.table</c>), <c>timeout</c> (per command, default 20s),
/// <c>cleanupInterval</c> (or <c>cleanupIntervalInSeconds</c>; how often expired rows are deleted, default 1h; 0 = never).
/// </summary>
internal sealed partial record PostgreSqlStateOptions(string ConnectionString, string Table, TimeSpan CleanupInterval)
{
    [GeneratedRegex("^([A-Za-z_][A-Za-z0-9_]{0,62}\\.)?[A-Za-z_][A-Za-z0-9_]{0,62}$")]
    private static partial Regex TableName();

    /// <summary>The table name without its schema, for naming its indexes.</summary>
    public string BareTable => Table[(Table.IndexOf('.', StringComparison.Ordinal) + 1)..];

    public static PostgreSqlStateOptions From(ComponentContext context)
    {
        var raw = MetadataValues.String(context, "connectionString")
            ?? throw new ComponentException("metadata 'connectionString' is required (for example host=localhost user=postgres password=... port=5432)");
        NpgsqlConnectionStringBuilder builder;
        try
        {
            builder = new NpgsqlConnectionStringBuilder(ToKeyValues(raw));
        }
        catch (ArgumentException ex)
        {
            throw new ComponentException($"metadata 'connectionString' is not valid: {ex.Message}", ex);
        }
        builder.CommandTimeout = (int)Math.Ceiling(MetadataValues.Duration(context, "timeout", TimeSpan.FromSeconds(20)).TotalSeconds);
        builder.ApplicationName ??= "sharedruntime";

        var table = MetadataValues.String(context, "tableName") ?? "state";
        if (!TableName().IsMatch(table))
        {
            throw new ComponentException($"tableName '{table}' must be letters, digits and underscores (optionally schema.table)");
        }
        var cleanup = MetadataValues.String(context, "cleanupIntervalInSeconds") is not null
            ? MetadataValues.Duration(context, "cleanupIntervalInSeconds", TimeSpan.Zero)
            : MetadataValues.Duration(context, "cleanupInterval", TimeSpan.FromHours(1));
        return new PostgreSqlStateOptions(builder.ConnectionString, table, cleanup);
    }

    private static readonly Dictionary<string, string> LibpqNames = new(StringComparer.OrdinalIgnoreCase)
    {
        ["user"] = "Username",
        ["dbname"] = "Database",
        ["connect_timeout"] = "Timeout",
        ["sslmode"] = "SSL Mode",
    };

    /// <summary>
    /// Dapr examples use libpq's space-separated form (<c>host=x user=y dbname=z</c>); Npgsql wants semicolons and
    /// some other names. Values with spaces need the semicolon form.
    /// </summary>
    private static string ToKeyValues(string raw)
    {
        if (raw.Contains(';', StringComparison.Ordinal) || !raw.Contains(' ', StringComparison.Ordinal))
        {
            return raw;
        }
        return string.Join(';', raw.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(pair =>
        {
            var at = pair.IndexOf('=', StringComparison.Ordinal);
            return at > 0 && LibpqNames.TryGetValue(pair[..at], out var name) ? name + pair[at..] : pair;
        }));
    }
}
