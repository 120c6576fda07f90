using System.Text.Json;
using Router.Net.Hosting;

namespace Router.Net.ControlPlane;

/// <summary>Shows the control-plane client's state on <c>/admin/config</c> and <c>/metrics</c>.</summary>
internal sealed class ControlPlaneStatus : IStatusContributor
{
    private readonly ControlPlaneClient _client;
    private readonly Uri _uri;

    public ControlPlaneStatus(ControlPlaneClient client, Uri uri)
    {
        _client = client;
        _uri = uri;
    }

    public void WriteStatus(Utf8JsonWriter writer)
    {
        writer.WriteString("url", _uri.ToString());
        writer.WriteString("state", _client.State.ToString());
        if (_client.AppliedVersion is { } version)
        {
            writer.WriteNumber("appliedVersion", version);
        }

        writer.WriteString("appliedHash", _client.AppliedHash);
        writer.WriteString("lastError", _client.LastError);
        writer.WriteNumber("connects", _client.ConnectCount);
    }

    public bool Connected => _client.State == ControlPlaneState.Connected;

    public long? AppliedVersion => _client.AppliedVersion;
}
