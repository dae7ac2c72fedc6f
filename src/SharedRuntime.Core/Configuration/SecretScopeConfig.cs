namespace SharedRuntime.Configuration;

/// <summary>
/// One entry of a Configuration's <c>secrets.scopes</c>: which secrets of store <see cref="StoreName"/> the app may read.
/// </summary>
public sealed record SecretScopeConfig(string StoreName, AccessAction DefaultAccess, IReadOnlyList<string> AllowedSecrets, IReadOnlyList<string> DeniedSecrets);
