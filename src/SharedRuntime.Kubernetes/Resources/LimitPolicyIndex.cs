using System.Text.Json;
using SharedRuntime.Configuration;

namespace SharedRuntime.Kubernetes.Resources;

/// <summary>
/// The cluster's TenantLimitPolicies (sharedruntime.io/v1alpha1, cluster-scoped, written only by cluster
/// administrators) and the labels of its Namespaces: which defaults and maxima hold for the Tenants of each namespace.
/// A policy selects namespaces with <c>spec.namespaceSelector</c> (<c>matchLabels</c> and <c>matchExpressions</c>
/// with In, NotIn, Exists and DoesNotExist; none or an empty one selects every namespace) and gives
/// <c>spec.defaults</c> and <c>spec.maximum</c>, each limit as a Tenant's <c>spec.limits</c> names it.
/// </summary>
internal sealed class LimitPolicyIndex
{
    public const string KindName = "TenantLimitPolicy";

    private readonly List<(LimitCeiling Ceiling, Func<IReadOnlyDictionary<string, string>, bool> Selects)> _policies = [];
    private readonly Dictionary<string, IReadOnlyDictionary<string, string>> _labels = new(StringComparer.Ordinal);
    private readonly Dictionary<string, LimitCeiling?> _byNamespace = new(StringComparer.Ordinal);

    /// <param name="problems">Receives each policy that cannot be read, with why; it is left out.</param>
    public LimitPolicyIndex(IReadOnlyList<JsonElement> policies, IReadOnlyList<JsonElement> namespaces, Action<string, string> problems)
    {
        foreach (var ns in namespaces)
        {
            var tree = ObjectTree.From(ns);
            var metadata = ObjectTree.Map(tree, "metadata");
            if (ObjectTree.Text(metadata, "name") is { } name)
            {
                _labels[name] = Strings(ObjectTree.Map(metadata, "labels"));
            }
        }
        foreach (var policy in policies.OrderBy(NameOf, StringComparer.Ordinal))
        {
            var name = NameOf(policy);
            var raw = new RawResource
            {
                File = "kubernetes cluster",
                Index = 0,
                ApiVersion = TenantConfig.ApiVersion,
                Kind = KindName,
                Name = name,
                Root = ObjectTree.From(policy),
            };
            try
            {
                var spec = raw.Node["spec"];
                var ceiling = new LimitCeiling([name], TenantParser.ParseLimits(spec["defaults"], allowScope: false),
                    TenantParser.ParseLimits(spec["maximum"], allowScope: false));
                _policies.Add((ceiling, Selector(spec["namespaceSelector"])));
            }
            catch (ResourceException ex)
            {
                problems($"kubernetes/{KindName}/{name}", ex.Message);
            }
        }
    }

    public int Count => _policies.Count;

    /// <summary>The ceiling for the Tenants of <paramref name="namespace"/>: every selecting policy's, combined; null when none selects it.</summary>
    public LimitCeiling? For(string? @namespace)
    {
        if (@namespace is null || _policies.Count == 0)
        {
            return null;
        }
        if (!_byNamespace.TryGetValue(@namespace, out var ceiling))
        {
            var labels = _labels.GetValueOrDefault(@namespace) ?? new Dictionary<string, string>();
            ceiling = LimitCeiling.Combine([.. _policies.Where(p => p.Selects(labels)).Select(p => p.Ceiling)]);
            _byNamespace[@namespace] = ceiling;
        }
        return ceiling;
    }

    /// <summary>A Kubernetes label selector as a test on a namespace's labels.</summary>
    private static Func<IReadOnlyDictionary<string, string>, bool> Selector(ResourceNode selector)
    {
        var tests = new List<Func<IReadOnlyDictionary<string, string>, bool>>();
        foreach (var (key, value) in selector["matchLabels"].Entries())
        {
            var wanted = value.RequiredString();
            tests.Add(labels => labels.TryGetValue(key, out var actual) && actual == wanted);
        }
        foreach (var expression in selector["matchExpressions"].Items())
        {
            var key = expression["key"].RequiredString();
            var values = expression["values"].AsStringList();
            var op = expression["operator"].RequiredString();
            tests.Add(op switch
            {
                "In" => labels => labels.TryGetValue(key, out var v) && values.Contains(v, StringComparer.Ordinal),
                "NotIn" => labels => !labels.TryGetValue(key, out var v) || !values.Contains(v, StringComparer.Ordinal),
                "Exists" => labels => labels.ContainsKey(key),
                "DoesNotExist" => labels => !labels.ContainsKey(key),
                _ => throw expression["operator"].Error($"'{op}' is not a selector operator; use In, NotIn, Exists or DoesNotExist"),
            });
        }
        return labels => tests.TrueForAll(test => test(labels));
    }

    private static Dictionary<string, string> Strings(Dictionary<object, object?>? map) =>
        map?.Where(kv => kv.Value is string).ToDictionary(kv => kv.Key.ToString() ?? "", kv => (string)kv.Value!, StringComparer.Ordinal)
        ?? new Dictionary<string, string>(StringComparer.Ordinal);

    private static string NameOf(JsonElement obj) =>
        obj.TryGetProperty("metadata", out var m) && m.TryGetProperty("name", out var n) ? n.GetString() ?? "" : "";
}
