"""The web app's message catalogues (frontend/locales/<lang>.json) are complete and consistent.

Every key the screens use exists in English, every catalogue has exactly the English keys, and
each translation uses the same {parameters} as the English text, so no language ever shows a
raw key, an English fallback or an unfilled placeholder.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

FRONTEND = Path(__file__).resolve().parents[1] / "frontend"
LOCALES = FRONTEND / "locales"
LANGUAGES = ("en", "fr", "pt-BR", "nb")
# Plural categories each language needs (CLDR); "many" (fr, pt) falls back to "other".
PLURALS = {
    "en": {"one", "other"},
    "fr": {"one", "other"},
    "pt-BR": {"one", "other"},
    "nb": {"one", "other"},
}
SOURCES = [
    *FRONTEND.glob("*.js"),
    *(FRONTEND / "operator").glob("*.js"),
    *FRONTEND.glob("*.html"),
]
CALL = re.compile(r"""\b(?:t|has)\(\s*(["'`])([A-Za-z0-9_.\-]+)(\$\{)?""")
MARKUP = re.compile(r"""data-i18n="([^"]+)"|data-i18n-attr="([^"]+)"|data-i18n-title="([^"]+)\"""")
PLACEHOLDER = re.compile(r"\{(\w+)\}")


def catalogue(lang: str) -> dict[str, str | dict[str, str]]:
    data = json.loads((LOCALES / f"{lang}.json").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def used_keys() -> tuple[set[str], set[str]]:
    """(keys used literally, prefixes of keys built from a template like `trip.closed.${x}`)."""
    keys: set[str] = set()
    prefixes: set[str] = set()
    for path in SOURCES:
        text = path.read_text(encoding="utf-8")
        for quote, key, interpolated in CALL.findall(text):
            if quote == "`" and interpolated:
                prefixes.add(key)
            else:
                keys.add(key)
        if path.suffix != ".html":
            continue
        for text_key, attrs, title in MARKUP.findall(text):
            keys.update(k for k in (text_key, title) if k)
            keys.update(pair.split(":", 1)[1].strip() for pair in attrs.split(";") if ":" in pair)
    return keys, prefixes


def placeholders(value: str | dict[str, str]) -> set[str]:
    texts = value.values() if isinstance(value, dict) else [value]
    return {name for text in texts for name in PLACEHOLDER.findall(text)}


def test_every_key_the_screens_use_is_in_english() -> None:
    english = catalogue("en")
    keys, prefixes = used_keys()
    assert len(keys) > 200  # the scan finds the screens' keys (a broken pattern would find none)
    missing = sorted(k for k in keys if k not in english)
    assert not missing, f"keys used in frontend/ but missing from en.json: {missing}"
    orphans = sorted(p for p in prefixes if not any(k.startswith(p) for k in english))
    assert not orphans, f"templated keys with no catalogue entry: {orphans}"
    unused = sorted(
        k for k in english if k not in keys and not any(k.startswith(p) for p in prefixes)
    )
    assert not unused, f"en.json keys no screen uses: {unused}"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_each_catalogue_has_exactly_the_english_keys(lang: str) -> None:
    english = catalogue("en")
    other = catalogue(lang)
    missing = sorted(set(english) - set(other))
    extra = sorted(set(other) - set(english))
    assert not missing, f"{lang}.json lacks {missing}"
    assert not extra, f"{lang}.json has keys English does not: {extra}"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_translations_use_the_english_parameters(lang: str) -> None:
    english = catalogue("en")
    for key, value in catalogue(lang).items():
        assert value, f"{lang}:{key} is empty"
        wanted = placeholders(english[key])
        if isinstance(value, dict):
            assert PLURALS[lang] <= set(value), f"{lang}:{key} lacks plural forms"
            assert placeholders(value) <= wanted, (lang, key)
            assert placeholders(value["other"]) == placeholders(english[key]["other"]), (lang, key)  # type: ignore[index]
        else:
            assert isinstance(english[key], str), (lang, key)
            assert placeholders(value) == wanted, (lang, key, value)


@pytest.mark.parametrize("lang", ["fr", "pt-BR", "nb"])
def test_catalogues_are_translated_not_copied(lang: str) -> None:
    english = catalogue("en")
    other = catalogue(lang)
    long_texts = [k for k, v in english.items() if isinstance(v, str) and len(v) > 30]
    same = [k for k in long_texts if other[k] == english[k]]
    assert not same, f"{lang}.json keeps English texts: {same}"


# Words a catalogue text the way the app does: frontend/i18n.js itself, under Node, with the
# catalogues read from disk (no browser needed for the plural choice, which is Intl's).
WORDING = """
import { readFileSync } from "node:fs";
globalThis.document = { documentElement: {} };
globalThis.fetch = async (url) => {
  const name = url.split("/").pop();
  const text = readFileSync(new URL(`./locales/${name}`, process.argv[1]), "utf-8");
  return { ok: true, json: async () => JSON.parse(text) };
};
const { loadLanguage, t } = await import(new URL("./i18n.js", process.argv[1]));
const asked = JSON.parse(process.argv[2]);
const out = [];
for (const [lang, key, count] of asked) {
  await loadLanguage(lang);
  out.push(t(key, { count, n: String(count) }));
}
console.log(JSON.stringify(out));
"""


def worded(asked: list[tuple[str, str, int]]) -> list[str]:
    """What frontend/i18n.js's t(key, {count, n}) gives for each (language, key, count)."""
    node = shutil.which("node")
    assert node, "Node.js is needed (scripts/setup.sh installs it)"
    done = subprocess.run(
        [node, "--input-type=module", "-e", WORDING, FRONTEND.as_uri() + "/", json.dumps(asked)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    words: list[str] = json.loads(done.stdout)
    return words


def test_zero_transfers_reads_as_a_brazilian_expects() -> None:
    # Intl.PluralRules("pt-BR") puts 0 with 1 ("one"): the catalogue's exact "=0" form wins
    asked = [("pt-BR", "results.transfers", n) for n in (0, 1, 2)]
    assert worded(asked) == ["sem baldeação", "1 baldeação", "2 baldeações"]
    # the other languages keep their plural rules for 0
    others = [(lang, "results.transfers", 0) for lang in ("en", "fr", "nb")]
    assert worded(others) == ["0 transfers", "0 correspondance", "0 bytter"]


@pytest.mark.parametrize("lang", LANGUAGES)
def test_exact_plural_forms_name_a_whole_count(lang: str) -> None:
    for key, value in catalogue(lang).items():
        if isinstance(value, dict):
            exact = [form for form in value if form.startswith("=")]
            assert all(re.fullmatch(r"=\d+", form) for form in exact), (lang, key, exact)
