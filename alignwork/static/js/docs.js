/* Starts Swagger UI on /api/docs with the settings the page carries in data attributes (the
 * OpenAPI document's address, and OPENAPI_SWAGGER_UI_CONFIG): a file, not an inline script, so
 * the page's Content-Security-Policy can forbid inline scripts as the other pages' does. */
(function () {
  "use strict";

  var container = document.getElementById("swagger-ui-container");
  var config = { url: container.dataset.specUrl, dom_id: "#swagger-ui-container" };
  var overrides = JSON.parse(container.dataset.config || "{}");
  Object.keys(overrides).forEach(function (name) { config[name] = overrides[name]; });
  window.ui = window.SwaggerUIBundle(config);
}());
