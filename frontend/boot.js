// If the app module (or Leaflet, which it imports from node_modules) cannot load, say why.
// A file rather than an inline onerror attribute: the Content-Security-Policy allows no
// inline script or handler. Runs before the module, whose loading is deferred.
document.getElementById("app-script")?.addEventListener("error", () => {
  const status = document.getElementById("map-status");
  if (status) {
    status.textContent =
      "The page could not load its map library (frontend/node_modules missing? run: npm ci --prefix frontend)";
  }
});
