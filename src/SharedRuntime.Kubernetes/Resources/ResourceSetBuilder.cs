using System.Text.Json;
using Microsoft.Extensions.Logging;
using SharedRuntime.Configuration;
using SharedRuntime.Kubernetes.Watching;

namespace SharedRuntime.Kubernetes.Resources;

/// <summary>
/// Turns the cached API objects into a <see cref="ResourceSet"/> with the same parser as resource files. Secrets are
/// resolved in the object's own namespace: a Tenant's <c>apiToken.secretKeyRef</c>, and a Component's
/// <c>secretKeyRef</c> metadata when it names no <c>auth.secretStore</c> (or names <c>kubernetes</c>), as Dapr does on
/// Kubernetes. Unlike a folder, the cluster is shared by many authors: an object that cannot be used is left out with
/// a warning and the rest still applies, so one bad Tenant never holds back the others. When two objects clash
/// (the same app-id in one namespace, or the same token anywhere), the one created first is kept. Every object
/// keeps its namespace and applies only there (see <see cref="ResourceNamespace"/>); the TenantLimitPolicies of the
/// cluster give each Tenant its namespace's ceiling. A Tenant that is refused or whose limits are clamped is noticed
/// (<see cref="TenantNotice"/>), for a Kubernetes Event on it.
/// </summary>
internal sealed class ResourceSetBuilder(KubernetesSourceOptions options, ILogger logger)
{
    private HashSet<string> _reported = new(StringComparer.Ordinal);
    private HashSet<(string Namespace, string Name)> _secretStores = [];

    /// <summary>The secret store Components by namespace: a Component's auth.secretStore may name only one of its own namespace.</summary>
    private static HashSet<(string, string)> SecretStores(IReadOnlyList<(WatchedKind Kind, IReadOnlyList<JsonElement> Objects)> kinds) =>
        kinds.Where(k => k.Kind.Kind == ComponentConfig.KindName).SelectMany(k => k.Objects)
            .Where(o => o.TryGetProperty("spec", out var spec) && spec.ValueKind == JsonValueKind.Object && spec.TryGetProperty("type", out var type) &&
                        type.ValueKind == JsonValueKind.String && type.GetString()!.StartsWith("secretstores.", StringComparison.Ordinal))
            .Select(o => (o.GetProperty("metadata").TryGetProperty("namespace", out var ns) ? ns.GetString() ?? "" : "", o.GetProperty("metadata").GetProperty("name").GetString() ?? ""))
            .ToHashSet();

    /// <param name="CacheTree">What the fail-static cache keeps: the object with its API token resolved (the cache keeps
    /// its hash) but every other Secret reference as written, so no other Secret value reaches the disk.</param>
    private sealed record Candidate(RawResource Raw, string Path, object Tree, object CacheTree, string Uid, string ResourceVersion);

