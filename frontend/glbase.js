// The labelled base map: MapLibre GL draws our own vector tiles (streets and their names, water,
// parks, rail, landmarks) as one Leaflet layer, under everything Leaflet draws (legs, pins,
// congestion). Leaflet keeps the input, the overlays and their accessibility; MapLibre only
// paints. Style, tiles and fonts all come from this app (GET /api/v1/cities/{id}/style.json).
//
// The syncing follows @maplibre/maplibre-gl-leaflet (ISC): a canvas a little larger than the
// view, re-centred on every move, scaled with CSS during Leaflet's zoom animation.
import * as L from "/static/node_modules/leaflet/dist/leaflet-src.esm.js";

const MAPLIBRE = "/static/node_modules/maplibre-gl/dist/maplibre-gl.mjs";
let maplibre = null;

/** MapLibre's module, imported on first use: the page boots (form, cities, stops) while its
 *  1 MB is still parsing (index.html preloads it, so the download starts with the page). */
export function loadMapLibre() {
  maplibre ??= import(MAPLIBRE);
  return maplibre;
}

const PADDING = 0.1; // share of the view drawn beyond each edge, so panning shows no blank band

/** Whether this browser has WebGL 2 at all (MapLibre 6 needs it). Cheap: creating a context to
 *  be sure costs as much as MapLibre's own, so a failure there is caught instead (`failed`). */
export function webglAvailable() {
  return typeof window.WebGL2RenderingContext === "function";
}

export const GLBaseLayer = L.Layer.extend({
  // `maplibre`: the module from loadMapLibre(); `style`: the style object
  options: { pane: "tilePane", style: null, maplibre: null },

  initialize(options) {
    L.setOptions(this, options);
    this._throttledUpdate = L.Util.throttle(this._update, 32, this);
  },

  onAdd(map) {
    if (!this._container) {
      this._container = L.DomUtil.create("div", "leaflet-gl-layer");
      this._container.setAttribute("aria-hidden", "true");
    }
    map.getPane(this.options.pane).appendChild(this._container);
    this._resizeContainer();
    this._placeContainer();
    const center = map.getCenter();
    try {
      this._glMap = this._createGLMap(center);
    } catch (error) {
      // no WebGL 2 context after all (blocklisted GPU, lost device): the caller falls back
      this.failed = error;
      this._container.remove();
      return;
    }
    this._canvas = this._glMap.getCanvas();
    this._canvas.classList.add("leaflet-zoom-animated");
    this._canvas.removeAttribute("tabindex"); // Leaflet's container is the one focusable map
    this._canvas.setAttribute("aria-hidden", "true");
    this._offset = map.containerPointToLayerPoint([0, 0]);
    if (map.options.zoomAnimation) L.DomEvent.on(map._proxy, L.DomUtil.TRANSITION_END, this._transitionEnd, this);
  },

  _createGLMap(center) {
    const glMap = new this.options.maplibre.Map({
      container: this._container,
      style: this.options.style,
      center: [center.lng, center.lat],
      zoom: this._map.getZoom() - 1, // MapLibre counts 512 px tiles, Leaflet 256 px ones
      interactive: false,
      attributionControl: false,
      renderWorldCopies: false,
      fadeDuration: 0, // labels appear at once: no fade frames to draw before `idle`
      // a 3× phone screen drawn at 2× looks the same and fills a third fewer pixels
      pixelRatio: Math.min(window.devicePixelRatio || 1, 2),
    });
    // User Timing marks from navigation start: what the base-map benchmark and tests read.
    glMap.once("load", () => performance.mark("basemap-load"));
    this._idle = new Promise((resolve) => {
      glMap.once("idle", () => {
        performance.mark("basemap-idle");
        this._container.dataset.state = "idle";
        resolve(true);
      });
    });
    // Leaflet decides where the view may go; MapLibre must follow it exactly.
    glMap.setTransformConstrain?.((lngLat, zoom) => ({ center: lngLat, zoom }));
    return glMap;
  },

  onRemove(map) {
    if (this.failed) return;
    if (map._proxy && map.options.zoomAnimation) L.DomEvent.off(map._proxy, L.DomUtil.TRANSITION_END, this._transitionEnd, this);
    this._glMap?.remove();
    this._glMap = null;
    this._container.remove();
  },

  getEvents() {
    return {
      move: this._throttledUpdate,
      zoomanim: this._animateZoom,
      zoom: this._pinchZoom,
      zoomstart: this._zoomStart,
      zoomend: this._zoomEnd,
      resize: this._resize,
    };
  },

  /** Resolves true once the map has first drawn everything in view (style, tiles, fonts),
   *  false if that took longer than `timeoutMs` (it goes on drawing in the background). */
  whenIdle(timeoutMs) {
    return Promise.race([this._idle, new Promise((resolve) => setTimeout(resolve, timeoutMs, false))]);
  },

  /** The MapLibre map (for tests and the benchmark: `load`, `idle`, `queryRenderedFeatures`). */
  getGLMap() {
    return this._glMap;
  },

  _size() {
    return this._map.getSize().multiplyBy(1 + PADDING * 2);
  },

  _resizeContainer() {
    const size = this._size();
    this._container.style.width = `${size.x}px`;
    this._container.style.height = `${size.y}px`;
  },

  _placeContainer() {
    const offset = this._map.getSize().multiplyBy(PADDING);
    const topLeft = this._map.containerPointToLayerPoint([0, 0]).subtract(offset).round();
    L.DomUtil.setPosition(this._container, topLeft);
  },

  _jump() {
    const center = this._map.getCenter();
    this._glMap.jumpTo({ center: [center.lng, center.lat], zoom: this._map.getZoom() - 1 });
  },

  _update() {
    if (!this._map || !this._glMap) return;
    this._offset = this._map.containerPointToLayerPoint([0, 0]);
    if (this._zooming) return;
    this._placeContainer();
    this._jump();
  },

  _pinchZoom() {
    if (this._glMap) this._jump();
  },

  _animateZoom(e) {
    const map = this._map;
    const scale = map.getZoomScale(e.zoom);
    const padding = map.getSize().multiplyBy(PADDING * scale);
    const viewHalf = this._size()._divideBy(2);
    const topLeft = map.project(e.center, e.zoom)._subtract(viewHalf)._add(map._getMapPanePos().add(padding))._round();
    const offset = map.project(map.getBounds().getNorthWest(), e.zoom)._subtract(topLeft);
    L.DomUtil.setTransform(this._canvas, offset.subtract(this._offset), scale);
  },

  _zoomStart() {
    this._zooming = true;
  },

  _zoomEnd() {
    if (!this._glMap) return;
    L.DomUtil.setTransform(this._canvas, null, 1);
    this._zooming = false;
    this._update();
  },

  _transitionEnd() {
    L.Util.requestAnimFrame(() => {
      if (!this._map || !this._glMap) return;
      this._resizeContainer();
      this._glMap.resize();
      this._zoomEnd();
    });
  },

  _resize() {
    this._transitionEnd();
  },
});
