using System.Text.Json;
using System.Text.Json.Nodes;
using SharedRuntime.Kubernetes.Watching;
using SharedRuntime.Tenancy;

namespace SharedRuntime.Kubernetes.Identity;

/// <summary>
/// Reviews a token with the API server: a POST of an authentication.k8s.io/v1 TokenReview with the token and the
/// audiences it must be issued for, read back as its status (authenticated, user name, the audiences it is valid for).
/// The runtime's role grants <c>create</c> on tokenreviews for this.
/// </summary>
internal sealed class TokenReviewer(KubernetesApiClient api) : ITokenReviewer
{
    public const string Path = "/apis/authentication.k8s.io/v1/tokenreviews";

    /// <summary>The largest answer read: a TokenReview's status is a few hundred bytes, its user's extra fields a few more.</summary>
    private const long MaxAnswerBytes = 64 * 1024;

    public async Task<TokenReview> ReviewAsync(string token, IReadOnlyList<string> audiences, CancellationToken cancellationToken)
    {
        var request = new JsonObject
        {
            ["apiVersion"] = "authentication.k8s.io/v1",
            ["kind"] = "TokenReview",
            ["spec"] = new JsonObject
            {
                ["token"] = token,
                ["audiences"] = new JsonArray([.. audiences.Select(a => JsonValue.Create(a))]),
            },
        };
        using var answer = await api.PostAsync(Path, request.ToJsonString(), MaxAnswerBytes, cancellationToken).ConfigureAwait(false);
        return Read(answer.RootElement);
    }

    /// <summary>A TokenReview's status; anything missing or of another type reads as not authenticated.</summary>
    internal static TokenReview Read(JsonElement review)
    {
        if (review.ValueKind != JsonValueKind.Object || !review.TryGetProperty("status", out var status) || status.ValueKind != JsonValueKind.Object)
        {
            return new TokenReview(false, null, [], "the answer has no status");
        }
        var authenticated = status.TryGetProperty("authenticated", out var a) && a.ValueKind == JsonValueKind.True;
        var user = status.TryGetProperty("user", out var u) && u.ValueKind == JsonValueKind.Object &&
                   u.TryGetProperty("username", out var name) && name.ValueKind == JsonValueKind.String ? name.GetString() : null;
        var valid = status.TryGetProperty("audiences", out var list) && list.ValueKind == JsonValueKind.Array
            ? list.EnumerateArray().Where(e => e.ValueKind == JsonValueKind.String).Select(e => e.GetString()!).ToArray()
            : [];
        var error = status.TryGetProperty("error", out var e) && e.ValueKind == JsonValueKind.String ? e.GetString() : null;
        return new TokenReview(authenticated, user, valid, error);
    }
}
