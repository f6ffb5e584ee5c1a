"""The import rule of docs/ARCHITECTURE.md, checked over every module's imports.

The layer table is parsed from the document itself, so the picture in the docs
cannot drift from the code: a module imports its own layer and the layers below.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "celeryref"
DOC = ROOT / "docs" / "ARCHITECTURE.md"
#: Packages that are not product: nothing in ``celeryref`` may import them.
TOOLING = ("bench", "devtools")
#: Most modules allowed at the package root.
MAX_ROOT_MODULES = 8
#: Longest module without a stated reason.
MAX_LINES = 250
LONG_REASON = "Longer than 250 lines:"


def layers() -> list[list[str]]:
    """The ``layers`` block of docs/ARCHITECTURE.md: names per layer, top first."""
    block = re.search(r"```layers\n(.*?)```", DOC.read_text(), re.S)
    assert block, "docs/ARCHITECTURE.md has no ```layers block"
    return [line.split() for line in block.group(1).splitlines() if line.strip()]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path, source: str | None = None) -> Iterator[str]:
    """Every module ``path`` (or ``source`` placed there) imports, also inside
    functions, as absolute names."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    text = path.read_text() if source is None else source
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base]) if base else ".".join(parent)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def layer_of(module: str, table: list[list[str]]) -> int | None:
    """Index of the layer whose longest matching prefix names ``module``."""
    best: tuple[int, int] | None = None
    for index, names in enumerate(table):
        for prefix in names:
            full = f"celeryref.{prefix}"
            if (module == full or module.startswith(full + ".")) and (
                best is None or len(full) > best[1]
            ):
                best = (index, len(full))
    return best[0] if best else None


def violations(edges: Iterable[tuple[str, str]], table: list[list[str]]) -> list[str]:
    """``importer -> imported`` pairs that break the rule."""
    found = []
    for source, target in edges:
        if target.split(".")[0] in TOOLING:
            found.append(f"{source} -> {target}: the product must not import tooling")
            continue
        if not target.startswith("celeryref.") or target == "celeryref":
            continue
        low, high = layer_of(source, table), layer_of(target, table)
        if low is None or high is None:
            continue
        if high < low:
            found.append(f"{source} -> {target}: layer {low + 1} imports layer {high + 1}")
    return found


def product_modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def product_edges() -> list[tuple[str, str]]:
    return [(module_name(p), target) for p in product_modules() for target in imports(p)]


def test_every_product_module_belongs_to_a_layer() -> None:
    """Every module of celeryref/ is placed by the layer table (nothing unplanned)."""
    table = layers()
    unplaced = [
        module_name(p)
        for p in product_modules()
        if module_name(p) != "celeryref" and layer_of(module_name(p), table) is None
    ]
    assert unplaced == []


def test_no_module_imports_a_layer_above_it_or_tooling() -> None:
    """Given the layer table, no product module imports upwards or imports bench/devtools."""
    assert violations(product_edges(), layers()) == []


@pytest.mark.parametrize(
    ("edge", "why"),
    [
        (("celeryref.tasks.default", "celeryref.api.main"), "layer 2 imports layer 1"),
        (("celeryref.reliability.retry", "celeryref.tasks.default"), "imports layer 2"),
        (("celeryref.adapters.db", "celeryref.reliability.retry"), "imports layer 6"),
        (("celeryref.mapreduce.jobs", "celeryref.tasks.cpu_intensive"), "imports layer 2"),
        (("celeryref.tasks.default", "devtools.tasks.default.drills"), "tooling"),
        (("celeryref.api.main", "bench.work"), "tooling"),
    ],
)
def test_the_rule_catches_a_deliberate_violation(edge: tuple[str, str], why: str) -> None:
    """A made-up upward or tooling import is reported (the check can fail)."""
    found = violations([edge], layers())
    assert len(found) == 1
    assert why in found[0]


def test_relative_imports_are_resolved() -> None:
    """``from ..tasks import x`` inside celeryref/reliability/ counts as celeryref.tasks."""
    module = PACKAGE / "reliability" / "example.py"
    found = list(imports(module, "def f():\n    from ..tasks import default\n"))
    assert "celeryref.tasks" in found
    assert "celeryref.tasks.default" in found
    assert violations([(module_name(module), f) for f in found], layers())


def test_the_package_root_holds_only_the_names_everyone_imports() -> None:
    """celeryref/ has at most 8 modules at its root (families live in folders)."""
    root_modules = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(root_modules) <= MAX_ROOT_MODULES, root_modules


def test_no_module_is_long_without_a_reason() -> None:
    """A module over 250 lines says why in its docstring."""
    long = []
    for path in product_modules() + sorted((ROOT / "bench").rglob("*.py")):
        lines = path.read_text().count("\n")
        docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
        if lines > MAX_LINES and LONG_REASON not in docstring:
            long.append(f"{path.relative_to(ROOT)} ({lines} lines)")
    assert long == []
