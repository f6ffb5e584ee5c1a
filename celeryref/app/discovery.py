"""Task discovery: every module under ``<package>.<queue>`` is a task module.

A task's module path is its route (``celeryref.tasks.cpu_intensive.*`` runs on
``cpu_intensive``), so adding a module under a queue's package is all it takes.
Production workers import :data:`celeryref.queues.TASK_PACKAGE` only; benchmark and
fault-drill tasks live outside the product (``bench.tasks``, ``devtools.tasks``) and
are added by their compose overrides through ``EXTRA_TASK_PACKAGES``.
"""

from __future__ import annotations

import importlib.util
import pkgutil

from celeryref import queues


def task_modules(packages: tuple[str, ...]) -> list[str]:
    """Every ``<package>.<queue>`` module and its submodules, for ``packages``."""
    modules = []
    for root in packages:
        for queue in queues.ALL_QUEUES:
            package = f"{root}.{queue}"
            spec = importlib.util.find_spec(package)
            if spec is None:
                if root == queues.TASK_PACKAGE:
                    raise ModuleNotFoundError(f"every queue needs a task package: {package}")
                continue
            modules.append(package)
            for info in pkgutil.walk_packages(
                spec.submodule_search_locations or [], prefix=f"{package}."
            ):
                modules.append(info.name)
    return modules
