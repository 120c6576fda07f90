namespace Router.ControlPlane.Dashboard;

/// <summary>
/// <c>GET /dashboard</c>: a static page (HTML, script, stylesheet; no CDN) that polls <c>GET /api/routers</c> and
/// <c>GET /api/config/history</c> every second and shows the fleet live.
/// </summary>
/// <remarks>
/// The page itself holds no data, so it is served without auth; every byte of fleet state still comes from the admin
/// API with the admin bearer token, which the page's script sends. The operator hands the token over in the URL
/// fragment (<c>/dashboard#token=...</c>, never sent to the server or logged) or, if a tool cannot set fragments, in
/// <c>?token=</c>; the script moves it to sessionStorage and strips it from the address bar.
/// </remarks>
internal static class DashboardEndpoints
{
    // Script and styles are separate files so the CSP can forbid inline script: the page renders router-supplied
    // strings (NACK messages), and textContent plus this CSP keep them inert.
    private const string ContentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

    public static void MapDashboard(this IEndpointRouteBuilder app)
    {
        app.MapGet("/dashboard", (HttpContext context) => Serve(context, DashboardAssets.Html, "text/html; charset=utf-8"));
        app.MapGet("/dashboard/app.js", (HttpContext context) => Serve(context, DashboardAssets.Script, "text/javascript; charset=utf-8"));
        app.MapGet("/dashboard/app.css", (HttpContext context) => Serve(context, DashboardAssets.Styles, "text/css; charset=utf-8"));
    }

    private static IResult Serve(HttpContext context, string content, string contentType)
    {
        var headers = context.Response.Headers;
        headers.CacheControl = "no-store";
        headers.ContentSecurityPolicy = ContentSecurityPolicy;
        headers.XContentTypeOptions = "nosniff";
        headers["Referrer-Policy"] = "no-referrer";
        return Results.Text(content, contentType);
    }
}
