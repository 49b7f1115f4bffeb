// Starts Swagger UI on /docs. A file of its own (no inline script), so a Content-Security-Policy of
// script-src 'self' allows it; validatorUrl null: the page never calls the online validator.
window.addEventListener("load", function () {
  var node = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: node.getAttribute("data-spec-url"),
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout"
  });
});
