using System.Buffers.Text;
using System.Collections.Concurrent;
using System.Net;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Logging;
using SharedRuntime.Diagnostics;

namespace SharedRuntime.Tenancy;

/// <summary>What the API server said of a token (a TokenReview's status).</summary>
internal sealed record TokenReview(bool Authenticated, string? Username, IReadOnlyList<string> Audiences, string? Error);

/// <summary>Asks the API server whether a token is valid for some audiences (a TokenReview).</summary>
internal interface ITokenReviewer
{
    Task<TokenReview> ReviewAsync(string token, IReadOnlyList<string> audiences, CancellationToken cancellationToken);
}

/// <summary>Why a projected token did not name a tenant.</summary>
internal enum ProjectedTokenRefusal
{
    None,

    /// <summary>Not valid, not for <see cref="ProjectedTokens.Audience"/>, expired, or not a service account's.</summary>
    Unauthenticated,

    /// <summary>Valid, but no one Tenant of its namespace names its service account (none, or several).</summary>
    NoTenant,

    /// <summary>Its Tenant binds its pods by labels, and the request does not come from one of them.</summary>
    ForeignAddress,

    /// <summary>Not reviewed: its source asked for too many reviews this second, or too many are in flight.</summary>
    Throttled,

    /// <summary>The review failed (the API server did not answer); nothing is cached.</summary>
    Unavailable,
}

/// <summary>
/// Tenants known by a projected ServiceAccount token (audience <see cref="Audience"/>) instead of their
/// <c>dapr-api-token</c>, in Kubernetes mode only (standalone attaches no reviewer, so nothing is ever reviewed). A token
/// the runtime does not know and that looks like a JWT is reviewed with the API server (a TokenReview); an authenticated
/// <c>system:serviceaccount:NS:SA</c> for this audience names the one Tenant of namespace NS whose
/// <c>spec.identity.serviceAccountName</c> is SA (none or several: refused). A Tenant that also selects its pods by labels
/// is admitted only from one of their addresses (<see cref="PodDirectory"/>).
/// Verdicts are cached by the token's SHA-256 (never the token): a valid one until the token's <c>exp</c>, at most
/// <see cref="MaxValidFor"/>; a refusal for <see cref="RefusalValidFor"/>. At most one review per token is in flight, at
/// most <see cref="ReviewsPerSecondPerSource"/> are started per source address and second and
/// <see cref="MaxReviewsInFlight"/> at once, so made-up tokens cannot hammer the API server: beyond, the request is
/// refused unreviewed, and such refusals are logged as one line per <see cref="ThrottleLogInterval"/>. The cache, the
/// sources tracked and the token's length are bounded. None of this runs for a token the runtime knows.
/// </summary>
public sealed class ProjectedTokens(TimeProvider time, ILogger? logger = null)
{
    /// <summary>The audience a projected token must be issued for.</summary>
    public const string Audience = "sharedruntime.io";

    /// <summary>A longer token is refused unreviewed.</summary>
    public const int MaxTokenChars = 8 * 1024;

    private const string ServiceAccountPrefix = "system:serviceaccount:";
    private static readonly string[] Audiences = [Audience];
    private static readonly IPAddress Overflow = IPAddress.IPv6None;

    private readonly ConcurrentDictionary<TokenKey, Verdict> _verdicts = new();
    private readonly ConcurrentDictionary<TokenKey, Task<Verdict?>> _inFlight = new();
    private readonly ConcurrentDictionary<IPAddress, SourceWindow> _sources = new();
    private volatile ITokenReviewer? _reviewer;
    private volatile ServiceAccountIndex? _index;
    private long _lastVerdictSweep;
    private long _lastSourceSweep;
    private long _throttled;
    private long _lastThrottleLog;

    /// <summary>The most verdicts kept.</summary>
    public int MaxEntries { get; init; } = 10_000;

