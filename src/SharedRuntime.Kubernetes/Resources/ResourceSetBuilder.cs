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
/// A build turns again only the objects that changed since the last one: an object with the same uid and
/// resourceVersion, whose Secret values and secret store are what they were, keeps its candidate, and with it what the
/// parsers made of it (<see cref="RawResource.Parsed"/>) and its text for the last-good cache. An object gone from the
/// cluster is gone from the cache with the build that no longer sees it.
/// </summary>
internal sealed class ResourceSetBuilder(KubernetesSourceOptions options, ILogger logger)
{
    private HashSet<string> _reported = new(StringComparer.Ordinal);
    private HashSet<(string Namespace, string Name)> _secretStores = [];
    private Dictionary<string, Candidate> _candidates = new(StringComparer.Ordinal);
    private readonly ResourceParser.UniquenessTables _unique = new();
    private Dictionary<string, LimitCeiling> _ceilings = new(StringComparer.Ordinal);
    private Dictionary<TenantConfig, TenantConfig> _withCeiling = new(ReferenceEqualityComparer.Instance);

    /// <summary>The secret store Components by namespace: a Component's auth.secretStore may name only one of its own namespace.</summary>
    private static HashSet<(string, string)> SecretStores(IReadOnlyList<(WatchedKind Kind, IReadOnlyList<JsonElement> Objects)> kinds) =>
        kinds.Where(k => k.Kind.Kind == ComponentConfig.KindName).SelectMany(k => k.Objects)
            .Where(o => o.TryGetProperty("spec", out var spec) && spec.ValueKind == JsonValueKind.Object && spec.TryGetProperty("type", out var type) &&
                        type.ValueKind == JsonValueKind.String && type.GetString()!.StartsWith("secretstores.", StringComparison.Ordinal))
            .Select(o => (o.GetProperty("metadata").TryGetProperty("namespace", out var ns) ? ns.GetString() ?? "" : "", o.GetProperty("metadata").GetProperty("name").GetString() ?? ""))
            .ToHashSet();

    /// <summary>
    /// One API object as the parser reads it. <paramref name="Document"/> is what the fail-static cache keeps: the object
    /// with its API token resolved (the cache keeps its hash) but every other Secret reference as written, so no other
    /// Secret value reaches the disk. <paramref name="Reads"/> is what the object was resolved with; <paramref name="Reports"/>
    /// the problems reported about it, kept reported while it is reused.
    /// </summary>
    private sealed record Candidate(RawResource Raw, string Path, ResourceDocument Document, string Uid, string ResourceVersion, string CreatedAt,
        string NamespacedName, ResolvedReads Reads, List<string> Reports)
    {
        /// <summary>Whether <paramref name="obj"/> is the object this was made from and resolves as it did.</summary>
        public bool StillHolds(JsonElement metadata, SecretIndex secrets, HashSet<(string, string)> secretStores) =>
            Uid.Length > 0 && ResourceVersion.Length > 0 && metadata.TryGetProperty("resourceVersion", out var version) &&
            version.ValueKind == JsonValueKind.String && version.ValueEquals(ResourceVersion) && Reads.Same(secrets, secretStores);
    }

    /// <summary>
    /// The Secret keys and secret stores one object looked up while it was resolved, with what each gave. It reads through
    /// the build's index only while the object is resolved (<see cref="Detach"/>): a kept candidate holds the values it
    /// used, never a whole index of an older build.
    /// </summary>
    private sealed class ResolvedReads(SecretIndex secrets, HashSet<(string, string)> secretStores)
    {
        private SecretIndex? _index = secrets;
        private HashSet<(string, string)>? _storeIndex = secretStores;
        private List<(string Namespace, string Name, string Key, string? Value)>? _secrets;
        private List<(string Namespace, string Store, bool Known)>? _stores;

        public string? Find(string ns, string name, string key)
        {
            var value = (_index ?? throw new InvalidOperationException("resolved already")).Find(ns, name, key);
            (_secrets ??= []).Add((ns, name, key, value));
            return value;
        }

        public bool IsSecretStore(string ns, string store)
        {
            var known = (_storeIndex ?? throw new InvalidOperationException("resolved already")).Contains((ns, store));
            (_stores ??= []).Add((ns, store, known));
            return known;
        }

        public void Detach()
        {
            _index = null;
            _storeIndex = null;
        }

        public bool Same(SecretIndex now, HashSet<(string, string)> storesNow)
        {
            foreach (var (ns, name, key, value) in _secrets ?? [])
            {
                if (!string.Equals(now.Find(ns, name, key), value, StringComparison.Ordinal))
                {
                    return false;
                }
            }
            foreach (var (ns, store, known) in _stores ?? [])
            {
                if (storesNow.Contains((ns, store)) != known)
                {
                    return false;
                }
            }
            return true;
        }
    }

