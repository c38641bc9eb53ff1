// Small inline SVG mode icons (no icon font / emoji dependency: headless and minimal systems lack them).
const PATHS = {
  walk: '<circle cx="13" cy="4" r="2"/><path d="M9.5 22l2-7 2.5 2.5V22h2v-6l-2.6-2.6.8-3.9A6 6 0 0 0 18 12v-2a4 4 0 0 1-3.3-1.8l-1-1.6A2 2 0 0 0 12 5.6c-.3 0-.5.1-.8.1L6 8v5h2V9.3l1.8-.7L8 17l-4.9-1-.4 2 6.8 1.4z"/>',
  bus: '<path d="M4 16c0 .9.4 1.7 1 2.2V20a1 1 0 0 0 1 1h1a1 1 0 0 0 1-1v-1h8v1a1 1 0 0 0 1 1h1a1 1 0 0 0 1-1v-1.8c.6-.5 1-1.3 1-2.2V6c0-3.5-3.6-4-8-4S4 2.5 4 6v10zm3.5 1a1.5 1.5 0 1 1 0-3 1.5 1.5 0 0 1 0 3zm9 0a1.5 1.5 0 1 1 0-3 1.5 1.5 0 0 1 0 3zM18 11H6V6h12v5z"/>',
  rail: '<path d="M12 2C8 2 4 2.5 4 6v9.5A3.5 3.5 0 0 0 7.5 19L6 20.5v.5h2.2l2-2h3.6l2 2H18v-.5L16.5 19a3.5 3.5 0 0 0 3.5-3.5V6c0-3.5-3.6-4-8-4zM7.5 17a1.5 1.5 0 1 1 0-3 1.5 1.5 0 0 1 0 3zm3.5-7H6V6h5v4zm2 0V6h5v4h-5zm3.5 7a1.5 1.5 0 1 1 0-3 1.5 1.5 0 0 1 0 3z"/>',
  tram: '<path d="M19 16.9V9c0-2.8-2.6-3.4-6-3.5l.8-1.5H17V2H7v2h4.8l-.8 1.5C7.9 5.6 5 6.2 5 9v7.9A3 3 0 0 0 7 20l-1 1v1h2.2l2-2h3.6l2 2H18v-1l-1-1a3 3 0 0 0 2-3.1zM12 18.5a1.5 1.5 0 1 1 0-3 1.5 1.5 0 0 1 0 3zm5-4.5H7V9h10v5z"/>',
  subway: '<path d="M12 2a9 9 0 0 0-9 9v11h18V11a9 9 0 0 0-9-9zm-4.5 15a1.5 1.5 0 1 1 0-3 1.5 1.5 0 0 1 0 3zM6 12V8h12v4H6zm10.5 5a1.5 1.5 0 1 1 0-3 1.5 1.5 0 0 1 0 3z"/>',
  ferry: '<path d="M20 21c-1.4 0-2.8-.5-4-1.3-2.4 1.7-5.6 1.7-8 0-1.2.8-2.6 1.3-4 1.3H2v2h2c1.4 0 2.7-.3 4-1 2.5 1.3 5.5 1.3 8 0 1.3.7 2.6 1 4 1h2v-2h-2zM3.9 19H4c1.6 0 3-.9 4-2 1 1.1 2.4 2 4 2s3-.9 4-2c1 1.1 2.4 2 4 2h.1l1.9-6.7c.1-.3.1-.6-.1-.8-.1-.2-.4-.4-.6-.4L20 10.6V6a2 2 0 0 0-2-2h-3V1H9v3H6a2 2 0 0 0-2 2v4.6l-1.3.4c-.3.1-.5.2-.6.4-.2.3-.2.6-.1.8L3.9 19zM6 6h12v4l-6-2-6 2V6z"/>',
  bicycle: '<path d="M15.5 5.5a2 2 0 1 0 0-4 2 2 0 0 0 0 4zM5 12a5 5 0 1 0 0 10 5 5 0 0 0 0-10zm0 8.5a3.5 3.5 0 1 1 0-7 3.5 3.5 0 0 1 0 7zm5.8-10l2.4-2.4.8.8A7 7 0 0 0 19.1 11V9c-1.5 0-2.7-.6-3.6-1.5l-1.9-1.9a2.3 2.3 0 0 0-1.6-.6c-.6 0-1.1.2-1.4.6L7.8 8.4c-.4.4-.6.9-.6 1.4 0 .6.2 1.1.6 1.4L11 14v5h2v-6.2l-2.2-2.3zM19 12a5 5 0 1 0 0 10 5 5 0 0 0 0-10zm0 8.5a3.5 3.5 0 1 1 0-7 3.5 3.5 0 0 1 0 7z"/>',
  car: '<path d="M18.9 6A1.5 1.5 0 0 0 17.5 5h-11c-.7 0-1.2.4-1.4 1L3 12v8a1 1 0 0 0 1 1h1a1 1 0 0 0 1-1v-1h12v1a1 1 0 0 0 1 1h1a1 1 0 0 0 1-1v-8l-2.1-6zM6.5 16a1.5 1.5 0 1 1 0-3 1.5 1.5 0 0 1 0 3zm11 0a1.5 1.5 0 1 1 0-3 1.5 1.5 0 0 1 0 3zM5 11l1.5-4.5h11L19 11H5z"/>',
  scooter: '<path d="M14 3h4v2h-2.4l2.2 8.1A4 4 0 1 1 15 17H9a4 4 0 1 1-3.5-4h.6l1.2-1H12l2.4 4h.6a4 4 0 0 1 1-2.6L14 5V3zM5 15a2 2 0 1 0 0 4 2 2 0 0 0 0-4zm14 0a2 2 0 1 0 0 4 2 2 0 0 0 0-4z"/>',
};
PATHS.bike = PATHS.bikeshare = PATHS.bicycle;
PATHS.carshare = PATHS.car;
PATHS.transit = PATHS.bus;
PATHS.cable_car = PATHS.gondola = PATHS.funicular = PATHS.tram;
PATHS.trolleybus = PATHS.bus;
PATHS.monorail = PATHS.rail;

export function modeIcon(mode) {
  const body = PATHS[mode] ?? PATHS.bus;
  return `<svg viewBox="0 0 24 24" fill="currentColor" aria-hidden="true" focusable="false">${body}</svg>`;
}
