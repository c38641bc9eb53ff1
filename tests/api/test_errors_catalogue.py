"""The error catalogue holds every code the product can raise or send, and nothing else.

A scan of the product packages' source (``ast``) finds every error code given as a literal:

1. ``code = "..."`` in the body of a class whose name ends in ``Error``;
2. ``code="..."`` passed to such a class, or to an *error sender*;
3. the ``code`` argument, by position, of a call to an error sender: a function of the
   product whose parameters include ``code`` and ``message`` or ``text`` (the shape of
   every error this API sends: ``send_error``, ``error_body``, ``_refuse``, the trip
   protocol's ``error``, ...);
4. an error written out as a dict display: ``{"type": "error", "code": ..., "message": ...}``
   (a websocket ``error``) or ``{"error": {"code": ..., "message": ...}}`` (an HTTP body).

A literal may be a string, either branch of ``a if c else b``, or a module-level constant
holding one. Codes forwarded from a variable (``exc.code``) come from one of those places.
Then: every code found is catalogued; every catalogued code is found, unless it is
explicitly reserved; and README.md's "Errors" table is the catalogue's.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from correspondance import error_catalogue
from correspondance.error_catalogue import (
    CATALOGUE,
    INTERNAL_STATUS,
    Reach,
    documented_table,
    http_status,
    markdown_table,
    with_table,
)
from correspondance.errors import CorrespondanceError
from correspondance.settings import REPO_ROOT
from crowdsource.errors import REJECTION_CODES

PRODUCT = ("api", "routing", "feeds", "realtime", "crowdsource", "correspondance")
CATALOGUE_FILE = Path(error_catalogue.__file__).resolve()
SNAKE = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)*")


def _constants(tree: ast.Module) -> dict[str, str]:
    """Module-level ``NAME = "text"`` assignments."""
    out = {}
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign) and isinstance(node.value, ast.Constant):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name) and isinstance(node.value.value, str):
                    out[target.id] = node.value.value
    return out


def _literals(node: ast.expr | None, constants: Mapping[str, str]) -> list[str]:
    """The strings an expression can be, when it is written as literals."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        return _literals(node.body, constants) + _literals(node.orelse, constants)
    if isinstance(node, ast.BoolOp):
        return [text for value in node.values for text in _literals(value, constants)]
    if isinstance(node, ast.Name) and node.id in constants:
        return [constants[node.id]]
    return []


def _name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    return func.attr if isinstance(func, ast.Attribute) else None


def error_senders(trees: Mapping[str, ast.Module]) -> dict[str, int | None]:
    """Functions taking ``code`` and ``message``/``text``: name → position of ``code``
    (None when it is keyword-only)."""
    senders: dict[str, int | None] = {}
    for tree in trees.values():
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            positional = [a.arg for a in node.args.posonlyargs + node.args.args]
            every = positional + [a.arg for a in node.args.kwonlyargs]
            if "code" in every and {"message", "text"} & set(every):
                if node.name == "__init__":
                    continue  # an error class's constructor: rule 2 covers its calls
                senders[node.name] = positional.index("code") if "code" in positional else None
    return senders