    public (ResourceSet Set, IReadOnlyList<TenantNotice> Notices) Build(IReadOnlyList<(WatchedKind Kind, IReadOnlyList<JsonElement> Objects)> kinds, SecretIndex secrets)
    {
        var reported = new HashSet<string>(StringComparer.Ordinal);
        _secretStores = SecretStores(kinds);
        var candidates = new List<Candidate>();
        var ceilings = new LimitPolicyIndex(ObjectsOf(kinds, WatchedKind.TenantLimitPolicies), ObjectsOf(kinds, WatchedKind.Namespaces),
            (resource, problem) => Report(reported, resource, problem));
        foreach (var (kind, objects) in kinds)
        {
            if (kind.ClusterScoped)
            {
                continue;
            }
            // Oldest first: when two objects claim the same app-id or token, the one created first keeps it.
            foreach (var obj in objects.OrderBy(CreationTimestamp, StringComparer.Ordinal).ThenBy(NamespacedName, StringComparer.Ordinal))
            {
                candidates.Add(ToCandidate(kind, obj, secrets, reported));
            }
        }

        ResourceSet set;
        while (true)
        {
            try
            {
                set = ResourceParser.Parse(candidates.Select(c => c.Raw), static _ => null, static (_, _) => null);
                break;
            }
            catch (ResourceException ex) when (Culprit(candidates, ex) is { } culprit)
            {
                candidates.Remove(culprit);
                Report(reported, culprit.Path, ex.Message);
            }
        }

        var rejected = new HashSet<string>(StringComparer.Ordinal);
        if (options.RejectComponent is { } reject)
        {
            foreach (var component in set.Components)
            {
                if (reject(component) is { } problem)
                {
                    rejected.Add(PathOf(component));
                    Report(reported, component.Source, problem);
                }
            }
        }
        var tenants = set.Tenants.Select(t => ceilings.For(t.Namespace) is { } ceiling ? t with { Ceiling = ceiling } : t).ToList();
        var notices = Notices(candidates, set.RejectedTenants, tenants, reported);
        _reported = reported;
        var kept = candidates.Where(c => !(c.Raw.Kind == ComponentConfig.KindName && rejected.Contains(c.Path)));
        return (set with
        {
            Tenants = tenants,
            Components = set.Components.Where(c => !rejected.Contains(PathOf(c))).ToList(),
            Documents = kept.Select(c => new ResourceDocument(c.Path, ResourceTree.ToJson(c.CacheTree))).ToList(),
        }, notices);
    }

    private static IReadOnlyList<JsonElement> ObjectsOf(IReadOnlyList<(WatchedKind Kind, IReadOnlyList<JsonElement> Objects)> kinds, WatchedKind kind) =>
        kinds.FirstOrDefault(k => k.Kind == kind).Objects ?? [];

    private static string PathOf(ComponentConfig component) =>
        $"kubernetes/{component.Namespace}/{WatchedKind.Components.Plural}.{WatchedKind.Components.Version}/{component.Name}";

    /// <summary>
    /// What to tell each Tenant's owners: why a refused Tenant was refused, and which limits a ceiling clamped (also
    /// logged once per change, as other problems are).
    /// </summary>
    private List<TenantNotice> Notices(List<Candidate> candidates, IReadOnlyList<ResourceException> refused, List<TenantConfig> tenants, HashSet<string> reported)
    {
        var notices = new List<TenantNotice>();
        var byDocument = candidates.Where(c => c.Raw.Kind == TenantConfig.KindName)
            .GroupBy(c => (c.Raw.File, c.Raw.Document)).ToDictionary(g => g.Key, g => g.Last());
        foreach (var error in refused)
        {
            if (byDocument.TryGetValue((error.File, error.Document), out var candidate))
            {
                var why = error.Field is null ? error.Problem : $"{error.Field}: {error.Problem}";
                notices.Add(new TenantNotice(candidate.Raw.Namespace ?? "", candidate.Raw.Name, candidate.Uid, candidate.ResourceVersion, TenantNotice.Refused,
                    $"Tenant refused, not served by this runtime: {why}"));
            }
        }
        foreach (var tenant in tenants)
        {
            if (tenant.Ceiling is not { } ceiling || ceiling.Clamps(tenant.Limits) is not { Count: > 0 } clamps ||
                !byDocument.TryGetValue(($"kubernetes namespace {tenant.Namespace}", $"{TenantConfig.KindName}/{tenant.Name}"), out var candidate))
            {
                continue;
            }
            var policies = string.Join(", ", ceiling.Policies);
            var message = $"limits clamped by TenantLimitPolicy {policies}: {string.Join("; ", clamps)}";
            var entry = $"{candidate.Path}|clamped|{candidate.ResourceVersion}|{message}";
            if (reported.Add(entry) && !_reported.Contains(entry))
            {
                KubernetesLog.TenantLimitsClamped(logger, candidate.Path, policies, string.Join("; ", clamps));
            }
            notices.Add(new TenantNotice(tenant.Namespace ?? "", tenant.Name, candidate.Uid, candidate.ResourceVersion, TenantNotice.Clamped, message));
        }
        return notices;
    }

