using Router.Core.Routing;

namespace Router.Core.LoadBalancing;

/// <summary>
/// Which destinations a pick may choose. A struct implementation passed as a generic argument is inlined,
/// so filtering costs no delegate call and no allocation.
/// </summary>
internal interface IDestinationFilter
{
    bool Allows(DestinationState destination);
}

/// <summary>Destinations that are healthy and whose breaker lets requests through.</summary>
internal readonly struct AvailableDestinations : IDestinationFilter
{
    public bool Allows(DestinationState destination) => destination.IsAvailable;
}

/// <summary>Every destination (the caller has filtered already).</summary>
internal readonly struct AllDestinations : IDestinationFilter
{
    public bool Allows(DestinationState destination) => true;
}
