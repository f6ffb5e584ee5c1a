"""Every change to a Celery/kombu class still fits the installed Celery and kombu.

:data:`celeryref.upstream.PATCHES` lists each change with the upstream members it relies
on and, per finding, the control test that shows the stock class still has the defect.
An upgrade that renames a member, or a control that quietly stops using the stock class,
fails here before a fix silently stops applying.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from celery.utils.imports import symbol_by_name

from celeryref import upstream
from celeryref.upstream import FEATURE, NO_CONTROL, PATCHED_FOR, PATCHES, Patch

ROOT = Path(__file__).resolve().parents[2]


def resolve(name: str) -> Any:
    """``module:Name`` (or ``module:Class.member``) to the object it names."""
    module_name, _, qualname = name.partition(":")
    target: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target


def set_in_init(cls: type, member: str) -> bool:
    """Whether some class of ``cls``'s MRO assigns ``self.<member>`` in its source (an
    attribute that exists only on instances)."""
    assignment = re.compile(rf"\bself\.{re.escape(member)}\s*[:=]")
    return any(
        assignment.search(inspect.getsource(klass)) for klass in cls.__mro__ if klass is not object
    )


@pytest.mark.parametrize("package", sorted(PATCHED_FOR))
def test_the_installed_version_is_the_one_the_changes_were_written_for(package: str) -> None:
    installed = version(package)
    assert installed == PATCHED_FOR[package], (
        f"{package} {installed} is installed, but celeryref/upstream was written for "
        f"{PATCHED_FOR[package]}. Re-read the upstream code of every member in "
        f"PATCHES[*].relies_on, run each control test named in PATCHES[*].controls "
        f"(a control that now passes means {package} fixed the defect: drop the change), "
        f"then set PATCHED_FOR[{package!r}] = {installed!r}."
    )


RELIED_ON = [(patch.ours, name) for patch in PATCHES for name in patch.relies_on]


@pytest.mark.parametrize(("ours", "name"), RELIED_ON, ids=[name for _, name in RELIED_ON])
def test_every_member_a_change_relies_on_still_exists(ours: str, name: str) -> None:
    module_name, _, qualname = name.partition(":")
    module = importlib.import_module(module_name)
    owner, _, member = qualname.rpartition(".")
    if not owner:  # a module-level name
        assert hasattr(module, member), f"{ours} relies on {name}, gone from {module_name}"
        return
    cls = resolve(f"{module_name}:{owner}")
    assert hasattr(cls, member) or set_in_init(cls, member), (
        f"{ours} relies on {name}: neither an attribute of {owner} nor assigned in its code"
    )


@pytest.mark.parametrize("patch", PATCHES, ids=[p.ours for p in PATCHES])
def test_each_change_subclasses_the_upstream_class_it_names(patch: Patch) -> None:
    ours, stock = resolve(patch.ours), resolve(patch.upstream)
    assert inspect.isclass(ours) and inspect.isclass(stock)
    assert ours is not stock and issubclass(ours, stock), (
        f"{patch.ours} is not a subclass of {patch.upstream}"
    )


def test_every_module_of_the_upstream_package_is_listed() -> None:
    """A change added to ``celeryref/upstream/`` without a :data:`PATCHES` entry fails."""
    listed = {patch.ours.partition(":")[0] for patch in PATCHES}
    modules = {
        f"{upstream.__name__}.{path.stem}"
        for path in Path(upstream.__file__).parent.glob("*.py")
        if path.stem != "__init__"
    }
    assert modules <= listed, f"not in PATCHES: {sorted(modules - listed)}"


CONTROLS = [
    (patch, finding, control) for patch in PATCHES for finding, control in patch.controls.items()
]


def referenced_objects(module: Any, function: ast.FunctionDef) -> Iterator[Any]:
    """What every name and dotted name in ``function``'s body resolves to in ``module``
    (without calling anything); a Celery task also yields its worker ``Request`` class."""
    for node in ast.walk(function):
        chain: list[str] = []
        while isinstance(node, ast.Attribute):
            chain.insert(0, node.attr)
            node = node.value
        if not isinstance(node, ast.Name) or node.id not in vars(module):
            continue
        target: Any = vars(module)[node.id]
        for attr in chain:
            try:
                target = getattr(target, attr)
            except Exception:  # e.g. an attribute of a fixture's value
                break
            yield target
        else:
            yield target
        request = getattr(target, "Request", None)
        if isinstance(request, str) and ":" in request:
            yield symbol_by_name(request)


def uses_the_stock_class(objects: Iterator[Any], stock: type, ours: type) -> bool:
    """Whether one of ``objects`` is the stock class itself, or an instance of it that
    is not an instance of ours (a task built on Celery's ``Task``, not ``BaseTask``)."""
    return any(
        obj is stock or (isinstance(obj, stock) and not isinstance(obj, ours)) for obj in objects
    )


@pytest.mark.parametrize(
    ("patch", "finding", "control"),
    CONTROLS,
    ids=[f"{finding}-{patch.ours.rpartition(':')[2]}" for patch, finding, _ in CONTROLS],
)
def test_each_finding_has_a_control_test_on_the_stock_class(
    patch: Patch, finding: str, control: str
) -> None:
    """The control exists, says which finding it controls, and uses the stock class."""
    if control.startswith(FEATURE):
        reason = control.removeprefix(FEATURE).strip()
        assert reason, f"{patch.ours} {finding}: say what behaviour it adds"
        return
    assert not control.startswith(NO_CONTROL), (
        f"{patch.ours} {finding}: no control shows the stock class has the defect "
        f"({control.removeprefix(NO_CONTROL)}); write one, or delete the fix"
    )
    path, _, name = control.partition("::")
    source = ROOT / path
    assert source.is_file(), f"{finding}: {path} does not exist"
    tree = ast.parse(source.read_text(), filename=path)
    functions = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name]
    assert functions, f"{finding}: no test {name} in {path}"
    (function,) = functions
    docstring = ast.get_docstring(function) or ""
    assert docstring.startswith(f"Control ({finding})"), (
        f"{control}: its docstring must open with 'Control ({finding})'"
    )
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    stock, ours = resolve(patch.upstream), resolve(patch.ours)
    assert uses_the_stock_class(referenced_objects(module, function), stock, ours), (
        f"{control} never refers to {patch.upstream} (or a task on it) instead of {patch.ours}"
    )