    /// <summary>The object an error is about: the later of two that clash, since the parser reports the second.</summary>
    private static Candidate? Culprit(List<Candidate> candidates, ResourceException ex) =>
        candidates.LastOrDefault(c => c.Raw.File == ex.File && c.Raw.Document == ex.Document);

    private Candidate ToCandidate(WatchedKind kind, JsonElement obj, SecretIndex secrets, HashSet<string> reported)
    {
        var tree = Normalized(kind, obj, out var ns, out var name);
        var cacheTree = tree;
        var metadata = obj.TryGetProperty("metadata", out var m) && m.ValueKind == JsonValueKind.Object ? m : default;
        var uid = Text(metadata, "uid");
        var resourceVersion = Text(metadata, "resourceVersion");
        var path = $"kubernetes/{ns}/{kind.Plural}.{kind.Version}/{name}";
        if (kind.Kind == TenantConfig.KindName)
        {
            cacheTree = Normalized(kind, obj, out _, out _);
            ResolveToken(ObjectTree.Map(cacheTree, "spec"), "apiToken", ns, secrets);
            ResolveTenantToken(tree, ns, secrets);
        }
        else if (kind.Kind == ComponentConfig.KindName)
        {
            cacheTree = Normalized(kind, obj, out _, out _);
            if (ObjectTree.Text(ObjectTree.Map(cacheTree, "auth"), "secretStore") == "kubernetes")
            {
                // Read back from the cache, the references must not resolve through a store that took the name.
                cacheTree["auth"] = new Dictionary<object, object?>();
            }
            ResolveComponentSecrets(tree, ns, path, secrets, reported);
        }
        else if (kind.Kind == HttpEndpointConfig.KindName)
        {
            cacheTree = Normalized(kind, obj, out _, out _); // Secret references as written: no header value reaches the disk
            ResolveHeaderSecrets(tree, ns, secrets);
        }
        var raw = new RawResource
        {
            File = $"kubernetes namespace {ns}",
            Index = 0,
            ApiVersion = kind.ApiVersion,
            Kind = kind.Kind,
            Name = name,
            Root = tree,
            Namespace = ns,
        };
        return new Candidate(raw, path, tree, cacheTree, uid, resourceVersion);
    }

    /// <summary>The object as the parser reads it: its kind, and of its metadata the name and namespace only.</summary>
    private static Dictionary<object, object?> Normalized(WatchedKind kind, JsonElement obj, out string ns, out string name)
    {
        var tree = ObjectTree.From(obj) as Dictionary<object, object?> ?? [];
        var metadata = ObjectTree.Map(tree, "metadata") ?? [];
        ns = ObjectTree.Text(metadata, "namespace") ?? "";
        name = ObjectTree.Text(metadata, "name") ?? "";
        // The parser reads only the name; the rest of metadata (managedFields, annotations) is left behind.
        tree["metadata"] = new Dictionary<object, object?> { ["name"] = name, ["namespace"] = ns };
        tree["apiVersion"] = kind.ApiVersion;
        tree["kind"] = kind.Kind;
        return tree;
    }

    /// <summary>
    /// Replaces the <c>secretKeyRef</c> of <c>spec.apiToken</c> and <c>spec.appChannel.appApiToken</c> with the value when
    /// the Secret has it; otherwise the parser says what is missing.
    /// </summary>
    private static void ResolveTenantToken(Dictionary<object, object?> tree, string ns, SecretIndex secrets)
    {
        var spec = ObjectTree.Map(tree, "spec");
        ResolveToken(spec, "apiToken", ns, secrets);
        ResolveToken(ObjectTree.Map(spec, "appChannel"), "appApiToken", ns, secrets);
    }

    private static void ResolveToken(Dictionary<object, object?>? parent, string field, string ns, SecretIndex secrets)
    {
        var reference = ObjectTree.Map(ObjectTree.Map(parent, field), "secretKeyRef");
        if (parent is null || reference is null || ObjectTree.Text(reference, "name") is not { } name || ObjectTree.Text(reference, "key") is not { } key)
        {
            return;
        }
        if (secrets.Find(ns, name, key) is { } token)
        {
            parent[field] = new Dictionary<object, object?> { ["value"] = token };
        }
    }

