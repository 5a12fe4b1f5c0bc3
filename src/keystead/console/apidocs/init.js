// Starts Swagger UI on Keystead's own OpenAPI document. A file of its own, not an inline
// script, so that the page runs under the Content-Security-Policy without 'unsafe-inline'.
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
  // Calls made from this page carry the console's session cookie; unsafe ones need the
  // session's CSRF token, which the page fetches once from GET /api/admin/v1/session.
  requestInterceptor: async (request) => {
    const method = (request.method || "GET").toUpperCase();
    if (!["GET", "HEAD", "OPTIONS"].includes(method) && !request.headers["X-CSRF-Token"]) {
      const session = await fetch("/api/admin/v1/session", { credentials: "same-origin" });
      if (session.ok) request.headers["X-CSRF-Token"] = (await session.json()).csrf_token;
    }
    return request;
  },
});
