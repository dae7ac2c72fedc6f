using System.Text.Json;
using SharedRuntime.Configuration;

namespace SharedRuntime.AppChannel;

/// <summary>A subscription with its route matches parsed once.</summary>
internal sealed class CompiledSubscription(SubscriptionConfig config)
{
    public SubscriptionConfig Config { get; } = config;

    public IReadOnlyList<(RouteMatch Match, string Path)> Rules { get; } =
        config.Routes.Rules.Select(r => (RouteMatch.Parse(r.Match), r.Path)).ToList();

    public bool IsRaw => Config.Metadata.TryGetValue("rawPayload", out var raw) && bool.TryParse(raw, out var value) && value;

    /// <summary>The path the event goes to, or null when no rule matches and there is no default.</summary>
    public string? RouteOf(JsonElement cloudEvent)
    {
        foreach (var (match, path) in Rules)
        {
            if (match.Matches(cloudEvent))
            {
                return path;
            }
        }
        return Config.Routes.Default;
    }

    /// <summary>The path the event goes to, or null when no rule matches and there is no default.</summary>
    public string? RouteOf(ReadOnlyMemory<byte> cloudEvent)
    {
        if (Rules.Count > 0)
        {
            try
            {
                using var document = JsonDocument.Parse(cloudEvent);
                foreach (var (match, path) in Rules)
                {
                    if (match.Matches(document.RootElement))
                    {
                        return path;
                    }
                }
            }
            catch (JsonException)
            {
                // Not JSON: only the default route can take it.
            }
        }
        return Config.Routes.Default;
    }
}
