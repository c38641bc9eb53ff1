// Starts Swagger UI on /docs (api/routes/pages.py): the call FastAPI would inline, kept in a
// file so the page needs no inline script. The OpenAPI URL comes from this tag's data attribute.
const openapiUrl = document.currentScript?.dataset.openapiUrl || "/openapi.json";
window.ui = window.SwaggerUIBundle({
  url: openapiUrl,
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  presets: [window.SwaggerUIBundle.presets.apis, window.SwaggerUIBundle.SwaggerUIStandalonePreset],
});
