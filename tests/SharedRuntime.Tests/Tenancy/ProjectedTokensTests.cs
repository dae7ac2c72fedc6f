using System.Net;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Time.Testing;
using SharedRuntime.Configuration;
using SharedRuntime.Tenancy;
using SharedRuntime.Tests.Kubernetes;

namespace SharedRuntime.Tests.Tenancy;

public sealed class ProjectedTokensTests
{
    private static readonly IPAddress Source = IPAddress.Parse("10.0.0.1");
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2025, 6, 1, 0, 0, 0, TimeSpan.Zero));
    private readonly PodDirectory _pods = new();
    private readonly RuntimeSnapshot _snapshot = Snapshot(("orders", "shop", "orders"), ("left", "shop", "shared"), ("right", "shop", "shared"));

    [Theory]
    [InlineData("a.b.c", true)]
    [InlineData("eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjF9.c2ln-_", true)]
    [InlineData("orders-token", false)]
    [InlineData("a.b", false)]
    [InlineData("a.b.c.d", false)]
    [InlineData("a..c", false)]
    [InlineData(".b.c", false)]
    [InlineData("a.b.", false)]
    [InlineData("a.b=.c", false)]
    [InlineData("a.b+/.c", false)]
    public void AJwtIsThreeBase64UrlSegments(string token, bool jwt) => Assert.Equal(jwt, ProjectedTokens.LooksLikeJwt(token));

    [Fact]
    public void ATokenLongerThanTheLimitIsNotAJwt()
    {
        var longToken = $"a.{new string('b', ProjectedTokens.MaxTokenChars)}.c";
        Assert.False(ProjectedTokens.LooksLikeJwt(longToken));
    }

    [Fact]
    public async Task ConcurrentRequestsWithOneTokenShareOneReview()
    {
        var gate = new TaskCompletionSource();
        var reviewer = new Reviewer(_ => Valid("shop", "orders"), gate.Task);
        var tokens = Tokens(reviewer);
        var token = Jwt(_time.GetUtcNow().AddHours(1));

        var waiting = Enumerable.Range(0, 10).Select(_ => tokens.ResolveAsync(token, Source, _snapshot, _pods).AsTask()).ToList();
        gate.SetResult();
        var results = await Task.WhenAll(waiting).WaitAsync(TimeSpan.FromSeconds(10));

        Assert.All(results, r => Assert.Equal("orders", r.Tenant?.Config.AppId));
        Assert.Equal(1, reviewer.Count);
    }

    [Fact]
    public async Task AValidVerdictLastsUntilTheTokenExpiresAndAtMostTenMinutes()
    {
        var reviewer = new Reviewer(_ => Valid("shop", "orders"));
        var tokens = Tokens(reviewer);
        var shortLived = Jwt(_time.GetUtcNow().AddMinutes(2));
        var longLived = Jwt(_time.GetUtcNow().AddHours(1));
        Assert.Equal("orders", (await Resolve(tokens, shortLived)).Tenant?.Config.AppId);
        Assert.Equal("orders", (await Resolve(tokens, longLived)).Tenant?.Config.AppId);
        Assert.Equal(2, reviewer.Count);

        _time.Advance(TimeSpan.FromMinutes(1));
        Assert.NotNull((await Resolve(tokens, shortLived)).Tenant);
        Assert.NotNull((await Resolve(tokens, longLived)).Tenant);
        Assert.Equal(2, reviewer.Count);

        // Expired: refused without asking. The long-lived one is reviewed again after ten minutes.
        _time.Advance(TimeSpan.FromMinutes(9.5));
        Assert.Equal(ProjectedTokenRefusal.Unauthenticated, (await Resolve(tokens, shortLived)).Refusal);
        Assert.NotNull((await Resolve(tokens, longLived)).Tenant);
        Assert.Equal(3, reviewer.Count);
    }

    [Fact]
    public async Task ARefusalIsCachedBriefly()
    {
        var reviewer = new Reviewer(_ => new TokenReview(false, null, [], "token lookup failed"));
        var tokens = Tokens(reviewer);
        var token = Jwt(_time.GetUtcNow().AddHours(1));
        for (var i = 0; i < 5; i++)
        {
            Assert.Equal(ProjectedTokenRefusal.Unauthenticated, (await Resolve(tokens, token)).Refusal);
        }
        Assert.Equal(1, reviewer.Count);
        _time.Advance(TimeSpan.FromSeconds(31));
        await Resolve(tokens, token);
        Assert.Equal(2, reviewer.Count);
    }

    [Theory]
    [InlineData("system:serviceaccount:shop:orders", "https://kubernetes.default.svc", "Unauthenticated")]
    [InlineData("alice", "sharedruntime.io", "Unauthenticated")]
    [InlineData("system:serviceaccount:shop", "sharedruntime.io", "Unauthenticated")]
    [InlineData("system:serviceaccount:shop:orders:x", "sharedruntime.io", "Unauthenticated")]
    [InlineData("system:serviceaccount:shop:nobody", "sharedruntime.io", "NoTenant")]
    [InlineData("system:serviceaccount:shop:shared", "sharedruntime.io", "NoTenant")]
    [InlineData("system:serviceaccount:other:orders", "sharedruntime.io", "NoTenant")]
    [InlineData("system:serviceaccount:shop:orders", "sharedruntime.io", "None")]
    public async Task OnlyAServiceAccountForOurAudienceThatOneTenantNamesIsAdmitted(string user, string audience, string expected)
    {
        var tokens = Tokens(new Reviewer(_ => new TokenReview(true, user, [audience], null)));
        Assert.Equal(Enum.Parse<ProjectedTokenRefusal>(expected), (await Resolve(tokens, Jwt(_time.GetUtcNow().AddHours(1)))).Refusal);
    }

    [Fact]
    public async Task ReviewsPerSourceAreBoundedAndOtherSourcesAreNotStarved()
    {
        var reviewer = new Reviewer(_ => new TokenReview(false, null, [], "unknown"));
        var tokens = Tokens(reviewer, perSecond: 3);
        var refusals = new List<ProjectedTokenRefusal>();
        for (var i = 0; i < 10; i++)
        {
            refusals.Add((await Resolve(tokens, Jwt(_time.GetUtcNow().AddHours(1)))).Refusal);
        }
        Assert.Equal(3, reviewer.Count);
        Assert.Equal(7, refusals.Count(r => r == ProjectedTokenRefusal.Throttled));

        var valid = new Reviewer(_ => Valid("shop", "orders"));
        var other = Tokens(valid, perSecond: 3);
        // Another address still gets its reviews.
        Assert.Equal(ProjectedTokenRefusal.Unauthenticated, (await tokens.ResolveAsync(Jwt(_time.GetUtcNow().AddHours(1)), IPAddress.Parse("10.0.0.2"), _snapshot, _pods)).Refusal);
        Assert.Equal(4, reviewer.Count);
        _time.Advance(TimeSpan.FromSeconds(1));
        await Resolve(tokens, Jwt(_time.GetUtcNow().AddHours(1)));
        Assert.Equal(5, reviewer.Count);
        Assert.NotNull((await Resolve(other, Jwt(_time.GetUtcNow().AddHours(1)))).Tenant);
    }

    [Fact]
    public async Task TheCacheIsBounded()
    {
        var tokens = Tokens(new Reviewer(_ => Valid("shop", "orders")), perSecond: 1000, maxEntries: 5);
        for (var i = 0; i < 20; i++)
        {
            Assert.NotNull((await Resolve(tokens, Jwt(_time.GetUtcNow().AddHours(1)))).Tenant);
        }
        Assert.InRange(tokens.CachedVerdicts, 1, 5);
    }

    [Fact]
    public async Task AFailedReviewIsNotCached()
    {
        var fail = true;
        var reviewer = new Reviewer(_ => fail ? throw new HttpRequestException("connection refused") : Valid("shop", "orders"));
        var tokens = Tokens(reviewer);
        var token = Jwt(_time.GetUtcNow().AddHours(1));
        Assert.Equal(ProjectedTokenRefusal.Unavailable, (await Resolve(tokens, token)).Refusal);
        fail = false;
        Assert.NotNull((await Resolve(tokens, token)).Tenant);
        Assert.Equal(2, reviewer.Count);
    }

    [Fact]
    public async Task WithoutAReviewerNothingIsReviewed()
    {
        var tokens = new ProjectedTokens(_time);
        Assert.False(tokens.Enabled);
        Assert.Equal(ProjectedTokenRefusal.Unauthenticated, (await Resolve(tokens, Jwt(_time.GetUtcNow().AddHours(1)))).Refusal);
    }

    [Fact]
    public void TheExpiryIsReadFromThePayload()
    {
        var at = new DateTimeOffset(2030, 1, 1, 0, 0, 0, TimeSpan.Zero);
        Assert.Equal(at, ProjectedTokens.ExpiryOf(Jwt(at)));
        Assert.Equal(DateTimeOffset.MaxValue, ProjectedTokens.ExpiryOf(FakeKubernetesApi.MakeJwt(new JsonObject { ["sub"] = "x" })));
        Assert.Null(ProjectedTokens.ExpiryOf(FakeKubernetesApi.MakeJwt(new JsonObject { ["exp"] = "soon" })));
        Assert.Null(ProjectedTokens.ExpiryOf("a.bm90LWpzb24.c"));
        Assert.Null(ProjectedTokens.ExpiryOf("a.!!!.c"));
        var deep = string.Concat(Enumerable.Repeat("[", 100)) + string.Concat(Enumerable.Repeat("]", 100));
        Assert.Null(ProjectedTokens.ExpiryOf($"a.{System.Buffers.Text.Base64Url.EncodeToString(System.Text.Encoding.UTF8.GetBytes($$"""{"x":{{deep}}}"""))}.c"));
    }

    private ValueTask<(TenantContext? Tenant, ProjectedTokenRefusal Refusal)> Resolve(ProjectedTokens tokens, string token) =>
        tokens.ResolveAsync(token, Source, _snapshot, _pods);

    private ProjectedTokens Tokens(Reviewer reviewer, int perSecond = 10, int maxEntries = 10_000)
    {
        var tokens = new ProjectedTokens(_time) { ReviewsPerSecondPerSource = perSecond, MaxEntries = maxEntries };
        tokens.Attach(reviewer);
        return tokens;
    }

    private static string Jwt(DateTimeOffset expires) =>
        FakeKubernetesApi.MakeJwt(new JsonObject { ["aud"] = new JsonArray("sharedruntime.io"), ["exp"] = expires.ToUnixTimeSeconds() });

    private static TokenReview Valid(string ns, string sa) => new(true, $"system:serviceaccount:{ns}:{sa}", ["sharedruntime.io"], null);

    private static RuntimeSnapshot Snapshot(params (string AppId, string Namespace, string ServiceAccount)[] tenants) =>
        new(1, tenants.Select(t => new TenantContext(new TenantConfig
        {
            Name = t.AppId,
            AppId = t.AppId,
            ApiToken = $"{t.AppId}-token",
            Limits = new TenantLimitsConfig(),
            Source = "test",
            Namespace = t.Namespace,
            Identity = new TenantIdentityConfig { Namespace = t.Namespace, ServiceAccountName = t.ServiceAccount },
        }, TenantLimits.Defaults, new TenantState(t.AppId))), [], ResourceSet.Empty);

    private sealed class Reviewer(Func<string, TokenReview> answer, Task? gate = null) : ITokenReviewer
    {
        private int _count;

        public int Count => Volatile.Read(ref _count);

        public async Task<TokenReview> ReviewAsync(string token, IReadOnlyList<string> audiences, CancellationToken cancellationToken)
        {
            Interlocked.Increment(ref _count);
            Assert.Equal(["sharedruntime.io"], audiences);
            if (gate is not null)
            {
                await gate.WaitAsync(cancellationToken);
            }
            return answer(token);
        }
    }
}
