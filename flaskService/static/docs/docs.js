// Starts Swagger UI on /openapi.json. A file, not an inline script, so a strict
// Content-Security-Policy (script-src 'self') can stay on.
window.addEventListener("load", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.specUrl,
    domNode: root,
    deepLinking: true,
    tryItOutEnabled: true,
    displayRequestDuration: true,
    // Swagger UI's default validator badge calls an outside server; these servers are often offline.
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
