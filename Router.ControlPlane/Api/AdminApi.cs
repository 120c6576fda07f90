using System.Text.Json;
using Router.ControlPlane.Hub;
using Router.ControlPlane.Store;
using Router.Core.Configuration;

namespace Router.ControlPlane.Api;

/// <summary>The admin REST API under <c>/api</c>, guarded by the admin bearer token.</summary>
internal static class AdminApi
{
    /// <summary>Largest config document accepted by <c>PUT /api/config</c> (what the wire protocol can carry).</summary>
    private const int MaxConfigBytes = Router.Core.ControlPlane.ControlPlaneCodec.MaxFrameBytes - 4096;

    public static void MapAdminApi(this IEndpointRouteBuilder app, string adminToken)
    {
        var api = app.MapGroup("/api");
        api.AddEndpointFilter(async (context, next) =>
            BearerToken.Matches(context.HttpContext.Request, adminToken) ? await next(context) : Results.Unauthorized());

        api.MapGet("/config", IResult (ConfigStore store) =>
        {
            var current = store.Current;
            if (current is null)
            {
                return NotFound("no config has been stored yet");
            }

            using var doc = JsonDocument.Parse(current.Json);
            return TypedResults.Json(
                new ConfigResponse(current.Version, current.Hash, current.Info.CreatedUtc, current.Info.Source, doc.RootElement.Clone()),
                ApiJsonContext.Default.ConfigResponse);
        });

        api.MapPut("/config", async Task<IResult> (HttpRequest request, ConfigStore store) =>
        {
            var body = await ReadBodyAsync(request);
            if (body is null)
            {
                return TypedResults.Json(new ErrorResponse($"the config is larger than {MaxConfigBytes} bytes"), ApiJsonContext.Default.ErrorResponse, statusCode: StatusCodes.Status413PayloadTooLarge);
            }

            var result = ConfigLoader.Load(body);
            if (!result.IsValid)
            {
                return TypedResults.Json(new ErrorsResponse(result.Errors), ApiJsonContext.Default.ErrorsResponse, statusCode: StatusCodes.Status400BadRequest);
            }

            var (config, created) = store.Add(ConfigLoader.Serialize(result.Config!), result.Hash, "api");
            return TypedResults.Json(new VersionResponse(config.Version, config.Hash, created), ApiJsonContext.Default.VersionResponse);
        });

        api.MapGet("/config/history", (ConfigStore store) =>
            TypedResults.Json(new HistoryResponse(store.Current?.Version, store.History()), ApiJsonContext.Default.HistoryResponse));

        api.MapPost("/config/rollback/{version:long}", IResult (long version, ConfigStore store) =>
        {
            if (store.Rollback(version) is not { } rolled)
            {
                return NotFound($"version {version} does not exist");
            }

            return TypedResults.Json(new VersionResponse(rolled.Config.Version, rolled.Config.Hash, rolled.Created), ApiJsonContext.Default.VersionResponse);
        });

        api.MapGet("/routers", (FleetStatus fleet) =>
            TypedResults.Json(new RoutersResponse(fleet.Snapshot()), ApiJsonContext.Default.RoutersResponse));
    }

    private static IResult NotFound(string message) =>
        TypedResults.Json(new ErrorResponse(message), ApiJsonContext.Default.ErrorResponse, statusCode: StatusCodes.Status404NotFound);

    /// <summary>The whole body, or null when it exceeds <see cref="MaxConfigBytes"/>.</summary>
    private static async Task<byte[]?> ReadBodyAsync(HttpRequest request)
    {
        if (request.ContentLength > MaxConfigBytes)
        {
            return null;
        }

        using var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        int read;
        while ((read = await request.Body.ReadAsync(chunk, request.HttpContext.RequestAborted)) > 0)
        {
            if (buffer.Length + read > MaxConfigBytes)
            {
                return null;
            }

            buffer.Write(chunk, 0, read);
        }

        return buffer.ToArray();
    }
}
