namespace Router.Core.Routing;

/// <summary>
/// HTTP methods as bits, so a route's method filter is one AND for the common methods.
/// Methods are case-sensitive (RFC 9110 section 9.1); anything not listed here is <see cref="Custom"/>.
/// </summary>
internal static class RouteMethods
{
    public const int Get = 1 << 0;
    public const int Head = 1 << 1;
    public const int Post = 1 << 2;
    public const int Put = 1 << 3;
    public const int Delete = 1 << 4;
    public const int Options = 1 << 5;
    public const int Patch = 1 << 6;
    public const int Trace = 1 << 7;
    public const int Connect = 1 << 8;

    /// <summary>A method outside the known set; the route's custom list decides.</summary>
    public const int Custom = 1 << 30;

    /// <summary>Mask of a route without a method filter.</summary>
    public const int Any = -1;

    public static int Parse(ReadOnlySpan<byte> method) => method.Length switch
    {
        3 when method.SequenceEqual("GET"u8) => Get,
        3 when method.SequenceEqual("PUT"u8) => Put,
        4 when method.SequenceEqual("POST"u8) => Post,
        4 when method.SequenceEqual("HEAD"u8) => Head,
        5 when method.SequenceEqual("PATCH"u8) => Patch,
        5 when method.SequenceEqual("TRACE"u8) => Trace,
        6 when method.SequenceEqual("DELETE"u8) => Delete,
        7 when method.SequenceEqual("OPTIONS"u8) => Options,
        7 when method.SequenceEqual("CONNECT"u8) => Connect,
        _ => Custom,
    };
}
