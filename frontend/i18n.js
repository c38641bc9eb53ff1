// Message catalogues. Every user-visible text goes through t(key, params); the API carries
// codes and parameters and the app words them. Catalogues: locales/<lang>.json, flat
// {"key": "text with {param}"}; a plural text is {"one": "...", "other": "..."} (any
// Intl.PluralRules category), chosen by the `count` parameter; an exact form such as "=0"
// (ICU MessageFormat's) wins for that very count: Intl puts 0 in pt-BR's "one", where a
// Brazilian reader expects "sem baldeação", not "0 baldeação". English is the fallback for a
// missing key (the tests keep every catalogue complete, so it never shows in practice).
//
// The language: the one chosen in the page (remembered on this device, localStorage), else the
// first of the browser's languages (navigator.languages) we have, else English. Static markup
// carries data-i18n="key" (its text) and data-i18n-attr="attr:key;attr:key" (attributes), and
// applyTranslations(root) words it. Changing language fires a "languagechange" event on window
// (the browser's own event of that name means the same thing: re-word the page).
//
// No library: the four catalogues are flat key → template files, plural rules and number/date
// formats come from Intl, and this file stays small enough to read (see frontend/README.md).

export const LANGUAGES = {
  en: { name: "English", locale: "en-GB" },
  fr: { name: "Français", locale: "fr-FR" },
  "pt-BR": { name: "Português (Brasil)", locale: "pt-BR" },
  nb: { name: "Norsk bokmål", locale: "nb-NO" },
};
const STORAGE_KEY = "correspondance.lang";
// Browser language tags that mean one of ours: any Portuguese reads Brazilian Portuguese,
// Norwegian ("no", "nn", "nb") reads Bokmål.
const ALIASES = { pt: "pt-BR", no: "nb", nn: "nb" };

const catalogues = {};
let current = "en";

/** The best of our languages for a list of BCP 47 tags (navigator.languages order); "en" when none fits. */
export function negotiate(tags) {
  for (const tag of tags ?? []) {
    const text = String(tag ?? "");
    if (!text) continue;
    const exact = Object.keys(LANGUAGES).find((code) => code.toLowerCase() === text.toLowerCase());
    if (exact) return exact;
    const primary = text.split(/[-_]/)[0].toLowerCase();
    if (ALIASES[primary]) return ALIASES[primary];
    if (LANGUAGES[primary]) return primary;
  }
  return "en";
}

/** The language this device asked for: the page's choice, else the browser's languages. */
export function preferredLanguage() {
  let stored = null;
  try {
    stored = localStorage.getItem(STORAGE_KEY);
  } catch {
    // storage refused (private mode): the browser's languages decide
  }
  if (stored && LANGUAGES[stored]) return stored;
  return negotiate(navigator.languages?.length ? navigator.languages : [navigator.language]);
}

async function fetchCatalogue(code) {
  if (catalogues[code]) return;
  const response = await fetch(`/static/locales/${code}.json`);
  if (!response.ok) throw new Error(`catalogue ${code}: HTTP ${response.status}`);
  catalogues[code] = await response.json();
}

/** Load `lang` (and English, the fallback) and make it current; sets <html lang>. */
export async function loadLanguage(lang) {
  const wanted = LANGUAGES[lang] ? lang : "en";
  try {
    await fetchCatalogue("en");
  } catch {
    catalogues.en = {}; // unreadable: the markup keeps its English, t() its keys
  }
  try {
    await fetchCatalogue(wanted);
    current = wanted;
  } catch {
    current = "en";
  }
  document.documentElement.lang = current;
  return current;
}

/** Switch language in the page: remembered on this device, the page re-worded. */
export async function setLanguage(lang) {
  const code = await loadLanguage(lang);
  try {
    localStorage.setItem(STORAGE_KEY, code);
  } catch {
    // not remembered, still switched
  }
  applyTranslations(document);
  window.dispatchEvent(new Event("languagechange"));
  return code;
}

export function language() {
  return current;
}

/** The Intl locale of the current language ("fr-FR"): numbers, dates, plural rules. */
export function locale() {
  return LANGUAGES[current]?.locale ?? "en-GB";
}

function lookup(key) {
  return catalogues[current]?.[key] ?? catalogues.en?.[key];
}

export function has(key) {
  return lookup(key) !== undefined;
}

export function t(key, params = {}) {
  let text = lookup(key) ?? key;
  if (text && typeof text === "object") {
    const n = Number(params.count);
    const category = Number.isFinite(n) ? new Intl.PluralRules(locale()).select(n) : "other";
    text = text[`=${n}`] ?? text[category] ?? text.other ?? key;
  }
  return String(text).replace(/\{(\w+)\}/g, (whole, name) => (name in params ? String(params[name]) : whole));
}

/** Word the static markup under `root`: data-i18n (text) and data-i18n-attr ("attr:key;..."). */
export function applyTranslations(root = document) {
  for (const node of root.querySelectorAll("[data-i18n]")) {
    if (has(node.dataset.i18n)) node.textContent = t(node.dataset.i18n);
  }
  for (const node of root.querySelectorAll("[data-i18n-attr]")) {
    for (const pair of node.dataset.i18nAttr.split(";")) {
      const [attr, key] = pair.split(":").map((s) => s.trim());
      if (attr && key && has(key)) node.setAttribute(attr, t(key));
    }
  }
  if (root === document && has(document.documentElement.dataset.i18nTitle ?? "")) {
    document.title = t(document.documentElement.dataset.i18nTitle);
  }
}

/** A <select> of our languages, each named in itself; choosing one switches the page. */
export function languagePicker(select) {
  select.replaceChildren(...Object.entries(LANGUAGES).map(([code, { name }]) => {
    const option = new Option(name, code);
    option.lang = code;
    return option;
  }));
  select.value = current;
  select.addEventListener("change", () => setLanguage(select.value));
  window.addEventListener("languagechange", () => { select.value = current; });
}

/** Pick, load and apply the device's language; call once before the first render. */
export async function initLanguage() {
  await loadLanguage(preferredLanguage());
  applyTranslations(document);
  return current;
}