def sent_codes(sources: Mapping[str, str]) -> dict[str, list[str]]:
    """Every error code given as a literal in ``sources`` (path → text): code → where."""
    trees = {path: ast.parse(text, path) for path, text in sources.items()}
    senders = error_senders(trees)
    found: dict[str, list[str]] = {}

    def add(texts: list[str], path: str, node: ast.AST) -> None:
        for text in texts:
            found.setdefault(text, []).append(f"{path}:{getattr(node, 'lineno', '?')}")

    for path, tree in trees.items():
        constants = _constants(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name.endswith("Error"):
                for stmt in node.body:
                    if isinstance(stmt, ast.Assign | ast.AnnAssign):
                        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                        if any(isinstance(t, ast.Name) and t.id == "code" for t in targets):
                            add(_literals(stmt.value, constants), path, stmt)
            elif isinstance(node, ast.Call):
                name = _name(node.func)
                if name is None or not (name.endswith("Error") or name in senders):
                    continue
                for keyword in node.keywords:
                    if keyword.arg == "code":
                        add(_literals(keyword.value, constants), path, node)
                position = senders.get(name) if isinstance(node.func, ast.Name) else None
                if position is not None and position < len(node.args):
                    add(_literals(node.args[position], constants), path, node)
            elif isinstance(node, ast.Dict):
                keys = {
                    k.value: v
                    for k, v in zip(node.keys, node.values, strict=True)
                    if isinstance(k, ast.Constant)
                }
                inner = keys.get("error")
                if isinstance(inner, ast.Dict):  # {"error": {"code", "message"}}
                    keys = {
                        k.value: v
                        for k, v in zip(inner.keys, inner.values, strict=True)
                        if isinstance(k, ast.Constant)
                    }
                elif _literals(keys.get("type"), constants) != ["error"]:
                    continue
                if "code" in keys and "message" in keys:
                    add(_literals(keys["code"], constants), path, node)
    return found


def product_sources() -> dict[str, str]:
    """Every product module's source (the catalogue's own table excluded)."""
    return {
        str(path.relative_to(REPO_ROOT)): path.read_text(encoding="utf-8")
        for package in PRODUCT
        for path in sorted((REPO_ROOT / package).rglob("*.py"))
        if path.resolve() != CATALOGUE_FILE
    }


@pytest.fixture(scope="module")
def found() -> dict[str, list[str]]:
    return sent_codes(product_sources())


# -- the scan itself can fail ----------------------------------------------------------------

FAKE_MODULE = """\
NOT_HERE = "from_a_constant"

class ThingError(CorrespondanceError):
    code = "class_attribute"

class Helper:
    code = "not_an_error_class"

def send_error(send, status, code, message): ...
def refuse(ws, close_code, code: str, text: str) -> None: ...
def leg_note(code, **params): ...  # a wording code, not an error: no message
def error(trip_id, sent_at, code, text): ...

def route(flag):
    raise InputError("bad", code="keyword" if flag else "other_branch", field="x")
    raise ThingError("x", code=NOT_HERE)
    send_error(send, 413, "positional", "too large")
    refuse(ws, 4401, code="keyword_to_sender", text="no")
    leg_note("cancelled")
    Entry(code="a stop code")
    ws.close(4404, "a reason")
    error(trip_id, now, "by_name", "text")
    log.error("%s %s", "x", "not_a_code")  # a method, not the sender of the same name
    yield {"type": "error", "code": "dict_display", "message": "m"}, {"code": "no_message"}
    yield {"error": {"code": "http_body", "message": "m"}}
    yield {"code": "a_notice", "reason": "r", "message": "not an error"}
"""


def test_the_scan_finds_every_way_a_code_is_given_and_nothing_else() -> None:
    assert set(sent_codes({"fake.py": FAKE_MODULE})) == {
        "class_attribute",
        "keyword",
        "other_branch",
        "from_a_constant",
        "positional",
        "keyword_to_sender",
        "dict_display",
        "http_body",
        "by_name",
    }


def test_the_scan_sees_the_real_senders(found: dict[str, list[str]]) -> None:
    """Guard against a scan that finds nothing: one code of each kind in the product."""
    assert any(w.startswith("api/limits.py") for w in found["body_too_large"])  # send_error
    assert any(w.startswith("api/headers.py") for w in found["forbidden"])  # deny
    assert any(w.startswith("api/routes/congestion.py") for w in found["unknown_city"])  # dict
    assert any(w.startswith("realtime/trips/commands.py") for w in found["unknown_suggestion"])
    assert any(w.startswith("routing/errors.py") for w in found["outside_city"])  # class
    assert any(w.startswith("api/errors.py") for w in found["internal_error"])


# -- the catalogue against the code ----------------------------------------------------------


def test_every_code_the_product_gives_is_catalogued(found: dict[str, list[str]]) -> None:
    missing = {code: where for code, where in found.items() if code not in CATALOGUE}
    assert missing == {}, "add these codes to correspondance/error_catalogue.py"


def test_every_catalogued_code_is_used_or_reserved(found: dict[str, list[str]]) -> None:
    reserved = {code for code, e in CATALOGUE.items() if e.reach is Reach.RESERVED}
    assert set(CATALOGUE) - set(found) == reserved
    assert reserved.isdisjoint(found), "a reserved code is used: make it an http code"


def test_every_report_rejection_code_is_catalogued() -> None:
    assert set(CATALOGUE) >= REJECTION_CODES


def _product_modules() -> Iterator[str]:
    for package in PRODUCT:
        yield package
        path = [str(REPO_ROOT / package)]
        for info in pkgutil.walk_packages(path, prefix=f"{package}."):
            yield info.name


def _subclasses(cls: type[CorrespondanceError]) -> Iterator[type[CorrespondanceError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def test_every_error_class_is_named_and_catalogued_as_the_scan_assumes() -> None:
    for module in _product_modules():
        importlib.import_module(module)
    classes = [c for c in _subclasses(CorrespondanceError) if c.__module__.split(".")[0] in PRODUCT]
    assert len(classes) > 30
    for cls in classes:
        assert cls.__name__.endswith("Error"), cls  # the scan reads classes named *Error
        assert cls.code in CATALOGUE, cls
        if cls.status is not None:  # a status other than the code's usual one
            assert http_status(cls.code, cls.status) == cls.status, cls


def test_one_trip_not_found_error() -> None:
    named = [c for c in _subclasses(CorrespondanceError) if c.__name__ == "TripNotFoundError"]
    assert [f"{c.__module__}.{c.__qualname__}" for c in named] == [
        "correspondance.errors.TripNotFoundError"
    ]


# -- the catalogue's own shape ---------------------------------------------------------------


@pytest.mark.parametrize("code", list(CATALOGUE))
def test_an_entry_is_well_formed(code: str) -> None:
    entry = CATALOGUE[code]
    assert entry.code == code
    assert SNAKE.fullmatch(code)
    assert entry.meaning
    assert "\n" not in entry.meaning
    assert "|" not in entry.meaning
    if entry.reach is Reach.WEBSOCKET:
        assert entry.status is None
        assert entry.also == ()
        assert http_status(code) is None
    elif entry.reach is Reach.INTERNAL:
        assert entry.status == INTERNAL_STATUS
        assert entry.also == ()
        assert http_status(code) is None
    else:
        assert entry.status is not None
        assert 400 <= entry.status <= 599
        assert http_status(code) == entry.status
        for status, when in entry.also:
            assert 400 <= status <= 599
            assert status != entry.status
            assert when
            assert http_status(code, status) == status


def test_an_unknown_code_or_status_has_no_http_status() -> None:
    assert http_status("no_such_code") is None
    assert http_status("invalid_report", 418) is None
    assert http_status("invalid_report", 413) == 413
    assert http_status("invalid_report") == 400


# -- README.md -------------------------------------------------------------------------------


def test_the_readme_error_table_is_the_catalogue() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert documented_table(readme) == markdown_table(), (
        "regenerate it: python -m correspondance.error_catalogue --write README.md"
    )
    assert with_table(readme) == readme


def test_the_table_has_a_row_per_code_and_can_be_rewritten(tmp_path: Path) -> None:
    rows = markdown_table().splitlines()[2:]
    assert [row.split("`")[1] for row in rows] == list(CATALOGUE)
    doc = tmp_path / "doc.md"
    doc.write_text(f"# x\n\n{error_catalogue.BEGIN}\nold\n{error_catalogue.END}\n\nafter\n")
    error_catalogue.main(["--write", str(doc)])
    assert (
        doc.read_text()
        == f"# x\n\n{error_catalogue.BEGIN}\n{markdown_table()}{error_catalogue.END}\n\nafter\n"
    )
    with pytest.raises(ValueError, match="markers"):
        with_table("no markers here")
