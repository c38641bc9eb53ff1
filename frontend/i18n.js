// Message catalogues. Every user-visible text goes through t(key, params); the API carries
// codes and parameters and the app words them. Catalogues: locales/<lang>.json, flat
// {"key": "text with {param}"}. English is the fallback for a missing key.
// (Minimal first version: the appux branch replaces the loader and adds the languages.)

const catalogues = { en: {} };
let current = "en";

export async function loadLanguage(lang) {
  for (const code of new Set([lang, "en"])) {
    if (catalogues[code] && Object.keys(catalogues[code]).length) continue;
    const response = await fetch(`/static/locales/${code}.json`);
    if (response.ok) catalogues[code] = await response.json();
  }
  current = catalogues[lang] ? lang : "en";
}

export function language() {
  return current;
}

export function t(key, params = {}) {
  const text = catalogues[current]?.[key] ?? catalogues.en[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (whole, name) => (name in params ? String(params[name]) : whole));
}
