namespace SharedRuntime.Kubernetes;

/// <summary>How <see cref="KubernetesResourceSource"/> reaches the API server and how patient it is.</summary>
internal sealed record KubernetesSourceOptions
{
    /// <summary>The namespace to read resources from; null reads every namespace.</summary>
    public string? Namespace { get; init; }

    /// <summary>A kubeconfig file; null uses the in-cluster service account, else the default kubeconfig.</summary>
    public string? KubeconfigPath { get; init; }

    /// <summary>A ready client configuration (tests point it at a fake API server); overrides <see cref="KubeconfigPath"/>.</summary>
    public k8s.KubernetesClientConfiguration? ClientConfiguration { get; init; }

    /// <summary>
    /// The runtime's own Service (namespace and name): the ready endpoints of its EndpointSlices are the runtime replicas
    /// that Tenants with cluster-wide limits share them between. Null: this runtime counts as the only one.
    /// </summary>
    public ServiceReference? ClusterService { get; init; }

    /// <summary>
    /// The node this runtime serves: its Pods (and only its) are watched, with a field selector on spec.nodeName, into
    /// <see cref="Pods"/>. It is also named as the source of the Events the runtime records on Tenants (the host name when
    /// null). Null watches no Pods.
    /// </summary>
    public string? NodeName { get; init; }

    /// <summary>Where this node's running pods are published, for tokens bound to their pods.</summary>
    public SharedRuntime.Tenancy.PodDirectory? Pods { get; init; }

    /// <summary>Given this source's API client to review projected ServiceAccount tokens with (TokenReview); null reviews none.</summary>
    public SharedRuntime.Tenancy.ProjectedTokens? ProjectedTokens { get; init; }

    /// <summary>How often the Secrets that resources name are read again (a rotated token applies within this time).</summary>
    public TimeSpan SecretRefreshInterval { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// The largest answer read for one Secret: Kubernetes holds a Secret's data to 1 MiB, about 1.4 MiB as JSON with
    /// base64 values; anything longer is refused unread.
    /// </summary>
    public long MaxSecretBytes { get; init; } = 2 * 1024 * 1024;

    /// <summary>The most Secrets read (distinct namespace and name); references beyond are left unresolved with a warning.</summary>
    public int MaxSecrets { get; init; } = 4096;

    /// <summary>Changes arriving within this time are folded into one reload.</summary>
    public TimeSpan DebounceTime { get; init; } = TimeSpan.FromMilliseconds(50);

    /// <summary>How long the first load waits for every kind to be listed before giving up.</summary>
    public TimeSpan InitialSyncTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>First wait after a failed list or a dropped watch; doubles per failure up to <see cref="MaxBackoff"/>.</summary>
    public TimeSpan InitialBackoff { get; init; } = TimeSpan.FromMilliseconds(200);

    public TimeSpan MaxBackoff { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How long the server may keep one watch open before it is resumed.</summary>
    public TimeSpan WatchTimeout { get; init; } = TimeSpan.FromMinutes(5);

    /// <summary>How often a resource type that is not installed (its CRD missing) is looked for again.</summary>
    public TimeSpan MissingKindRetry { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Says why a component cannot be served (an unknown type, say), or null when it can. Such components are left
    /// out with a warning so that one foreign Dapr component in the cluster does not hold back every other change.
    /// </summary>
    public Func<SharedRuntime.Configuration.ComponentConfig, string?>? RejectComponent { get; init; }
}

/// <summary>A Service by namespace and name.</summary>
internal sealed record ServiceReference(string Namespace, string Name)
{
    /// <summary>Parses <c>NAMESPACE/NAME</c>.</summary>
    public static ServiceReference Parse(string text)
    {
        var parts = text.Split('/');
        if (parts is not [{ Length: > 0 } ns, { Length: > 0 } name])
        {
            throw new FormatException($"'{text}' is not NAMESPACE/NAME");
        }
        return new ServiceReference(ns, name);
    }

    public override string ToString() => $"{Namespace}/{Name}";
}
