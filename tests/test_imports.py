"""The one-way dependency direction between packages (STYLE.md, "Shape").

feeds → routing → realtime → api, crowdsource feeds realtime, everything may use
correspondance, and nothing imports api. Every import statement counts, including ones
inside functions and under ``if TYPE_CHECKING:``, and ``importlib.import_module("...")``
with a literal name.

Inside api, the routes (``api/routes/``) only translate HTTP to service calls: they never
import the store (``correspondance.store`` or any of its modules) nor read the app state's
``.store``; the services are wired to it in the app's composition (``api/app.py``,
``api/state.py``, ``api/deps.py``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from correspondance.settings import REPO_ROOT

# package → the packages it may import (besides itself)
ALLOWED: dict[str, frozenset[str]] = {
    "correspondance": frozenset(),
    "feeds": frozenset({"correspondance"}),
    "routing": frozenset({"correspondance", "feeds"}),
    "crowdsource": frozenset({"correspondance", "feeds", "routing"}),
    "realtime": frozenset({"correspondance", "feeds", "routing", "crowdsource"}),
    "api": frozenset({"correspondance", "feeds", "routing", "crowdsource", "realtime"}),
}
PACKAGES = frozenset(ALLOWED)


def imported_modules(source: str, filename: str = "<source>") -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``source``; relative ones are skipped."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module:
                found.append((node.lineno, node.module))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id)
            in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and not node.args[0].value.startswith(".")
        ):
            found.append((node.lineno, node.args[0].value))
    return sorted(found)


def violations(package: str, source: str, filename: str = "<source>") -> list[str]:
    """Imports in ``source`` (a module of ``package``) that break the dependency direction."""
    allowed = ALLOWED[package] | {package}
    return [
        f"{filename}:{line}: {package} imports {module}"
        for line, module in imported_modules(source, filename)
        if module.split(".")[0] in PACKAGES and module.split(".")[0] not in allowed
    ]


STORE = "correspondance.store"
ROUTES = REPO_ROOT / "api" / "routes"


def _is_store(module: str) -> bool:
    return module == STORE or module.startswith(STORE + ".")


def route_violations(source: str, filename: str = "<source>") -> list[str]:
    """Imports of the store in ``source`` (a module of ``api/routes/``), including
    ``from correspondance import store``, and reads of a ``.store`` attribute (the app
    state's store: a route asks a service instead)."""
    found = [(line, module) for line, module in imported_modules(source, filename)]
    tree = ast.parse(source, filename)
    reads = sorted(
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr == "store"
    )
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if _is_store(node.module):
                continue  # already found as the module itself
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return [
        f"{filename}:{line}: a route imports {module}"
        for line, module in sorted(set(found))
        if _is_store(module)
    ] + [f"{filename}:{line}: a route reads .store" for line in reads]


def package_files(package: str) -> list[Path]:
    return sorted((REPO_ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(PACKAGES))
def test_package_imports_only_what_it_may(package: str) -> None:
    files = package_files(package)
    assert files, f"no Python files found in {package}/"
    found = [
        problem
        for path in files
        for problem in violations(
            package, path.read_text(encoding="utf-8"), str(path.relative_to(REPO_ROOT))
        )
    ]
    assert found == []


def test_the_scan_sees_real_cross_package_imports() -> None:
    """Guard against a checker that finds nothing: routing really does import feeds."""
    base = (REPO_ROOT / "routing" / "base.py").read_text(encoding="utf-8")
    modules = {module for _, module in imported_modules(base)}
    assert {"feeds.gtfs", "feeds.osm", "correspondance.cities"} <= modules
    cli = (REPO_ROOT / "api" / "cli.py").read_text(encoding="utf-8")
    # api/cli.py imports routing inside a function body
    assert "routing.base" in {module for _, module in imported_modules(cli)}


FAKE_FEEDS_MODULE = '''\
"""A feeds module that reaches up the stack in every way the checker must catch."""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

import numpy as np
import feedsy  # a different top-level name that merely starts like one of ours
from correspondance.errors import ConfigError
from . import errors
from .gtfs import load_gtfs

if TYPE_CHECKING:
    from routing.base import CityBase


def handler():
    from api.errors import install
    import realtime.loop as loop
    return importlib.import_module("crowdsource.fuse")
'''


def test_the_checker_flags_every_upward_import() -> None:
    assert violations("feeds", FAKE_FEEDS_MODULE, "feeds/fake.py") == [
        "feeds/fake.py:14: feeds imports routing.base",
        "feeds/fake.py:18: feeds imports api.errors",
        "feeds/fake.py:19: feeds imports realtime.loop",
        "feeds/fake.py:20: feeds imports crowdsource.fuse",
    ]


@pytest.mark.parametrize(
    ("package", "source", "flagged"),
    [
        ("correspondance", "import feeds.gtfs\n", True),
        ("correspondance", "from correspondance.store import memory\n", False),
        ("routing", "from feeds.gtfs import load_gtfs\n", False),
        ("routing", "from realtime import overlay\n", True),
        ("crowdsource", "import routing.raptor\n", False),
        ("crowdsource", "import realtime\n", True),
        ("realtime", "from crowdsource.fuse import fuse\n", False),
        ("realtime", "import api.app\n", True),
        ("api", "from realtime import overlay\nimport api.deps\n", False),
        ("feeds", "x = __import__('routing.base')\n", True),
    ],
)
def test_the_rules_per_package(package: str, source: str, flagged: bool) -> None:
    assert bool(violations(package, source)) is flagged


def test_no_route_imports_the_store() -> None:
    files = sorted(ROUTES.rglob("*.py"))
    assert len(files) > 5, f"no route modules found in {ROUTES}"
    found = [
        problem
        for path in files
        for problem in route_violations(
            path.read_text(encoding="utf-8"), str(path.relative_to(REPO_ROOT))
        )
    ]
    assert found == []


FAKE_ROUTE_MODULE = '''\
"""A route module that reaches for the store in every way the checker must catch."""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

import correspondance.storefront  # another module that merely starts like the store
from correspondance.settings import Settings
from correspondance.store import StoreUnavailableError
from crowdsource.desk import ReportDesk

if TYPE_CHECKING:
    from correspondance.store.base import StateStore


def handler():
    import correspondance.store.redis as redis_store
    from correspondance import store
    return importlib.import_module("correspondance.store.memory")


async def read(state, desk):
    await desk.take(state.stored, store=None)
    return await state.store.get("cs:secret")
'''


def test_the_checker_flags_every_store_import_and_read_in_a_route() -> None:
    assert route_violations(FAKE_ROUTE_MODULE, "api/routes/fake.py") == [
        "api/routes/fake.py:9: a route imports correspondance.store",
        "api/routes/fake.py:13: a route imports correspondance.store.base",
        "api/routes/fake.py:17: a route imports correspondance.store.redis",
        "api/routes/fake.py:18: a route imports correspondance.store",
        "api/routes/fake.py:19: a route imports correspondance.store.memory",
        "api/routes/fake.py:24: a route reads .store",
    ]
