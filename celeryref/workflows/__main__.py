"""``python -m celeryref.workflows``: start, inspect and cancel workflow executions.

    start NAME --input '{"records": [...]}'     prints the execution id
    start --definition '{"name": ..., "steps": [...]}' --input '{}'
    status EXECUTION_ID [--json]                the step tree (or JSON)
    cancel EXECUTION_ID
    list                                        the registered workflows

Exit status: 0 done, 1 not found / already finished, 2 invalid input.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from celeryref.errors import InvalidArguments
from celeryref.observability import logs
from celeryref.workflows import engine, registry, status
from celeryref.workflows.definition import Workflow

logger = logging.getLogger("celeryref.workflows.cli")


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidArguments(f"{what} is not JSON: {exc}") from None


def run(args: argparse.Namespace, out: Any) -> int:
    if args.command == "list":
        for name in registry.names():
            out.write(f"{name}: {registry.get(name).description}\n")
        return 0
    if args.command == "start":
        if bool(args.name) == bool(args.definition):
            raise InvalidArguments("give a workflow NAME or --definition JSON, not both")
        workflow: Workflow | str = args.name or Workflow.from_dict(
            _json(args.definition, "--definition")
        )
        out.write(engine.start(workflow, _json(args.input, "--input")) + "\n")
        return 0
    try:
        if args.command == "status":
            execution = status.load(args.execution_id)
            if args.json:
                out.write(json.dumps(execution.to_dict(), indent=2, default=str) + "\n")
            else:
                out.write(status.render_tree(execution) + "\n")
            return 0
        if engine.cancel(args.execution_id):
            out.write(f"cancelled {args.execution_id}\n")
            return 0
        out.write(f"{args.execution_id} had already finished\n")
        return 1
    except LookupError as exc:
        out.write(f"{exc}\n")
        return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m celeryref.workflows")
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help="start an execution; prints its id")
    start.add_argument("name", nargs="?", help="a registered workflow (see `list`)")
    start.add_argument("--definition", help="an ad-hoc definition as JSON")
    start.add_argument("--input", default="{}", help="the execution's input as JSON")
    show = commands.add_parser("status", help="the execution and its steps")
    show.add_argument("execution_id")
    show.add_argument("--json", action="store_true", help="JSON instead of the tree")
    cancel = commands.add_parser("cancel", help="cancel a running execution")
    cancel.add_argument("execution_id")
    commands.add_parser("list", help="the registered workflows")
    args = parser.parse_args(argv)
    logs.configure(logging.WARNING)
    try:
        return run(args, sys.stdout)
    except InvalidArguments as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
