namespace Router.Core.LoadBalancing;

/// <summary>How a cluster chooses a destination for a request.</summary>
internal enum LoadBalancingPolicy
{
    /// <summary>Each available destination in turn.</summary>
    RoundRobin,

    /// <summary>The available destination with the fewest requests in flight (first one on a tie).</summary>
    LeastRequests,

    /// <summary>Two distinct available destinations at random; the one with fewer requests in flight.</summary>
    PowerOfTwoChoices,
}

internal static class LoadBalancingPolicies
{
    /// <summary>Maps the config name; unknown names (the validator rejects them) fall back to round robin.</summary>
    public static LoadBalancingPolicy Parse(string? name) => name switch
    {
        _ when string.Equals(name, "leastRequests", StringComparison.OrdinalIgnoreCase) => LoadBalancingPolicy.LeastRequests,
        _ when string.Equals(name, "powerOfTwoChoices", StringComparison.OrdinalIgnoreCase) => LoadBalancingPolicy.PowerOfTwoChoices,
        _ => LoadBalancingPolicy.RoundRobin,
    };
}
