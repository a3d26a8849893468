"""Arrows point inward: the domain imports no front end, and the dashboard no API route module.

Read from the source (every ``import`` and ``from ... import``, also those inside functions and
``TYPE_CHECKING`` blocks), so a lazy import cannot hide an arrow pointing the wrong way.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "invoice_outbox"
FRONT_ENDS = ("invoice_outbox.api", "invoice_outbox.web", "invoice_outbox.cli")
DOMAIN = ("sendings", "systems", "worker", "admin", "auth", "legacy", "db", "practices")
#: What the dashboard may share with the API: the FastAPI dependencies, nothing else.
WEB_MAY_IMPORT_FROM_API = frozenset({"invoice_outbox.api.deps"})


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # "from a.b import c": c is a module of a.b or a name in it; either way a.b.c.
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


@pytest.mark.parametrize("folder", DOMAIN)
def test_the_domain_imports_no_front_end(folder: str) -> None:
    wrong = {
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in sorted((PACKAGE / folder).rglob("*.py"))
        for name in _imports(path)
        if any(_within(name, front_end) for front_end in FRONT_ENDS)
    }
    assert not wrong


def test_the_dashboard_imports_no_api_route_module() -> None:
    wrong = {
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in sorted((PACKAGE / "web").rglob("*.py"))
        for name in _imports(path)
        if _within(name, "invoice_outbox.api")
        and not any(_within(name, module) for module in WEB_MAY_IMPORT_FROM_API)
    }
    assert not wrong