    public (ResourceSet Set, IReadOnlyList<TenantNotice> Notices) Build(IReadOnlyList<(WatchedKind Kind, IReadOnlyList<JsonElement> Objects)> kinds, SecretIndex secrets)
    {
        var reported = new HashSet<string>(StringComparer.Ordinal);
        _secretStores = SecretStores(kinds);
        var candidates = new List<Candidate>();
        var known = new Dictionary<string, Candidate>(_candidates.Count + 1, StringComparer.Ordinal);
        var ceilings = new LimitPolicyIndex(ObjectsOf(kinds, WatchedKind.TenantLimitPolicies), ObjectsOf(kinds, WatchedKind.Namespaces),
            (resource, problem) => Report(reported, resource, problem));
        foreach (var (kind, objects) in kinds)
        {
            if (kind.ClusterScoped)
            {
                continue;
            }
            var ofKind = new List<Candidate>(objects.Count);
            foreach (var obj in objects)
            {
                var metadata = obj.TryGetProperty("metadata", out var m) && m.ValueKind == JsonValueKind.Object ? m : default;
                var uid = Text(metadata, "uid");
                Candidate candidate;
                if (uid.Length > 0 && _candidates.TryGetValue(uid, out var cached) && cached.StillHolds(metadata, secrets, _secretStores))
                {
                    // Unchanged since the last build: the same raw document, so the parser reuses what it made of it.
                    candidate = cached;
                    foreach (var entry in candidate.Reports)
                    {
                        reported.Add(entry);
                    }
                }
                else
                {
                    candidate = ToCandidate(kind, obj, secrets, reported);
                }
                if (candidate.Uid.Length > 0)
                {
                    known[candidate.Uid] = candidate;
                }
                ofKind.Add(candidate);
            }
            // Oldest first: when two objects claim the same app-id or token, the one created first keeps it.
            ofKind.Sort(static (a, b) =>
            {
                var byTime = string.CompareOrdinal(a.CreatedAt, b.CreatedAt);
                return byTime != 0 ? byTime : string.CompareOrdinal(a.NamespacedName, b.NamespacedName);
            });
            candidates.AddRange(ofKind);
        }
        _candidates = known;

        ResourceSet set;
        while (true)
        {
            try
            {
                // Secret references are resolved into each object's tree here; one left there names a key that does not exist.
                set = ResourceParser.Parse(candidates.Select(c => c.Raw), static _ => null, ResourceParser.ResolvedBySource, false, _unique);
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
        var tenants = WithCeilings(set.Tenants, ceilings);
        var notices = Notices(candidates, set.RejectedTenants, tenants, reported);
        _reported = reported;
        var documents = new List<ResourceDocument>(candidates.Count);
        foreach (var candidate in candidates)
        {
            // What the parsers made of the object is kept with it; its tree is not needed again.
            candidate.Raw.Release();
            if (!(candidate.Raw.Kind == ComponentConfig.KindName && rejected.Contains(candidate.Path)))
            {
                documents.Add(candidate.Document);
            }
        }
        return (set with
        {
            Tenants = tenants,
            Components = rejected.Count == 0 ? set.Components : set.Components.Where(c => !rejected.Contains(PathOf(c))).ToList(),
            Documents = documents,
        }, notices);
    }

    /// <summary>
    /// Each Tenant with its namespace's ceiling. A ceiling the same as the last build's is that build's object, and a
    /// Tenant given the same ceiling again is the same object as then: an unchanged Tenant under a TenantLimitPolicy stays
    /// unchanged, so it keeps its context and limiter state across reloads.
    /// </summary>
    private List<TenantConfig> WithCeilings(IReadOnlyList<TenantConfig> parsed, LimitPolicyIndex index)
    {
        var ceilings = new Dictionary<string, LimitCeiling>(StringComparer.Ordinal);
        var withCeiling = new Dictionary<TenantConfig, TenantConfig>(ReferenceEqualityComparer.Instance);
        var tenants = new List<TenantConfig>(parsed.Count);
        foreach (var tenant in parsed)
        {
            if (index.For(tenant.Namespace) is not { } ceiling)
            {
                tenants.Add(tenant);
                continue;
            }
            var ns = tenant.Namespace ?? "";
            if (!ceilings.TryGetValue(ns, out var kept))
            {
                kept = _ceilings.TryGetValue(ns, out var before) && SameCeiling(before, ceiling) ? before : ceiling;
                ceilings[ns] = kept;
            }
            var limited = _withCeiling.TryGetValue(tenant, out var earlier) && ReferenceEquals(earlier.Ceiling, kept) ? earlier : tenant with { Ceiling = kept };
            withCeiling[tenant] = limited;
            tenants.Add(limited);
        }
        _ceilings = ceilings;
        _withCeiling = withCeiling;
        return tenants;
    }

    private static bool SameCeiling(LimitCeiling a, LimitCeiling b) =>
        a.Defaults == b.Defaults && a.Maximum == b.Maximum && a.Policies.SequenceEqual(b.Policies, StringComparer.Ordinal);

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
        // Made only when there is something to notice: most builds refuse and clamp nothing.
        Dictionary<(string, string), Candidate>? tenantsByDocument = null;
        Dictionary<(string, string), Candidate> ByDocument() => tenantsByDocument ??= candidates.Where(c => c.Raw.Kind == TenantConfig.KindName)
            .GroupBy(c => (c.Raw.File, c.Raw.Document)).ToDictionary(g => g.Key, g => g.Last());
        foreach (var error in refused)
        {
            if (ByDocument().TryGetValue((error.File, error.Document), out var candidate))
            {
                var why = error.Field is null ? error.Problem : $"{error.Field}: {error.Problem}";
                notices.Add(new TenantNotice(candidate.Raw.Namespace ?? "", candidate.Raw.Name, candidate.Uid, candidate.ResourceVersion, TenantNotice.Refused,
                    $"Tenant refused, not served by this runtime: {why}"));
            }
        }
        foreach (var tenant in tenants)
        {
            if (tenant.Ceiling is not { } ceiling || ceiling.Clamps(tenant.Limits) is not { Count: > 0 } clamps ||
                !ByDocument().TryGetValue(($"kubernetes namespace {tenant.Namespace}", $"{TenantConfig.KindName}/{tenant.Name}"), out var candidate))
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
        var reads = new ResolvedReads(secrets, _secretStores);
        var reports = new List<string>();
        var tree = Normalized(kind, obj, out var ns, out var name);
        var cacheTree = tree;
        var metadata = obj.TryGetProperty("metadata", out var m) && m.ValueKind == JsonValueKind.Object ? m : default;
        var uid = Text(metadata, "uid");
        var resourceVersion = Text(metadata, "resourceVersion");
        var path = $"kubernetes/{ns}/{kind.Plural}.{kind.Version}/{name}";
        if (kind.Kind == TenantConfig.KindName)
        {
            cacheTree = Normalized(kind, obj, out _, out _);
            ResolveToken(ObjectTree.Map(cacheTree, "spec"), "apiToken", ns, reads);
            ResolveTenantToken(tree, ns, reads);
        }
        else if (kind.Kind == ComponentConfig.KindName)
        {
            cacheTree = Normalized(kind, obj, out _, out _);
            if (ObjectTree.Text(ObjectTree.Map(cacheTree, "auth"), "secretStore") == "kubernetes")
            {
                // Read back from the cache, the references must not resolve through a store that took the name.
                cacheTree["auth"] = new Dictionary<object, object?>();
            }
            ResolveComponentSecrets(tree, ns, path, reads, reported, reports);
        }
        else if (kind.Kind == HttpEndpointConfig.KindName)
        {
            cacheTree = Normalized(kind, obj, out _, out _); // Secret references as written: no header value reaches the disk
            ResolveHeaderSecrets(tree, ns, reads);
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
        var createdAt = Text(metadata, "creationTimestamp");
        reads.Detach();
        return new Candidate(raw, path, new ResourceDocument(path, ResourceTree.ToJson(cacheTree)), uid, resourceVersion, createdAt, $"{ns}/{name}",
            reads, reports);
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
    private static void ResolveTenantToken(Dictionary<object, object?> tree, string ns, ResolvedReads secrets)
    {
        var spec = ObjectTree.Map(tree, "spec");
        ResolveToken(spec, "apiToken", ns, secrets);
        ResolveToken(ObjectTree.Map(spec, "appChannel"), "appApiToken", ns, secrets);
    }

    private static void ResolveToken(Dictionary<object, object?>? parent, string field, string ns, ResolvedReads secrets)
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
    private static void ResolveHeaderSecrets(Dictionary<object, object?> tree, string ns, ResolvedReads secrets)
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

    private void ResolveComponentSecrets(Dictionary<object, object?> tree, string ns, string path, ResolvedReads secrets, HashSet<string> reported,
        List<string> reports)
    {
        var store = ObjectTree.Text(ObjectTree.Map(tree, "auth"), "secretStore");
        if (store is not null && store != "kubernetes")
        {
            if (!secrets.IsSecretStore(ns, store))
            {
                // A store of another namespace (or none): its references stay unresolved and the component says so.
                tree["auth"] = new Dictionary<object, object?>();
                reports.Add(Report(reported, path, $"auth.secretStore '{store}' is not a secret store of namespace {ns}"));
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
            else
            {
                var entry = $"{path}|secret|{itemName}";
                reports.Add(entry);
                if (reported.Add(entry) && !_reported.Contains(entry))
                {
                    KubernetesLog.ComponentSecretMissing(logger, path, itemName, secretName, key, ns);
                }
            }
        }
    }

    /// <summary>Logs a problem once while it lasts; returns the entry that keeps it reported.</summary>
    private string Report(HashSet<string> reported, string resource, string problem)
    {
        var entry = $"{resource}|{problem}";
        if (reported.Add(entry) && !_reported.Contains(entry))
        {
            KubernetesLog.ResourceIgnored(logger, resource, problem);
        }
        return entry;
    }

    private static string Text(JsonElement metadata, string field) =>
        metadata.ValueKind == JsonValueKind.Object && metadata.TryGetProperty(field, out var value) && value.ValueKind == JsonValueKind.String ? value.GetString() ?? "" : "";
}