    /// <summary>Replaces the <c>secretKeyRef</c> of each HTTPEndpoint header with its value when the Secret has it; otherwise the parser says what is missing.</summary>
    private static void ResolveHeaderSecrets(Dictionary<object, object?> tree, string ns, SecretIndex secrets)
    {
        if (ObjectTree.Map(tree, "spec") is not { } spec || !spec.TryGetValue("headers", out var items) || items is not List<object?> list)
        {
            return;
        }
        for (var i = 0; i < list.Count; i++)
        {
            var reference = ObjectTree.Map(list[i], "secretKeyRef");
            if (reference is not null && ObjectTree.Text(list[i], "name") is { } header && ObjectTree.Text(reference, "name") is { } secretName &&
                ObjectTree.Text(reference, "key") is { } key && secrets.Find(ns, secretName, key) is { } value)
            {
                list[i] = new Dictionary<object, object?> { ["name"] = header, ["value"] = value };
            }
        }
    }

    private void ResolveComponentSecrets(Dictionary<object, object?> tree, string ns, string path, SecretIndex secrets, HashSet<string> reported)
    {
        var store = ObjectTree.Text(ObjectTree.Map(tree, "auth"), "secretStore");
        if (store is not null && store != "kubernetes")
        {
            if (!_secretStores.Contains((ns, store)))
            {
                // A store of another namespace (or none): its references stay unresolved and the component says so.
                tree["auth"] = new Dictionary<object, object?>();
                Report(reported, path, $"auth.secretStore '{store}' is not a secret store of namespace {ns}");
            }
            return;
        }
        if (store is not null)
        {
            tree["auth"] = new Dictionary<object, object?>();
        }
        if (ObjectTree.Map(tree, "spec") is not { } spec || !spec.TryGetValue("metadata", out var items) || items is not List<object?> list)
        {
            return;
        }
        for (var i = 0; i < list.Count; i++)
        {
            var reference = ObjectTree.Map(list[i], "secretKeyRef");
            var itemName = ObjectTree.Text(list[i], "name");
            if (reference is null || itemName is null || ObjectTree.Text(reference, "name") is not { } secretName)
            {
                continue;
            }
            var key = ObjectTree.Text(reference, "key") ?? secretName;
            if (secrets.Find(ns, secretName, key) is { } value)
            {
                list[i] = new Dictionary<object, object?> { ["name"] = itemName, ["value"] = value };
            }
            else if (reported.Add($"{path}|secret|{itemName}") && !_reported.Contains($"{path}|secret|{itemName}"))
            {
                KubernetesLog.ComponentSecretMissing(logger, path, itemName, secretName, key, ns);
            }
        }
    }

    private void Report(HashSet<string> reported, string resource, string problem)
    {
        var entry = $"{resource}|{problem}";
        if (reported.Add(entry) && !_reported.Contains(entry))
        {
            KubernetesLog.ResourceIgnored(logger, resource, problem);
        }
    }

    private static string Text(JsonElement metadata, string field) =>
        metadata.ValueKind == JsonValueKind.Object && metadata.TryGetProperty(field, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() ?? "" : "";

    /// <summary>RFC 3339 in UTC, so ordinal order is time order.</summary>
    private static string CreationTimestamp(JsonElement obj) =>
        obj.TryGetProperty("metadata", out var m) && m.TryGetProperty("creationTimestamp", out var t) ? t.GetString() ?? "" : "";

    private static string NamespacedName(JsonElement obj) =>
        obj.TryGetProperty("metadata", out var m)
            ? $"{(m.TryGetProperty("namespace", out var ns) ? ns.GetString() : "")}/{(m.TryGetProperty("name", out var n) ? n.GetString() : "")}"
            : "";
}
