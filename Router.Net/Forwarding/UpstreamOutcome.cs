namespace Router.Net.Forwarding;

/// <summary>How one forwarding attempt ended, and so which side failed (for breakers, retries and the status we answer).</summary>
internal enum UpstreamOutcome
{
    /// <summary>The upstream answered with a non-5xx status and the exchange completed.</summary>
    Success,

    /// <summary>The upstream answered 5xx (relayed to the client; counts as a failure for health).</summary>
    ServerError,

    /// <summary>Connection refused or unreachable. Nothing was sent: retryable.</summary>
    ConnectFailed,

    /// <summary>Connect did not finish in time. Nothing was sent: retryable.</summary>
    ConnectTimeout,

    /// <summary>The destination's connection limit is reached (local, not the upstream's fault).</summary>
    PoolExhausted,

    /// <summary>The upstream closed or reset before any response byte.</summary>
    NoResponse,

    /// <summary>No response head within the response timeout.</summary>
    ResponseTimeout,

    /// <summary>The response head was malformed or ambiguous (never passed through).</summary>
    BadResponse,

    /// <summary>The response broke after it started; the client connection was cut.</summary>
    StreamBroken,

    /// <summary>The client went away; nobody to answer.</summary>
    ClientGone,

    /// <summary>The client's chunked body was malformed: 400.</summary>
    BadRequestBody,

    /// <summary>The client's body passed <c>HttpLimits.MaxRequestBodyBytes</c> before the upstream answered: 413.</summary>
    RequestBodyTooLarge,

    /// <summary>The client's body came slower than <c>HttpLimits.MinRequestBodyDataRate</c> before the upstream answered: 408.</summary>
    RequestBodyTooSlow,

    /// <summary>A pooled connection had been closed by the upstream while idle: retry on a new one.</summary>
    StalePooledConnection,

    /// <summary>
    /// This process could not make a socket (out of descriptors or socket buffers): says nothing about the destination,
    /// so it counts against no breaker or outlier detector, and is not retried (the next connect would fail the same).
    /// </summary>
    LocalResources,
}

/// <summary>Which limit shed a request (the <c>X-Router-Shed</c> header and the shed counter's label).</summary>
internal enum ShedReason
{
    Global,
    Route,
    Cluster,
    DestinationConnections,
    NoDestination,
}

/// <summary>Pre-encoded headers for shed responses.</summary>
internal static class ShedHeaders
{
    private static readonly byte[][] s_headers =
    [
        "Retry-After: 1\r\nX-Router-Shed: global-limit\r\n"u8.ToArray(),
        "Retry-After: 1\r\nX-Router-Shed: route-limit\r\n"u8.ToArray(),
        "Retry-After: 1\r\nX-Router-Shed: cluster-limit\r\n"u8.ToArray(),
        "Retry-After: 1\r\nX-Router-Shed: destination-connection-limit\r\n"u8.ToArray(),
        "Retry-After: 5\r\nX-Router-Shed: no-available-destination\r\n"u8.ToArray(),
    ];

    public static byte[] For(ShedReason reason) => s_headers[(int)reason];

    public static string Label(ShedReason reason) => reason switch
    {
        ShedReason.Global => "global",
        ShedReason.Route => "route",
        ShedReason.Cluster => "cluster",
        ShedReason.DestinationConnections => "destination_connections",
        _ => "no_destination",
    };
}

/// <summary>Lower-case names of outcomes for the access log, computed once.</summary>
internal static class OutcomeNames
{
    private static readonly string[] s_names = BuildNames();

    public static string Of(UpstreamOutcome outcome) => s_names[(int)outcome];

    private static string[] BuildNames()
    {
        var values = Enum.GetValues<UpstreamOutcome>();
        var names = new string[values.Length];
        foreach (var value in values)
        {
            var name = value.ToString();
            var builder = new System.Text.StringBuilder(name.Length + 4);
            for (int i = 0; i < name.Length; i++)
            {
                if (char.IsUpper(name[i]) && i > 0)
                {
                    builder.Append('_');
                }

                builder.Append(char.ToLowerInvariant(name[i]));
            }

            names[(int)value] = builder.ToString();
        }

        return names;
    }
}
