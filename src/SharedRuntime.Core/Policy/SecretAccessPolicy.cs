using System.Collections.Frozen;
using SharedRuntime.Configuration;

namespace SharedRuntime.Policy;

/// <summary>
/// A tenant's <c>secrets.scopes</c>, compiled when its snapshot is built, decided as Dapr decides: a store without a
/// scope is open; in a scope, a non-empty <c>allowedSecrets</c> allows exactly its names, else a name in
/// <c>deniedSecrets</c> is denied, else <c>defaultAccess</c> decides. Names compare exactly (case-sensitive).
/// </summary>
public sealed class SecretAccessPolicy
{
    private readonly FrozenDictionary<string, Scope> _scopes;

    private SecretAccessPolicy(IReadOnlyList<SecretScopeConfig> scopes) =>
        _scopes = scopes.ToFrozenDictionary(static s => s.StoreName, static s => new Scope(s), StringComparer.Ordinal);

    /// <summary>The compiled scopes, or null when there are none (every secret of every store is open).</summary>
    public static SecretAccessPolicy? Compile(IReadOnlyList<SecretScopeConfig> scopes) => scopes.Count == 0 ? null : new SecretAccessPolicy(scopes);

    public bool IsAllowed(string storeName, string key) => !_scopes.TryGetValue(storeName, out var scope) || scope.IsAllowed(key);

    private sealed class Scope(SecretScopeConfig config)
    {
        private readonly bool _defaultAllow = config.DefaultAccess == AccessAction.Allow;
        private readonly FrozenSet<string> _allowed = config.AllowedSecrets.ToFrozenSet(StringComparer.Ordinal);
        private readonly FrozenSet<string> _denied = config.DeniedSecrets.ToFrozenSet(StringComparer.Ordinal);

        public bool IsAllowed(string key) =>
            _allowed.Count > 0 ? _allowed.Contains(key)
            : !_denied.Contains(key) && _defaultAllow;
    }
}
