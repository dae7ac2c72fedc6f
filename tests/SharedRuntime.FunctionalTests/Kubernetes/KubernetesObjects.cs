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
}
