using System.Text.Json;
using SharedRuntime.Configuration;

namespace SharedRuntime.AppChannel;

/// <summary>A subscription with its route matches parsed once.</summary>
internal sealed class CompiledSubscription(SubscriptionConfig config)
{
    public SubscriptionConfig Config { get; } = config;

    public IReadOnlyList<(RouteMatch Match, string Path)> Rules { get; } =
        config.Routes.Rules.Select(r => (RouteMatch.Parse(r.Match), r.Path)).ToList();

    /// <summary>Subscription metadata <c>rawPayload: "true"</c> (the name in any case): the app gets what the broker holds, wrapped in a CloudEvent.</summary>
    public bool IsRaw { get; } = BuildingBlocks.PublishApi.IsRaw(config.Metadata);

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
}