    /// <summary>The longest a valid token's verdict is kept (less when the token expires sooner).</summary>
    public TimeSpan MaxValidFor { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>How long a refused token's verdict is kept.</summary>
    public TimeSpan RefusalValidFor { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Reviews started per source address and second; more are refused unreviewed.</summary>
    public int ReviewsPerSecondPerSource { get; init; } = 10;

    /// <summary>Reviews waiting on the API server at once; more are refused unreviewed.</summary>
    public int MaxReviewsInFlight { get; init; } = 64;

    /// <summary>The most source addresses tracked; beyond, the others share one allowance.</summary>
    public int MaxSources { get; init; } = 4096;

    /// <summary>How long a review may take.</summary>
    public TimeSpan ReviewTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Refusals of unreviewed tokens are logged as one line per interval, with their count.</summary>
    public static TimeSpan ThrottleLogInterval { get; } = TimeSpan.FromSeconds(10);

    /// <summary>True when tokens can be reviewed (Kubernetes mode).</summary>
    public bool Enabled => _reviewer is not null;

    /// <summary>How many verdicts are cached.</summary>
    public int CachedVerdicts => _verdicts.Count;

    internal void Attach(ITokenReviewer? reviewer) => _reviewer = reviewer;

    /// <summary>Three non-empty base64url segments separated by dots, no longer than <see cref="MaxTokenChars"/>.</summary>
    public static bool LooksLikeJwt(ReadOnlySpan<char> token)
    {
        if (token.Length is < 5 or > MaxTokenChars)
        {
            return false;
        }
        var dots = 0;
        var segment = 0;
        foreach (var c in token)
        {
            if (c == '.')
            {
                if (segment == 0 || ++dots > 2)
                {
                    return false;
                }
                segment = 0;
            }
            else if (char.IsAsciiLetterOrDigit(c) || c is '-' or '_')
            {
                segment++;
            }
            else
            {
                return false;
            }
        }
        return dots == 2 && segment > 0;
    }

    /// <summary>The tenant <paramref name="token"/> names as a projected ServiceAccount token, or why none.</summary>
    internal async ValueTask<(TenantContext? Tenant, ProjectedTokenRefusal Refusal)> ResolveAsync(
        string token, IPAddress? remote, RuntimeSnapshot snapshot, PodDirectory pods)
    {
        if (_reviewer is not { } reviewer || !LooksLikeJwt(token))
        {
            return (null, ProjectedTokenRefusal.Unauthenticated);
        }
        var key = KeyOf(token);
        var now = time.GetUtcNow();
        if (!_verdicts.TryGetValue(key, out var verdict) || verdict.Until <= now)
        {
            if (_inFlight.TryGetValue(key, out var pending))
            {
                verdict = await pending.ConfigureAwait(false);
            }
            else if (ExpiryOf(token) is not { } expires)
            {
                // Not a JWT with a readable payload: the API server would refuse it too.
                verdict = Store(key, Verdict.Refused(now + RefusalValidFor));
            }
            else if (expires <= now)
            {
                return (null, ProjectedTokenRefusal.Unauthenticated);
            }
            else if (_inFlight.Count >= MaxReviewsInFlight || !TakeReview(remote))
            {
                Throttled(remote);
                return (null, ProjectedTokenRefusal.Throttled);
            }
            else
            {
                verdict = await ReviewAsync(reviewer, token, key, expires).ConfigureAwait(false);
            }
            if (verdict is null)
            {
                return (null, ProjectedTokenRefusal.Unavailable);
            }
        }
        return TenantOf(verdict, remote, snapshot, pods);
    }

    private static TokenKey KeyOf(string token)
    {
        // Only base64url characters and dots: one byte each.
        Span<byte> ascii = stackalloc byte[MaxTokenChars];
        var length = Encoding.ASCII.GetBytes(token, ascii);
        return TokenKey.FromUtf8(ascii[..length]);
    }

    /// <summary>Reviews <paramref name="token"/> once, shared with any other request for the same token meanwhile; null when the review failed.</summary>
    private async Task<Verdict?> ReviewAsync(ITokenReviewer reviewer, string token, TokenKey key, DateTimeOffset expires)
    {
        var mine = new TaskCompletionSource<Verdict?>(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!_inFlight.TryAdd(key, mine.Task))
        {
            return _inFlight.TryGetValue(key, out var pending) ? await pending.ConfigureAwait(false) : null;
        }
        Verdict? verdict = null;
        try
        {
            using var timeout = new CancellationTokenSource(ReviewTimeout, time);
            var review = await reviewer.ReviewAsync(token, Audiences, timeout.Token).ConfigureAwait(false);
            verdict = Store(key, Judge(review, expires, time.GetUtcNow()));
        }
        catch (Exception ex) when (ex is not OutOfMemoryException)
        {
            if (logger is not null)
            {
                CoreLog.TokenReviewFailed(logger, ex.Message);
            }
        }
        finally
        {
            _inFlight.TryRemove(key, out _);
            mine.SetResult(verdict);
        }
        return verdict;
    }

    /// <summary>The verdict on a review: valid only when authenticated, for <see cref="Audience"/>, as a service account.</summary>
    private Verdict Judge(TokenReview review, DateTimeOffset expires, DateTimeOffset now)
    {
        if (!review.Authenticated || !review.Audiences.Contains(Audience, StringComparer.Ordinal) ||
            review.Username is not { } user || !user.StartsWith(ServiceAccountPrefix, StringComparison.Ordinal))
        {
            return Verdict.Refused(now + RefusalValidFor);
        }
        var parts = user[ServiceAccountPrefix.Length..].Split(':');
        if (parts is not [{ Length: > 0 } ns, { Length: > 0 } sa])
        {
            return Verdict.Refused(now + RefusalValidFor);
        }
        var until = now + MaxValidFor;
        return new Verdict(ns, sa, expires < until ? expires : until);
    }

    /// <summary>The token's <c>exp</c> claim; <see cref="DateTimeOffset.MaxValue"/> without one; null when the payload is not JSON.</summary>
    internal static DateTimeOffset? ExpiryOf(string token)
    {
        var first = token.IndexOf('.', StringComparison.Ordinal);
        var second = token.IndexOf('.', first + 1);
        byte[] payload;
        try
        {
            payload = Base64Url.DecodeFromChars(token.AsSpan(first + 1, second - first - 1));
        }
        catch (FormatException)
        {
            return null;
        }
        try
        {
            using var document = JsonDocument.Parse(payload, new JsonDocumentOptions { MaxDepth = 16 });
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                return null;
            }
            if (!document.RootElement.TryGetProperty("exp", out var exp))
            {
                return DateTimeOffset.MaxValue;
            }
            return exp.ValueKind == JsonValueKind.Number && exp.TryGetInt64(out var seconds) && seconds is > 0 and < 253_402_300_799
                ? DateTimeOffset.FromUnixTimeSeconds(seconds)
                : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>Keeps <paramref name="verdict"/>; when the cache is full even of live verdicts, a refusal is not kept and a valid one displaces others.</summary>
    private Verdict Store(TokenKey key, Verdict verdict)
    {
        if (_verdicts.Count >= MaxEntries)
        {
            var now = time.GetUtcNow();
            if (Due(ref _lastVerdictSweep, TimeSpan.FromSeconds(1)))
            {
                foreach (var (k, v) in _verdicts)
                {
                    if (v.Until <= now)
                    {
                        _verdicts.TryRemove(k, out _);
                    }
                }
            }
            if (_verdicts.Count >= MaxEntries)
            {
                if (!verdict.Valid)
                {
                    return verdict;
                }
                foreach (var (k, _) in _verdicts)
                {
                    if (_verdicts.Count < MaxEntries)
                    {
                        break;
                    }
                    _verdicts.TryRemove(k, out _);
                }
            }
        }
        _verdicts[key] = verdict;
        return verdict;
    }

    /// <summary>Takes one review from <paramref name="remote"/>'s allowance for this second; false when it has none left.</summary>
    private bool TakeReview(IPAddress? remote)
    {
        var source = remote is null ? Overflow : remote.IsIPv4MappedToIPv6 ? remote.MapToIPv4() : remote;
        if (!_sources.TryGetValue(source, out var window))
        {
            if (_sources.Count >= MaxSources)
            {
                if (Due(ref _lastSourceSweep, TimeSpan.FromSeconds(1)))
                {
                    var stale = time.GetTimestamp() - (2 * time.TimestampFrequency);
                    foreach (var (address, w) in _sources)
                    {
                        if (w.Start < stale)
                        {
                            _sources.TryRemove(address, out _);
                        }
                    }
                }
                if (_sources.Count >= MaxSources)
                {
                    source = Overflow;
                }
            }
            window = _sources.GetOrAdd(source, static _ => new SourceWindow());
        }
        return window.Take(time.GetTimestamp(), time.TimestampFrequency, ReviewsPerSecondPerSource);
    }

    private void Throttled(IPAddress? remote)
    {
        var count = Interlocked.Increment(ref _throttled);
        if (logger is not null && Due(ref _lastThrottleLog, ThrottleLogInterval))
        {
            count = Interlocked.Exchange(ref _throttled, 0);
            CoreLog.TokenReviewsThrottled(logger, count, (int)ThrottleLogInterval.TotalSeconds, remote?.ToString() ?? "unknown", ReviewsPerSecondPerSource, MaxReviewsInFlight);
        }
    }

    /// <summary>True at most once per <paramref name="interval"/> across threads.</summary>
    private bool Due(ref long last, TimeSpan interval)
    {
        var now = time.GetTimestamp();
        var seen = Volatile.Read(ref last);
        return (seen == 0 || time.GetElapsedTime(seen, now) >= interval) && Interlocked.CompareExchange(ref last, now, seen) == seen;
    }

    private (TenantContext?, ProjectedTokenRefusal) TenantOf(Verdict verdict, IPAddress? remote, RuntimeSnapshot snapshot, PodDirectory pods)
    {
        if (!verdict.Valid)
        {
            return (null, ProjectedTokenRefusal.Unauthenticated);
        }
        var index = _index;
        if (index is null || !ReferenceEquals(index.Snapshot, snapshot))
        {
            index = new ServiceAccountIndex(snapshot);
            _index = index;
        }
        if (!index.ByServiceAccount.TryGetValue((verdict.Namespace!, verdict.ServiceAccount!), out var tenant) || tenant is null)
        {
            return (null, ProjectedTokenRefusal.NoTenant);
        }
        if (tenant.Config.Identity!.MatchLabels.Count > 0 && pods.Admit(tenant, remote) is null)
        {
            return (null, ProjectedTokenRefusal.ForeignAddress);
        }
        return (tenant, ProjectedTokenRefusal.None);
    }

    /// <summary>A verdict: the service account a valid token names, until when it holds.</summary>
    private sealed record Verdict(string? Namespace, string? ServiceAccount, DateTimeOffset Until)
    {
        public bool Valid => ServiceAccount is not null;

        public static Verdict Refused(DateTimeOffset until) => new(null, null, until);
    }

    /// <summary>One snapshot's Tenants by the service account their identity names; null where several name the same one.</summary>
    private sealed class ServiceAccountIndex
    {
        public ServiceAccountIndex(RuntimeSnapshot snapshot)
        {
            Snapshot = snapshot;
            var map = new Dictionary<(string, string), TenantContext?>();
            foreach (var tenant in snapshot.Tenants.Values)
            {
                if (tenant.Config.Identity is { ServiceAccountName: { } sa } identity)
                {
                    var key = (identity.Namespace, sa);
                    map[key] = map.ContainsKey(key) ? null : tenant;
                }
            }
            ByServiceAccount = map;
        }

        public RuntimeSnapshot Snapshot { get; }

        public Dictionary<(string Namespace, string ServiceAccount), TenantContext?> ByServiceAccount { get; }
    }

    /// <summary>Reviews started by one source in the current one-second window.</summary>
    private sealed class SourceWindow
    {
        private readonly Lock _gate = new();
        private int _count;

        public long Start { get; private set; }

        public bool Take(long now, long frequency, int perSecond)
        {
            lock (_gate)
            {
                if (now - Start >= frequency)
                {
                    Start = now;
                    _count = 0;
                }
                return ++_count <= perSecond;
            }
        }
    }
}
