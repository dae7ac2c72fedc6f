extern alias KubernetesModels;

using KubernetesModels::k8s;
using KubernetesModels::k8s.Models;

namespace SharedRuntime.Tests.Deploy;

/// <summary>A custom resource read without its schema: enough to check it is well formed and to read its spec.</summary>
public sealed class CustomObject : IKubernetesObject<V1ObjectMeta>
{
    public string ApiVersion { get; set; } = "";
    public string Kind { get; set; } = "";
    public V1ObjectMeta Metadata { get; set; } = new();
    public Dictionary<string, object?>? Spec { get; set; }
    public List<string>? Scopes { get; set; }
    public Dictionary<string, object?>? Auth { get; set; }
}

/// <summary>The repository's deploy/ folder and the types its manifests are read as.</summary>
internal static class DeployFiles
{
    public static string RepositoryRoot { get; } = FindRoot();

    public static string Folder => Path.Combine(RepositoryRoot, "deploy");

    /// <summary>Kubernetes manifests: every YAML file except kustomize's own and the plain Prometheus config.</summary>
    public static IEnumerable<string> Manifests() =>
        Directory.EnumerateFiles(Folder, "*.yaml", SearchOption.AllDirectories)
            .Where(f => Path.GetFileName(f) is not "kustomization.yaml" and not "prometheus-scrape-config.yaml")
            // Optional patches are not whole manifests; the kustomize test builds the set with them.
            .Where(f => !Path.GetRelativePath(Folder, f).StartsWith("patches", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal);

    public static Dictionary<string, Type> KnownTypes { get; } = new()
    {
        ["v1/Namespace"] = typeof(V1Namespace),
        ["v1/ServiceAccount"] = typeof(V1ServiceAccount),
        ["v1/Service"] = typeof(V1Service),
        ["v1/Secret"] = typeof(V1Secret),
        ["v1/ConfigMap"] = typeof(V1ConfigMap),
        ["apps/v1/DaemonSet"] = typeof(V1DaemonSet),
        ["apps/v1/Deployment"] = typeof(V1Deployment),
        ["autoscaling/v2/HorizontalPodAutoscaler"] = typeof(V2HorizontalPodAutoscaler),
        ["policy/v1/PodDisruptionBudget"] = typeof(V1PodDisruptionBudget),
        ["rbac.authorization.k8s.io/v1/ClusterRole"] = typeof(V1ClusterRole),
        ["rbac.authorization.k8s.io/v1/ClusterRoleBinding"] = typeof(V1ClusterRoleBinding),
        ["apiextensions.k8s.io/v1/CustomResourceDefinition"] = typeof(V1CustomResourceDefinition),
        ["sharedruntime.io/v1alpha1/Tenant"] = typeof(CustomObject),
        ["dapr.io/v1alpha1/Component"] = typeof(CustomObject),
        ["dapr.io/v2alpha1/Subscription"] = typeof(CustomObject),
        ["serving.knative.dev/v1/Service"] = typeof(CustomObject),
        ["monitoring.coreos.com/v1/ServiceMonitor"] = typeof(CustomObject),
    };

    /// <summary>Every object of <paramref name="yaml"/>, strictly typed: an unknown field in a built-in type fails.</summary>
    public static List<object> Load(string yaml) => KubernetesYaml.LoadAllFromString(yaml, KnownTypes, strict: true);

    public static List<object> LoadAll() => Manifests().SelectMany(f => Load(File.ReadAllText(f))).ToList();

    private static string FindRoot()
    {
        for (var folder = new DirectoryInfo(AppContext.BaseDirectory); folder is not null; folder = folder.Parent)
        {
            if (File.Exists(Path.Combine(folder.FullName, "SharedRuntime.sln")))
            {
                return folder.FullName;
            }
        }
        throw new InvalidOperationException("SharedRuntime.sln not found above the test folder");
    }
}
