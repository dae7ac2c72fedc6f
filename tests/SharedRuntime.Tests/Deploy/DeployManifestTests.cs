extern alias KubernetesModels;

using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using KubernetesModels::k8s.Models;
using SharedRuntime.Configuration;

namespace SharedRuntime.Tests.Deploy;

/// <summary>The manifests under deploy/ are what an operator applies: they must parse as Kubernetes reads them and say what we promise.</summary>
public sealed class DeployManifestTests
{
    [Fact]
    public void EveryManifestParsesWithTheKubernetesModels()
    {
        var manifests = DeployFiles.Manifests().ToList();
        Assert.NotEmpty(manifests);
        foreach (var file in manifests)
        {
            var objects = DeployFiles.Load(File.ReadAllText(file));
            Assert.True(objects.Count > 0, $"{file} holds no object");
        }
    }

    [Fact]
    public void TheDaemonSetRollsWithoutGapsAndRunsLockedDown()
    {
        var daemonSet = DeployFiles.LoadAll().OfType<V1DaemonSet>().Single();
        var rolling = daemonSet.Spec.UpdateStrategy.RollingUpdate;
        Assert.Equal("RollingUpdate", daemonSet.Spec.UpdateStrategy.Type);
        Assert.Equal("1", rolling.MaxSurge.Value);
        Assert.Equal("0", rolling.MaxUnavailable.Value);

        var pod = daemonSet.Spec.Template.Spec;
        var container = pod.Containers.Single();
        Assert.Equal("shared-runtime", pod.ServiceAccountName);
        Assert.True(pod.SecurityContext.RunAsNonRoot);
        Assert.True(container.SecurityContext.RunAsNonRoot);
        Assert.True(container.SecurityContext.ReadOnlyRootFilesystem);
        Assert.False(container.SecurityContext.AllowPrivilegeEscalation);
        Assert.Equal(["ALL"], container.SecurityContext.Capabilities.Drop);

        var args = container.Args.ToList();
        Assert.Equal("kubernetes", args[args.IndexOf("--mode") + 1]);
        Assert.Equal("0.0.0.0", args[args.IndexOf("--dapr-listen-addresses") + 1]);
        var stateDir = args[args.IndexOf("--state-dir") + 1];
        var stateMount = container.VolumeMounts.Single(m => m.MountPath == stateDir);
        Assert.NotNull(pod.Volumes.Single(v => v.Name == stateMount.Name).EmptyDir);
        var drainSeconds = int.Parse(args[args.IndexOf("--dapr-graceful-shutdown-seconds") + 1], System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(pod.TerminationGracePeriodSeconds > drainSeconds + 1, "the grace period outlasts the drain");

        Assert.Equal([3500, 9090, 50001], container.Ports.Select(p => p.ContainerPort).Order());
        Assert.NotNull(container.Resources.Requests["cpu"]);
        Assert.NotNull(container.Resources.Limits["memory"]);
        Assert.Equal("/v1.0/healthz", container.ReadinessProbe.HttpGet.Path);
        Assert.Equal("/v1.0/healthz", container.LivenessProbe.HttpGet.Path);
    }

    [Fact]
    public void TheServiceKeepsTrafficOnTheNode()
    {
        var service = DeployFiles.LoadAll().OfType<V1Service>().Single(s => s.Metadata.Name == "shared-runtime");
        Assert.Equal("Local", service.Spec.InternalTrafficPolicy);
        Assert.Equal([3500, 9090, 50001], service.Spec.Ports.Select(p => p.Port).Order());
    }

    [Fact]
    public void TheClusterRoleOnlyReadsTheResourcesTheRuntimeWatches()
    {
        var role = DeployFiles.LoadAll().OfType<V1ClusterRole>().Single(r => r.Metadata.Name == "shared-runtime");
        foreach (var rule in role.Rules)
        {
            // Secrets are read by name only: the runtime can never list or watch them.
            Assert.Equal(rule.Resources.SequenceEqual(["secrets"]) ? ["get"] : ["get", "list", "watch"], rule.Verbs);
        }
        var granted = role.Rules.SelectMany(r => r.ApiGroups.SelectMany(g => r.Resources.Select(res => $"{res}.{g}"))).Order().ToList();
        Assert.Equal(["components.dapr.io", "configurations.dapr.io", "endpointslices.discovery.k8s.io", "httpendpoints.dapr.io", "namespaces.", "pods.", "resiliencies.dapr.io", "secrets.", "subscriptions.dapr.io",
            "tenantlimitpolicies.sharedruntime.io", "tenants.sharedruntime.io"], granted);
    }

    [Fact]
    public void TheRuntimeCreatesOnlyEventsAndTokenReviewsAndNothingGrantsWritingTenantLimitPolicies()
    {
        var objects = DeployFiles.LoadAll();
        var writer = objects.OfType<V1ClusterRole>().Single(r => r.Metadata.Name == "shared-runtime-events");
        var rule = Assert.Single(writer.Rules);
        Assert.Equal(["create"], rule.Verbs);
        Assert.Equal(["events"], rule.Resources);
        Assert.Equal([""], rule.ApiGroups);
        // Besides Events, the runtime creates TokenReviews (which store nothing), and only those.
        var reviewer = objects.OfType<V1ClusterRole>().Single(r => r.Metadata.Name == "shared-runtime-tokenreviews");
        var review = Assert.Single(reviewer.Rules);
        Assert.Equal(["create"], review.Verbs);
        Assert.Equal(["tokenreviews"], review.Resources);
        Assert.Equal(["authentication.k8s.io"], review.ApiGroups);
        var binding = objects.OfType<V1ClusterRoleBinding>().Single(b => b.Metadata.Name == "shared-runtime-tokenreviews");
        Assert.Equal("shared-runtime-tokenreviews", binding.RoleRef.Name);
        Assert.Equal(("shared-runtime", "shared-runtime-system"), (Assert.Single(binding.Subjects).Name, binding.Subjects[0].NamespaceProperty));
        Assert.Equal(["events.", "tokenreviews.authentication.k8s.io"],
            objects.OfType<V1ClusterRole>().SelectMany(r => r.Rules).Where(x => x.Verbs.Any(v => v is not ("get" or "list" or "watch")))
                .SelectMany(x => x.ApiGroups.SelectMany(g => x.Resources.Select(res => $"{res}.{g}"))).Order());
        // No role shipped here may write the ceilings, and none is aggregated into the namespace admin or edit roles.
        Assert.All(objects.OfType<V1ClusterRole>(), r =>
        {
            Assert.DoesNotContain(r.Rules, x => x.Resources.Contains("tenantlimitpolicies") && x.Verbs.Any(v => v is not ("get" or "list" or "watch")));
            Assert.Null(r.AggregationRule);
            Assert.False(r.Metadata.Labels?.Keys.Any(k => k.StartsWith("rbac.authorization.k8s.io/aggregate-to", StringComparison.Ordinal)) ?? false);
        });
        var crd = objects.OfType<V1CustomResourceDefinition>().Single(c => c.Metadata.Name == "tenantlimitpolicies.sharedruntime.io");
        Assert.Equal("Cluster", crd.Spec.Scope);
    }

    [Fact]
    public void TheDeploymentRunsTheDaemonSetsPodSpreadOverNodes()
    {
        var objects = DeployFiles.LoadAll();
        var daemonSet = objects.OfType<V1DaemonSet>().Single();
        var deployment = objects.OfType<V1Deployment>().Single();
        Assert.Equal("RollingUpdate", deployment.Spec.Strategy.Type);
        Assert.Equal("1", deployment.Spec.Strategy.RollingUpdate.MaxSurge.Value);
        Assert.Equal("0", deployment.Spec.Strategy.RollingUpdate.MaxUnavailable.Value);

        // The same pod as the DaemonSet's (args, probes, security, volumes), apart from the spread over nodes and zones.
        var pod = deployment.Spec.Template.Spec;
        var spread = pod.TopologySpreadConstraints;
        Assert.Contains(spread, c => c.TopologyKey == "kubernetes.io/hostname" && c.MaxSkew == 1 &&
                                     c.LabelSelector.MatchLabels.SequenceEqual(deployment.Spec.Selector.MatchLabels));
        Assert.Contains(spread, c => c.TopologyKey == "topology.kubernetes.io/zone");
        pod.TopologySpreadConstraints = null;
        Assert.Equal(KubernetesModels::k8s.KubernetesJson.Serialize(daemonSet.Spec.Template), KubernetesModels::k8s.KubernetesJson.Serialize(deployment.Spec.Template));
    }

    [Fact]
    public void BothVariantsCountTheirReplicasFromTheirOwnService()
    {
        var objects = DeployFiles.LoadAll();
        var service = objects.OfType<V1Service>().Single(s => s.Metadata.Name == "shared-runtime");
        var pods = new[] { objects.OfType<V1DaemonSet>().Single().Spec.Template, objects.OfType<V1Deployment>().Single().Spec.Template };
        foreach (var pod in pods)
        {
            var container = pod.Spec.Containers.Single();
            var args = container.Args.ToList();
            Assert.Equal($"$(POD_NAMESPACE)/{service.Metadata.Name}", args[args.IndexOf("--cluster-service") + 1]);
            Assert.Equal("metadata.namespace", container.Env.Single(e => e.Name == "POD_NAMESPACE").ValueFrom.FieldRef.FieldPath);
            Assert.All(service.Spec.Selector, label => Assert.Equal(label.Value, pod.Metadata.Labels[label.Key]));
        }
    }

    [Fact]
    public void TheAutoscalerScalesTheDeploymentOnTheSaturationTheAdapterServes()
    {
        var objects = DeployFiles.LoadAll();
        var deployment = objects.OfType<V1Deployment>().Single();
        var hpa = objects.OfType<V2HorizontalPodAutoscaler>().Single();
        Assert.Equal(("Deployment", deployment.Metadata.Name), (hpa.Spec.ScaleTargetRef.Kind, hpa.Spec.ScaleTargetRef.Name));
        Assert.True(hpa.Spec.MinReplicas >= 2, "at least two replicas, so one node's failure leaves one serving");
        var metric = hpa.Spec.Metrics.Single().Pods;
        Assert.Equal("sharedruntime_saturation", metric.Metric.Name);
        Assert.Equal("AverageValue", metric.Target.Type);
        var target = metric.Target.AverageValue.ToDouble();
        Assert.InRange(target, 0.1, 0.95);

        // The adapter rule serves exactly that metric, per pod, from the runtime's gauge.
        var adapter = objects.OfType<V1ConfigMap>().Single(c => c.Metadata.Name == "prometheus-adapter-sharedruntime");
        var rules = new YamlDotNet.Serialization.DeserializerBuilder().Build().Deserialize<Dictionary<string, List<Dictionary<string, object>>>>(adapter.Data["config.yaml"]);
        var rule = rules["rules"].Single();
        Assert.StartsWith("sharedruntime_saturation{", (string)rule["seriesQuery"], StringComparison.Ordinal);
        Assert.Equal(metric.Metric.Name, ((Dictionary<object, object>)rule["name"])["as"]);
        var overrides = (Dictionary<object, object>)((Dictionary<object, object>)rule["resources"])["overrides"];
        Assert.Equal(["namespace", "pod"], overrides.Keys.Cast<string>().Order());

        var budget = objects.OfType<V1PodDisruptionBudget>().Single();
        Assert.Equal("1", budget.Spec.MaxUnavailable.Value);
        Assert.Equal(deployment.Spec.Selector.MatchLabels, budget.Spec.Selector.MatchLabels);
    }

    [Fact]
    public void TheTenantCrdValidatesTheSpec()
    {
        var crd = DeployFiles.LoadAll().OfType<V1CustomResourceDefinition>().Single(c => c.Metadata.Name == "tenants.sharedruntime.io");
        var version = crd.Spec.Versions.Single();
        Assert.Equal("v1alpha1", version.Name);
        var spec = version.Schema.OpenAPIV3Schema.Properties["spec"];
        Assert.Contains("apiToken", spec.Required);
        var appId = new Regex(spec.Properties["appId"].Pattern);
        Assert.Matches(appId, "orders");
        Assert.DoesNotMatch(appId, "orders||x");
        Assert.DoesNotMatch(appId, "-orders");
        Assert.Equal(2, spec.Properties["apiToken"].OneOf.Count);
        Assert.Equal(["key", "name"], spec.Properties["apiToken"].Properties["secretKeyRef"].Required.Order());
        var limits = spec.Properties["limits"].Properties;
        Assert.Equal(1, limits["burst"].Minimum);
        Assert.Equal(1, limits["maxConcurrency"].Minimum);
        Assert.Equal(0, limits["maxQueue"].Minimum);
        Assert.True(limits["requestsPerSecond"].Minimum > 0);
        Assert.Contains("appChannel", spec.Properties.Keys);
        Assert.Contains("config", spec.Properties.Keys);
    }

    [Theory]
    [InlineData("samples/tenant.yaml", "orders")]
    [InlineData("examples/knative", "greeter")]
    public void TheSampleResourcesLoadWithTheRuntimesOwnParser(string path, string appId)
    {
        var full = Path.Combine(DeployFiles.Folder, path);
        var files = Directory.Exists(full) ? Directory.GetFiles(full, "*.yaml").Order(StringComparer.Ordinal).ToArray() : [full];
        var raws = files.SelectMany(f => ResourceReader.ReadText(f, File.ReadAllText(f))).ToList();
        var secrets = DeployFiles.Load(string.Join("\n---\n", files.Select(File.ReadAllText))).OfType<V1Secret>().ToList();
        string? Resolve(string name, string key) => secrets.SingleOrDefault(s => s.Metadata.Name == name)?.StringData?[key];

        var set = ResourceParser.Parse(raws, _ => null, Resolve);
        var tenant = Assert.Single(set.Tenants);
        Assert.Equal(appId, tenant.AppId);
        Assert.NotEmpty(tenant.ApiToken);
    }

    [Fact]
    public void TheKnativeFunctionReachesTheNodeLocalServiceWithItsTenantsToken()
    {
        var objects = DeployFiles.LoadAll();
        var service = objects.OfType<V1Service>().Single(s => s.Metadata.Name == "shared-runtime");
        var knative = objects.OfType<CustomObject>().Single(o => o.Kind == "Service");
        var json = JsonSerializer.Serialize(knative.Spec);
        Assert.Contains($"http://{service.Metadata.Name}.shared-runtime-system.svc.cluster.local:3500", json);
        Assert.Contains($"http://{service.Metadata.Name}.shared-runtime-system.svc.cluster.local:50001", json);
        Assert.Contains("DAPR_API_TOKEN", json);
        Assert.Contains("greeter-dapr-token", json);
    }

    [Fact]
    public void TheDashboardChartsRateLatencyAndRejectionsPerTenant()
    {
        using var dashboard = JsonDocument.Parse(File.ReadAllText(Path.Combine(DeployFiles.Folder, "monitoring", "grafana-dashboard.json")));
        var expressions = dashboard.RootElement.GetProperty("panels").EnumerateArray()
            .SelectMany(p => p.GetProperty("targets").EnumerateArray()).Select(t => t.GetProperty("expr").GetString()!).ToList();
        Assert.Contains(expressions, e => e.Contains("rate(sharedruntime_requests_total", StringComparison.Ordinal) && e.Contains("by (app_id)", StringComparison.Ordinal));
        Assert.Contains(expressions, e => e.Contains("histogram_quantile(0.99", StringComparison.Ordinal) && e.Contains("sharedruntime_request_duration_seconds_bucket", StringComparison.Ordinal));
        Assert.Contains(expressions, e => e.Contains("sharedruntime_rejections_total", StringComparison.Ordinal));
        Assert.Contains(expressions, e => e.Contains("sharedruntime_saturation", StringComparison.Ordinal) && e.Contains("by (node)", StringComparison.Ordinal));
        Assert.Contains(expressions, e => e.Contains("rate(sharedruntime_tenant_cpu_seconds_total", StringComparison.Ordinal) && e.Contains("by (app_id)", StringComparison.Ordinal));
    }

    [SkippableFact]
    public async Task KubectlKustomizeBuildsTheDeployFolder()
    {
        const string kubectl = "/usr/bin/kubectl";
        var found = File.Exists(kubectl) ? kubectl : FindOnPath("kubectl");
        // CI runs this test for real: there a missing kubectl is a failure, not a skip.
        Assert.False(found is null && Environment.GetEnvironmentVariable("CI") is { Length: > 0 }, "kubectl is required in CI");
        Skip.If(found is null, "kubectl is not installed");

        var objects = await KustomizeAsync(found!, DeployFiles.Folder);
        // Namespace, 2 CRDs, ServiceAccount, 3 ClusterRoles and their bindings, Service, DaemonSet.
        Assert.Equal(12, objects.Count);
        Assert.All(objects.OfType<KubernetesModels::k8s.IKubernetesObject<V1ObjectMeta>>().Where(o => o is not V1Namespace and not V1ClusterRole and not V1ClusterRoleBinding and not V1CustomResourceDefinition),
            o => Assert.Equal("shared-runtime-system", o.Metadata.NamespaceProperty));
        var image = objects.OfType<V1DaemonSet>().Single().Spec.Template.Spec.Containers.Single().Image;
        Assert.StartsWith("ghcr.io/", image, StringComparison.Ordinal);
        Assert.Equal("Local", objects.OfType<V1Service>().Single().Spec.InternalTrafficPolicy);
    }

    [SkippableFact]
    public async Task KubectlKustomizeBuildsTheDeploymentVariant()
    {
        var found = File.Exists("/usr/bin/kubectl") ? "/usr/bin/kubectl" : FindOnPath("kubectl");
        Assert.False(found is null && Environment.GetEnvironmentVariable("CI") is { Length: > 0 }, "kubectl is required in CI");
        Skip.If(found is null, "kubectl is not installed");

        var objects = await KustomizeAsync(found!, Path.Combine(DeployFiles.Folder, "deployment"));
        Assert.Equal(14, objects.Count);
        Assert.Empty(objects.OfType<V1DaemonSet>());
        Assert.All(objects.OfType<KubernetesModels::k8s.IKubernetesObject<V1ObjectMeta>>().Where(o => o is not V1Namespace and not V1ClusterRole and not V1ClusterRoleBinding and not V1CustomResourceDefinition),
            o => Assert.Equal("shared-runtime-system", o.Metadata.NamespaceProperty));
        // A regular Service: any ready replica, on any node.
        Assert.Equal("Cluster", objects.OfType<V1Service>().Single().Spec.InternalTrafficPolicy);
        var deployment = objects.OfType<V1Deployment>().Single();
        Assert.StartsWith("ghcr.io/", deployment.Spec.Template.Spec.Containers.Single().Image, StringComparison.Ordinal);
        Assert.Equal(deployment.Metadata.Name, objects.OfType<V2HorizontalPodAutoscaler>().Single().Spec.ScaleTargetRef.Name);
        Assert.Single(objects.OfType<V1PodDisruptionBudget>());
        Assert.Contains(objects.OfType<V1ClusterRole>().Single(r => r.Metadata.Name == "shared-runtime").Rules, r => r.Resources.Contains("endpointslices"));
    }

    [SkippableFact]
    public async Task TheHostNetworkPatchSharesTheHandoffSocketBetweenOldAndNewPod()
    {
        var found = File.Exists("/usr/bin/kubectl") ? "/usr/bin/kubectl" : FindOnPath("kubectl");
        Assert.False(found is null && Environment.GetEnvironmentVariable("CI") is { Length: > 0 }, "kubectl is required in CI");
        Skip.If(found is null, "kubectl is not installed");
        var copy = Directory.CreateTempSubdirectory("sharedruntime-deploy-").FullName;
        try
        {
            foreach (var file in Directory.EnumerateFiles(DeployFiles.Folder, "*", SearchOption.AllDirectories))
            {
                var target = Path.Combine(copy, Path.GetRelativePath(DeployFiles.Folder, file));
                Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                File.Copy(file, target);
            }
            await File.AppendAllTextAsync(Path.Combine(copy, "kustomization.yaml"), "\npatches:\n  - path: patches/daemonset-hostnetwork.yaml\n");

            var pod = (await KustomizeAsync(found!, copy)).OfType<V1DaemonSet>().Single().Spec.Template.Spec;
            Assert.True(pod.HostNetwork);
            var container = pod.Containers.Single();
            var socket = container.Env.Single(e => e.Name == "SHAREDRUNTIME_HANDOFF_SOCKET").Value;
            var mount = container.VolumeMounts.Single(m => socket.StartsWith(m.MountPath + "/", StringComparison.Ordinal));
            Assert.NotNull(pod.Volumes.Single(v => v.Name == mount.Name).HostPath);
        }
        finally
        {
            Directory.Delete(copy, recursive: true);
        }
    }

    private static async Task<List<object>> KustomizeAsync(string kubectl, string folder)
    {
        var start = new ProcessStartInfo(kubectl, ["kustomize", folder])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
        Assert.True(process.ExitCode == 0, $"kubectl kustomize failed: {await error}");
        return DeployFiles.Load(await output);
    }

    private static string? FindOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator)
            .Select(folder => Path.Combine(folder, name)).FirstOrDefault(File.Exists);
}
