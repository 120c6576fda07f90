using Yarp.ReverseProxy.Configuration;

// YARP with its defaults, for the end-to-end comparison (bench/e2e/run.sh).
// Usage: YarpHost --listen 127.0.0.1:PORT --upstream 127.0.0.1:PORT (or YARP_LISTEN / YARP_UPSTREAM).
var listen = Arg(args, "--listen") ?? Environment.GetEnvironmentVariable("YARP_LISTEN") ?? "127.0.0.1:8084";
var upstream = Arg(args, "--upstream") ?? Environment.GetEnvironmentVariable("YARP_UPSTREAM") ?? "127.0.0.1:9000";

var builder = WebApplication.CreateSlimBuilder();
builder.Logging.ClearProviders();
builder.WebHost.UseUrls("http://" + listen);

var routes = new[]
{
    new RouteConfig { RouteId = "r", ClusterId = "c", Match = new RouteMatch { Path = "{**catch-all}" } },
};
var clusters = new[]
{
    new ClusterConfig
    {
        ClusterId = "c",
        Destinations = new Dictionary<string, DestinationConfig> { ["d"] = new() { Address = "http://" + upstream + "/" } },
    },
};
builder.Services.AddReverseProxy().LoadFromMemory(routes, clusters);

var app = builder.Build();
app.MapReverseProxy();
await app.RunAsync();

static string? Arg(string[] args, string name)
{
    for (var i = 0; i < args.Length - 1; i++)
    {
        if (args[i] == name)
        {
            return args[i + 1];
        }
    }

    return null;
}
