using System.Globalization;

namespace Router.Core.Configuration;

/// <summary>
/// Semantic checks on a config object: required ids, references between routes and clusters, fallback loops,
/// address and host syntax, ranges, duplicates. Collects every error; never stops at the first.
/// </summary>
internal sealed class ConfigValidator
{
    /// <summary>Upper bound of every duration: one day.</summary>
    public const int MaxDurationMs = 86_400_000;

    /// <summary>Upper bound of attempts per request (the first one included).</summary>
    public const int MaxRetryAttempts = 10;

    private static readonly string[] LoadBalancingPolicies = ["roundRobin", "leastRequests", "powerOfTwoChoices"];

    private readonly List<ConfigError> _errors = [];

    // Cluster id -> index of its first declaration.
    private readonly Dictionary<string, int> _clusterIndex = new(StringComparer.Ordinal);

    private IReadOnlyList<ClusterConfig?> _clusters = [];

    private ConfigValidator()
    {
    }

    /// <summary>Validates <paramref name="config"/> and returns every error, in model order.</summary>
    public static List<ConfigError> Validate(RouterConfig config)
    {
        var validator = new ConfigValidator();
        validator.ValidateRoot(config);
        return validator._errors;
    }

    private void ValidateRoot(RouterConfig config)
    {
        // Clusters are indexed first so routes can be checked against them; errors are re-ordered by the caller.
        IReadOnlyList<ClusterConfig?> clusters = List(config.Clusters, "$.clusters");
        IndexClusters(clusters);

        ValidateRoutes(List(config.Routes, "$.routes"));
        ValidateClusters(clusters);
        ValidateListeners(List(config.Listeners, "$.listeners"));
        if (config.MaxConcurrentRequests is { } max)
        {
            AtLeast(max, 1, "$.maxConcurrentRequests");
        }
    }

    private void IndexClusters(IReadOnlyList<ClusterConfig?> clusters)
    {
        _clusters = clusters;
        for (int i = 0; i < clusters.Count; i++)
        {
            if (clusters[i] is { Id.Length: > 0 } cluster)
            {
                _clusterIndex.TryAdd(cluster.Id, i);
            }
        }
    }

