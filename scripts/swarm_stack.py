"""Render the Compose deployment as a file ``docker stack deploy`` reads (issue 18).

    SECRETS_DIR=./secrets docker compose -p celeryref -f docker-compose.yml \\
        -f compose.prod.yml -f compose.swarm.yml config --format json \\
      | python3 scripts/swarm_stack.py | docker stack deploy -c - celeryref

Input: ``docker compose config --format json`` (the files merged, variables
interpolated, ``!reset``/``!override`` applied). Output: the same deployment in the
dialect of the stack loader (JSON, which is YAML), changing no value:

* ``mem_limit``, ``cpus``, ``pids_limit`` (refused by ``stack deploy``) become
  ``deploy.resources.limits`` ``memory``, ``cpus``, ``pids``;
* ``tmpfs`` (silently ignored by Swarm: a read-only root would have no /tmp) becomes a
  ``type: tmpfs`` mount of the same size (Swarm makes it mode 1777, the only mode the
  Compose files use);
* published ports become integers and lose ``host_ip`` (Swarm binds every address);
* dropped: the top-level ``name`` and the ``name`` of networks, volumes, secrets and
  configs (the stack's name prefixes them), ``x-`` blocks, and per service
  ``depends_on`` (refused with conditions; Swarm has no start order), ``profiles``
  (refused; Compose has already left out the services of inactive profiles), ``build``,
  ``restart`` (``deploy.restart_policy`` instead) and ``security_opt`` (ignored by
  Swarm: ``no-new-privileges`` does not reach a Swarm task), and unset (null) keys.

Standard library only: any ``python3`` >= 3.11 runs it.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

#: Service keys ``docker stack deploy`` refuses or ignores, dropped.
DROPPED = ("build", "depends_on", "profiles", "restart", "security_opt")
#: Compose's per-service limits -> their name under ``deploy.resources.limits``.
LIMITS = {"mem_limit": "memory", "cpus": "cpus", "pids_limit": "pids"}
#: The only tmpfs mode a Swarm tmpfs mount declared in a stack file can have.
SWARM_TMPFS_MODE = "1777"
_UNITS = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30}


def size_bytes(size: str) -> int:
    """``"64m"`` -> 67108864 (Docker's binary units: k, m, g)."""
    match = re.fullmatch(r"(\d+)([bkmg]?)b?", size.strip().lower())
    if not match:
        raise ValueError(f"not a size: {size!r}")
    return int(match.group(1)) * _UNITS[match.group(2)]


def tmpfs_mount(spec: str) -> dict[str, Any]:
    """``"/tmp:size=64m,mode=1777"`` -> a ``type: tmpfs`` volume of the stack file."""
    target, _, options = spec.partition(":")
    mount: dict[str, Any] = {"type": "tmpfs", "target": target}
    for option in filter(None, options.split(",")):
        key, _, value = option.partition("=")
        if key == "size":
            mount["tmpfs"] = {"size": size_bytes(value)}
        elif key == "mode" and value.lstrip("0") == SWARM_TMPFS_MODE:
            continue
        else:
            raise ValueError(f"tmpfs option {option!r} of {spec!r} has no Swarm equivalent")
    return mount


def port(entry: dict[str, Any]) -> dict[str, Any]:
    """A long-syntax port with an integer ``published`` and no ``host_ip``."""
    out = {k: v for k, v in entry.items() if k != "host_ip"}
    if "published" in out:
        out["published"] = int(out["published"])
    return out


def service(spec: dict[str, Any]) -> dict[str, Any]:
    """One service of the stack file (module docstring)."""
    out = {k: v for k, v in spec.items() if v is not None and k not in DROPPED}
    limits = {LIMITS[k]: out.pop(k) for k in list(out) if k in LIMITS}
    if "cpus" in limits:
        limits["cpus"] = str(limits["cpus"])
    if limits:
        deploy = out.setdefault("deploy", {})
        resources = deploy.setdefault("resources", {})
        resources["limits"] = {**limits, **resources.get("limits", {})}
    if "tmpfs" in out:
        out["volumes"] = [*out.get("volumes", []), *map(tmpfs_mount, out.pop("tmpfs"))]
    if "ports" in out:
        out["ports"] = [port(p) for p in out["ports"]]
    return out


def unnamed(objects: dict[str, Any]) -> dict[str, Any]:
    """Top-level networks/volumes/secrets/configs without their project-prefixed ``name``
    (an external one keeps it: it names what exists)."""
    return {
        key: {k: v for k, v in spec.items() if k != "name" or spec.get("external")}
        for key, spec in objects.items()
    }


def to_stack(config: dict[str, Any]) -> dict[str, Any]:
    """The stack file of a ``docker compose config --format json`` document."""
    stack: dict[str, Any] = {
        "services": {name: service(spec) for name, spec in config["services"].items()}
    }
    for section in ("networks", "volumes", "secrets", "configs"):
        if config.get(section):
            stack[section] = unnamed(config[section])
    return stack


def main() -> int:
    json.dump(to_stack(json.load(sys.stdin)), sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
