using System.Text;

namespace SharedRuntime.FunctionalTests.Kubernetes;

/// <summary>API objects as the Kubernetes API holds them (JSON), for the fake API server.</summary>
internal static class KubernetesObjects
{
    public static string Tenant(string name, string token, string limits = "{}", string @namespace = "default") => $$$"""
        {"apiVersion":"sharedruntime.io/v1alpha1","kind":"Tenant","metadata":{"name":"{{{name}}}","namespace":"{{{@namespace}}}"},
         "spec":{"appId":"{{{name}}}","apiToken":{"value":"{{{token}}}"},"limits":{{{limits}}}}}
        """;

    public static string TenantWithSecretToken(string name, string secret, string key, string @namespace = "default") => $$$"""
        {"apiVersion":"sharedruntime.io/v1alpha1","kind":"Tenant","metadata":{"name":"{{{name}}}","namespace":"{{{@namespace}}}"},
         "spec":{"apiToken":{"secretKeyRef":{"name":"{{{secret}}}","key":"{{{key}}}"} } } }
        """;

    public static string Secret(string name, string key, string value, string @namespace = "default") => $$$"""
        {"apiVersion":"v1","kind":"Secret","type":"Opaque","metadata":{"name":"{{{name}}}","namespace":"{{{@namespace}}}"},
         "data":{"{{{key}}}":"{{{Convert.ToBase64String(Encoding.UTF8.GetBytes(value))}}}"}}
        """;

    public static string Component(string name, string type, string metadata = "[]", string @namespace = "default") => $$$"""
        {"apiVersion":"dapr.io/v1alpha1","kind":"Component","metadata":{"name":"{{{name}}}","namespace":"{{{@namespace}}}"},
         "spec":{"type":"{{{type}}}","version":"v1","metadata":{{{metadata}}}}}
        """;

    /// <summary>
    /// An EndpointSlice of <paramref name="service"/> with <paramref name="ready"/> ready pods and
    /// <paramref name="notReady"/> pods that are not (terminating, failing their probe).
    /// </summary>
    public static string EndpointSlice(string name, string service, int ready, int notReady = 0, string @namespace = "shared-runtime-system", string addressType = "IPv4")
    {
        var endpoints = Enumerable.Range(0, ready + notReady).Select(i =>
            $$$"""{"addresses":["{{{(addressType == "IPv6" ? $"fd00::{i + 1}" : $"10.0.0.{i + 1}")}}}"],"conditions":{"ready":{{{(i < ready ? "true" : "false")}}}},"targetRef":{"kind":"Pod","namespace":"{{{@namespace}}}","name":"{{{service}}}-{{{i}}}","uid":"uid-{{{service}}}-{{{i}}}"}}""");
        return $$$"""
            {"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice","addressType":"{{{addressType}}}",
             "metadata":{"name":"{{{name}}}","namespace":"{{{@namespace}}}","labels":{"kubernetes.io/service-name":"{{{service}}}"}},
             "endpoints":[{{{string.Join(",", endpoints)}}}],
             "ports":[{"name":"http","port":3500,"protocol":"TCP"}]}
            """;
    }
}
