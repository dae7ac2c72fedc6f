namespace SharedRuntime.Configuration;

/// <summary>
/// Kubernetes namespaces as Dapr has them. A resource read from the cluster carries its namespace and applies only to
/// the Tenants of that namespace; a resource file carries none (standalone is one namespace, and behaves as before).
/// A tenant is named on this runtime by its app-id qualified with its namespace (<c>app-id.namespace</c>, Dapr's form),
/// so the same app-id in two namespaces is two tenants with their own state keys, consumer groups and streams.
/// </summary>
internal static class ResourceNamespace
{
    /// <summary>Separates app-id and namespace in <c>app-id.namespace</c>; an app-id in the cluster may not contain it.</summary>
    public const char Separator = '.';

    /// <summary><c>app-id.namespace</c>, or the app-id alone outside Kubernetes.</summary>
    public static string Qualify(string appId, string? @namespace) => @namespace is null ? appId : $"{appId}{Separator}{@namespace}";

    /// <summary><c>namespace/name</c> for a namespaced resource's name, or the name alone outside Kubernetes.</summary>
    public static string Key(string name, string? @namespace) => @namespace is null ? name : $"{@namespace}/{name}";

    /// <summary>
    /// Where a tenant's state keys start: Dapr's <c>appid||</c> outside Kubernetes, and in the cluster Dapr's
    /// <c>keyPrefix: namespace</c> form <c>namespace.appid||</c>, so namespaces sharing one store never share keys.
    /// </summary>
    public static string StatePrefix(string appId, string? @namespace, string separator) =>
        @namespace is null ? appId + separator : $"{@namespace}{Separator}{appId}{separator}";

    public static bool Same(string? a, string? b) => string.Equals(a, b, StringComparison.Ordinal);

    /// <summary>
    /// The tenant a call to <paramref name="target"/> from a caller in <paramref name="callerNamespace"/> reaches: a
    /// bare app-id stays in the caller's namespace, <c>app-id.namespace</c> names another. Outside Kubernetes the
    /// target is taken as written.
    /// </summary>
    public static string Target(string target, string? callerNamespace) =>
        callerNamespace is null || target.Contains(Separator, StringComparison.Ordinal) ? target : Qualify(target, callerNamespace);
}