    private void ValidateRoutes(IReadOnlyList<RouteConfig?> routes)
    {
        var firstById = new Dictionary<string, int>(StringComparer.Ordinal);

        // "host prefix methods" -> index of the first route that matches exactly that.
        var firstByMatch = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < routes.Count; i++)
        {
            string path = $"$.routes[{i}]";
            if (routes[i] is not { } route)
            {
                Error(path, "must not be null");
                continue;
            }

            if (Id(route.Id, path + ".id", "route") && !firstById.TryAdd(route.Id, i))
            {
                Error(path + ".id", $"duplicate route id '{route.Id}'; it is already used by $.routes[{firstById[route.Id]}]");
            }

            if (route.Match is null)
            {
                Error(path + ".match", "must not be null");
            }
            else
            {
                ValidateMatch(route.Match, path + ".match");
                CheckSameMatch(route, i, path + ".match", routes, firstByMatch);
            }

            if (Reference(route.Cluster, path + ".cluster", required: true))
            {
                ValidateRouteFallback(route, path + ".fallbackCluster");
            }
            else if (route.FallbackCluster is not null)
            {
                Reference(route.FallbackCluster, path + ".fallbackCluster", required: false);
            }

            if (route.TimeoutMs is { } timeout)
            {
                Duration(timeout, path + ".timeoutMs");
            }

            if (route.MaxConcurrentRequests is { } routeMax)
            {
                AtLeast(routeMax, 1, path + ".maxConcurrentRequests");
            }
        }
    }

    private void ValidateMatch(RouteMatch match, string path)
    {
        var hosts = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        IReadOnlyList<string?> hostList = List(match.Hosts, path + ".hosts");
        for (int j = 0; j < hostList.Count; j++)
        {
            string hostPath = $"{path}.hosts[{j}]";
            if (NotNull(hostList[j], hostPath) is not { } host)
            {
                continue;
            }

            if (ConfigSyntax.CheckHostPattern(host) is { } reason)
            {
                Error(hostPath, reason);
            }
            else if (!hosts.Add(host))
            {
                Error(hostPath, $"the host '{host}' is listed twice");
            }
        }

        if (match.PathPrefix is null)
        {
            Error(path + ".pathPrefix", "must not be null");
        }
        else if (ConfigSyntax.CheckPath(match.PathPrefix) is { } reason)
        {
            Error(path + ".pathPrefix", reason);
        }

        var methods = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        IReadOnlyList<string?> methodList = List(match.Methods, path + ".methods");
        for (int j = 0; j < methodList.Count; j++)
        {
            string methodPath = $"{path}.methods[{j}]";
            if (NotNull(methodList[j], methodPath) is not { } method)
            {
                continue;
            }

            if (ConfigSyntax.CheckMethod(method) is { } reason)
            {
                Error(methodPath, reason);
            }
            else if (!methods.Add(method))
            {
                Error(methodPath, $"the method '{method}' is listed twice");
            }
        }
    }

    // Two routes that match the same host, the same path prefix and the same method set can never both be chosen.
    // Hosts and methods compare case-insensitively, methods as a set; a route without hosts matches any host.
    private void CheckSameMatch(RouteConfig route, int index, string path, IReadOnlyList<RouteConfig?> routes, Dictionary<string, int> firstByMatch)
    {
        RouteMatch match = route.Match;
        var methods = new SortedSet<string>(StringComparer.Ordinal);
        foreach (string? method in match.Methods ?? [])
        {
            if (method is not null)
            {
                methods.Add(method.ToUpperInvariant());
            }
        }

        string methodKey = methods.Count == 0 ? "any method" : "methods " + string.Join(",", methods);
        var hosts = new List<string>();
        foreach (string? host in match.Hosts ?? [])
        {
            if (host is not null)
            {
                hosts.Add(host.ToLowerInvariant());
            }
        }

        if (hosts.Count == 0)
        {
            hosts.Add("");
        }

        foreach (string host in hosts)
        {
            string key = host + " " + match.PathPrefix + " " + methodKey;
            if (firstByMatch.TryGetValue(key, out int other))
            {
                string hostText = host.Length == 0 ? "any host" : $"host '{host}'";
                Error(path, $"route '{route.Id}' matches {hostText}, path prefix '{match.PathPrefix}' and {methodKey} exactly like " +
                            $"route '{routes[other]!.Id}' at $.routes[{other}]; only one of them could ever be chosen");
                return;
            }
        }

        foreach (string host in hosts)
        {
            firstByMatch.TryAdd(host + " " + match.PathPrefix + " " + methodKey, index);
        }
    }

    // The route's fallback chain: its own fallback (if any), then each cluster's fallback. It must not lead back to
    // the route's own cluster. Loops among cluster fallbacks alone are reported once, on the clusters.
    private void ValidateRouteFallback(RouteConfig route, string path)
    {
        if (route.FallbackCluster is null)
        {
            return;
        }

        if (!Reference(route.FallbackCluster, path, required: false))
        {
            return;
        }

        if (route.FallbackCluster == route.Cluster)
        {
            Error(path, $"the fallback cluster '{route.Cluster}' is the route's own cluster; a fallback must be a different cluster");
            return;
        }

        var chain = new List<string> { route.Cluster, route.FallbackCluster };
        string? next = FallbackOf(route.FallbackCluster);
        while (next is not null && _clusterIndex.ContainsKey(next) && !chain.Contains(next))
        {
            chain.Add(next);
            next = FallbackOf(next);
        }

        if (next == route.Cluster)
        {
            chain.Add(next);
            Error(path, $"the fallback chain loops back to the route's own cluster: {string.Join(" -> ", chain)}");
        }
    }

    private string? FallbackOf(string clusterId) => _clusters[_clusterIndex[clusterId]]?.FallbackCluster;

    private void ValidateClusters(IReadOnlyList<ClusterConfig?> clusters)
    {
        var reportedLoops = new HashSet<string>(StringComparer.Ordinal);
        for (int i = 0; i < clusters.Count; i++)
        {
            string path = $"$.clusters[{i}]";
            if (clusters[i] is not { } cluster)
            {
                Error(path, "must not be null");
                continue;
            }

            if (Id(cluster.Id, path + ".id", "cluster") && _clusterIndex[cluster.Id] != i)
            {
                Error(path + ".id", $"duplicate cluster id '{cluster.Id}'; it is already used by $.clusters[{_clusterIndex[cluster.Id]}]");
            }

            if (cluster.Destinations is null)
            {
                Error(path + ".destinations", "must not be null; a cluster needs at least one destination");
            }
            else
            {
                ValidateDestinations(cluster.Destinations, path + ".destinations");
            }
            if (Array.IndexOf(LoadBalancingPolicies, cluster.LoadBalancing) < 0)
            {
                Error(path + ".loadBalancing", $"unknown load balancing policy '{cluster.LoadBalancing}'; expected one of {string.Join(", ", LoadBalancingPolicies)}");
            }

            if (cluster.HealthCheck is { } healthCheck)
            {
                ValidateHealthCheck(healthCheck, path + ".healthCheck");
            }

            if (cluster.CircuitBreaker is { } breaker)
            {
                ValidateCircuitBreaker(breaker, path + ".circuitBreaker");
            }

            if (cluster.MaxConcurrentRequests is { } maxConcurrent)
            {
                AtLeast(maxConcurrent, 1, path + ".maxConcurrentRequests");
            }

            if (cluster.MaxConnectionsPerDestination is { } maxConnections)
            {
                AtLeast(maxConnections, 1, path + ".maxConnectionsPerDestination");
            }

            Duration(cluster.ConnectTimeoutMs, path + ".connectTimeoutMs");
            Duration(cluster.ResponseTimeoutMs, path + ".responseTimeoutMs");
            Duration(cluster.IdleTimeoutMs, path + ".idleTimeoutMs");
            if (cluster.FallbackCluster is not null)
            {
                ValidateClusterFallback(cluster, path + ".fallbackCluster", reportedLoops);
            }

            if (cluster.PassiveHealth is { } passive)
            {
                AtLeast(passive.ConsecutiveFailures, 1, path + ".passiveHealth.consecutiveFailures");
                Duration(passive.EjectionMs, path + ".passiveHealth.ejectionMs");
                Between(passive.MaxEjectionPercent, 0, 100, path + ".passiveHealth.maxEjectionPercent");
            }

            if (cluster.Retry is { } retry)
            {
                Between(retry.MaxAttempts, 1, MaxRetryAttempts, path + ".retry.maxAttempts");
                Between(retry.BudgetPercent, 0, 100, path + ".retry.budgetPercent");
                AtLeast(retry.MinConcurrent, 0, path + ".retry.minConcurrent");
            }

            if (cluster.Tls is { } tls)
            {
                ValidateUpstreamTls(tls, path + ".tls");
            }
        }
    }

    private void ValidateDestinations(IReadOnlyList<DestinationConfig?> destinations, string path)
    {
        if (destinations.Count == 0)
        {
            Error(path, "a cluster needs at least one destination");
            return;
        }

        var firstByAddress = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int j = 0; j < destinations.Count; j++)
        {
            string addressPath = $"{path}[{j}].address";
            if (NotNull(destinations[j], $"{path}[{j}]") is not { } destination
                || NotNull(destination.Address, addressPath) is not { } address)
            {
                continue;
            }

            if (ConfigSyntax.CheckEndpoint(address, allowDnsName: true, minPort: 1, out string key) is { } reason)
            {
                Error(addressPath, reason);
            }
            else if (!firstByAddress.TryAdd(key, j))
            {
                Error(addressPath, $"duplicate destination '{address}'; it is already listed at {path}[{firstByAddress[key]}]");
            }
        }
    }

    private void ValidateClusterFallback(ClusterConfig cluster, string path, HashSet<string> reportedLoops)
    {
        string fallback = cluster.FallbackCluster!;
        if (!Reference(fallback, path, required: false))
        {
            return;
        }

        if (fallback == cluster.Id)
        {
            Error(path, $"the fallback cluster '{fallback}' is the cluster itself; a fallback must be a different cluster");
            return;
        }

        // Follow the chain; report a loop once, on its first member in document order (this cluster, when it is one).
        var chain = new List<string> { cluster.Id };
        string? next = fallback;
        while (next is not null && _clusterIndex.ContainsKey(next) && !chain.Contains(next))
        {
            chain.Add(next);
            next = FallbackOf(next);
        }

        if (next == cluster.Id && !reportedLoops.Contains(cluster.Id))
        {
            chain.Add(next);
            reportedLoops.UnionWith(chain);
            Error(path, $"the fallback chain loops: {string.Join(" -> ", chain)}");
        }
    }

    private void ValidateHealthCheck(HealthCheckConfig healthCheck, string path)
    {
        if (healthCheck.Path is null)
        {
            Error(path + ".path", "must not be null");
        }
        else if (ConfigSyntax.CheckPath(healthCheck.Path) is { } reason)
        {
            Error(path + ".path", reason);
        }

        Duration(healthCheck.IntervalMs, path + ".intervalMs");
        Duration(healthCheck.TimeoutMs, path + ".timeoutMs");
        AtLeast(healthCheck.UnhealthyThreshold, 1, path + ".unhealthyThreshold");
        AtLeast(healthCheck.HealthyThreshold, 1, path + ".healthyThreshold");
        bool minOk = Between(healthCheck.ExpectedStatusMin, 100, 599, path + ".expectedStatusMin");
        bool maxOk = Between(healthCheck.ExpectedStatusMax, 100, 599, path + ".expectedStatusMax");
        if (minOk && maxOk && healthCheck.ExpectedStatusMax < healthCheck.ExpectedStatusMin)
        {
            Error(path + ".expectedStatusMax", $"must not be below expectedStatusMin ({healthCheck.ExpectedStatusMin}), got {healthCheck.ExpectedStatusMax}");
        }
    }

    private void ValidateCircuitBreaker(CircuitBreakerConfig breaker, string path)
    {
        AtLeast(breaker.ConsecutiveFailures, 1, path + ".consecutiveFailures");
        Duration(breaker.BreakMs, path + ".breakMs");
        if (breaker.FailureRatio is { } ratio && !(ratio > 0 && ratio <= 1))
        {
            Error(path + ".failureRatio", $"must be greater than 0 and at most 1 (leave it out to turn the ratio rule off), got {Format(ratio)}");
        }

        Between(breaker.MinimumRequests, 1, Resilience.CircuitBreaker.MaxMinimumRequests, path + ".minimumRequests");
        Duration(breaker.WindowMs, path + ".windowMs");
        Between(breaker.HalfOpenTrials, 1, Resilience.CircuitBreaker.MaxHalfOpenTrials, path + ".halfOpenTrials");
    }

    private void ValidateUpstreamTls(UpstreamTlsConfig tls, string path)
    {
        if (tls.ServerName is not null && ConfigSyntax.CheckDnsName(tls.ServerName) is { } reason)
        {
            Error(path + ".serverName", $"'{tls.ServerName}' is not a valid host name: {reason}");
        }

        NotEmptyWhenGiven(tls.CaFile, path + ".caFile");
        NotEmptyWhenGiven(tls.ClientCertFile, path + ".clientCertFile");
        NotEmptyWhenGiven(tls.ClientKeyFile, path + ".clientKeyFile");
        if (tls.ClientCertFile is not null && tls.ClientKeyFile is null)
        {
            Error(path + ".clientKeyFile", "is required when clientCertFile is given");
        }
        else if (tls.ClientKeyFile is not null && tls.ClientCertFile is null)
        {
            Error(path + ".clientCertFile", "is required when clientKeyFile is given");
        }
    }

    private void ValidateListeners(IReadOnlyList<ListenerConfig?> listeners)
    {
        var firstByAddress = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < listeners.Count; i++)
        {
            string path = $"$.listeners[{i}]";
            if (NotNull(listeners[i], path) is not { } listener || NotNull(listener.Address, path + ".address") is not { } address)
            {
                continue;
            }

            // Port 0 is allowed: the OS picks a free port (tests and ephemeral setups rely on it).
            if (ConfigSyntax.CheckEndpoint(address, allowDnsName: false, minPort: 0, out string key) is { } reason)
            {
                Error(path + ".address", reason);
            }
            else if (!key.EndsWith(":0", StringComparison.Ordinal) && !firstByAddress.TryAdd(key, i))
            {
                Error(path + ".address", $"duplicate listener address '{address}'; it is already used by $.listeners[{firstByAddress[key]}]");
            }

            if (listener.Tls is { } tls)
            {
                ValidateListenerTls(tls, path + ".tls");
            }
        }
    }

    private void ValidateListenerTls(ListenerTlsConfig tls, string path)
    {
        IReadOnlyList<ListenerCertificateConfig?> certificates = List(tls.Certificates, path + ".certificates");
        if (certificates.Count == 0)
        {
            Error(path + ".certificates", "a TLS listener needs at least one certificate");
        }

        for (int i = 0; i < certificates.Count; i++)
        {
            string certPath = $"{path}.certificates[{i}]";
            if (NotNull(certificates[i], certPath) is not { } certificate)
            {
                continue;
            }

            Required(certificate.CertFile, certPath + ".certFile");
            Required(certificate.KeyFile, certPath + ".keyFile");
            IReadOnlyList<string?> hosts = List(certificate.Hosts, certPath + ".hosts");
            for (int j = 0; j < hosts.Count; j++)
            {
                string hostPath = $"{certPath}.hosts[{j}]";
                if (NotNull(hosts[j], hostPath) is { } host && ConfigSyntax.CheckHostPattern(host) is { } reason)
                {
                    Error(hostPath, reason);
                }
            }
        }

        if (tls.DefaultCertificate is { } index && certificates.Count > 0)
        {
            Between(index, 0, certificates.Count - 1, path + ".defaultCertificate");
        }
    }

    private bool Id(string? id, string path, string kind)
    {
        if (string.IsNullOrWhiteSpace(id))
        {
            Error(path, $"a {kind} needs a non-empty id");
            return false;
        }

        return true;
    }

    // A cluster reference: true when it names a declared cluster.
    private bool Reference(string? clusterId, string path, bool required)
    {
        if (string.IsNullOrEmpty(clusterId))
        {
            Error(path, required ? "is required: the id of the cluster that serves this route" : "must not be empty; leave it out for no fallback");
            return false;
        }

        if (!_clusterIndex.ContainsKey(clusterId))
        {
            Error(path, $"unknown cluster '{clusterId}'; no cluster has this id");
            return false;
        }

        return true;
    }

    private void Required(string? value, string path)
    {
        if (string.IsNullOrEmpty(value))
        {
            Error(path, "is required");
        }
    }

    private void NotEmptyWhenGiven(string? value, string path)
    {
        if (value is { Length: 0 })
        {
            Error(path, "must not be empty; leave it out instead");
        }
    }

    private void Duration(int valueMs, string path)
    {
        if (valueMs <= 0 || valueMs > MaxDurationMs)
        {
            Error(path, $"must be greater than 0 and at most {MaxDurationMs} ms (1 day), got {valueMs}");
        }
    }

    private void AtLeast(int value, int min, string path)
    {
        if (value < min)
        {
            Error(path, $"must be at least {min}, got {value}");
        }
    }

    private bool Between(int value, int min, int max, string path)
    {
        if (value < min || value > max)
        {
            Error(path, $"must be from {min} to {max}, got {value}");
            return false;
        }

        return true;
    }

    // Code-built configs may carry nulls the JSON path never produces; report them instead of throwing.
    private IReadOnlyList<T?> List<T>(IReadOnlyList<T>? list, string path)
    {
        if (list is null)
        {
            Error(path, "must not be null; use an empty list");
            return [];
        }

        return list!;
    }

    private T? NotNull<T>(T? value, string path)
        where T : class
    {
        if (value is null)
        {
            Error(path, "must not be null");
        }

        return value;
    }

    private static string Format(double value) => value.ToString("R", CultureInfo.InvariantCulture);

    private void Error(string path, string message) => _errors.Add(new ConfigError(path, message));
}
