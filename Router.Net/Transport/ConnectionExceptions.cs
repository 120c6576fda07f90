using System.IO;

namespace Router.Net.Transport;

/// <summary>The peer reset the connection.</summary>
internal sealed class ConnectionResetException : IOException
{
    public ConnectionResetException(string message, Exception inner)
        : base(message, inner)
    {
    }
}

/// <summary>The connection was aborted locally (timeout, shutdown, error on the other side of a proxied exchange).</summary>
internal sealed class ConnectionAbortedException : IOException
{
    public ConnectionAbortedException(string message)
        : base(message)
    {
    }
}
