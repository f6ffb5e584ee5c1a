"""One logging set-up for every process: JSON lines in containers, readable text elsewhere.

:func:`configure` installs one handler on the root logger, writing to stderr:

* ``LOG_FORMAT=json``: one JSON object per line (:class:`JsonFormatter`);
  docker-compose.yml sets it for every service.
* ``LOG_FORMAT=text`` or unset: readable lines (:class:`TextFormatter`). No guessing
  from ``isatty``: a benchmark piped through ``tee`` or a test run stays readable, and a
  container says what it wants.
* ``LOG_LEVEL`` (a name or a number), when set and not empty, overrides the level the
  entry point asks for (a CLI's default, a worker's ``--loglevel``): one variable
  raises or lowers every service.
* ``LOG_EVERY_TASK=1`` keeps Celery's two INFO lines per task ("Task ... received",
  "Task ... succeeded in ..."). Off by default: on a short task they were about a
  tenth of a worker's event loop (issue 15, docs/PERFORMANCE.md), and Flower, the task
  history and the metrics say the same. Failures, retries and everything else are
  still logged.

The environment wins over the arguments (each entry point's defaults). Both are read
from ``os.environ``, not :mod:`celeryref.settings`: logging must work before the
settings load, and when they fail to. Standard library only: python-json-logger would
be a dependency for a 20-line formatter, and the Celery task fields would still be ours.

Who calls it: Celery worker and beat through the ``setup_logging`` signal, Flower
through ``import_modules`` (both in :mod:`celeryref.app.signals`), the API through
uvicorn's ``--factory`` (:func:`celeryref.api.main.api_with_logging`), every CLI in its
``main()``.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import IO, Any

from celery._state import get_current_task

#: Celery's loggers of one INFO line per received and per finished task; raised to
#: WARNING unless ``LOG_EVERY_TASK=1`` (their warnings and errors still show).
PER_TASK_LOGGERS = ("celery.worker.strategy", "celery.app.trace")

#: Values of ``LOG_FORMAT``; the first is the default.
FORMATS = ("text", "json")

#: Loggers with handlers of their own (uvicorn's log config, applied before the app
#: loads): :func:`configure` removes them; records go to the root, at its level.
TAKEN_OVER = ("uvicorn", "uvicorn.error", "uvicorn.access")

#: Attributes every LogRecord has; any other attribute came from ``extra=``.
#: uvicorn's ``color_message`` repeats the message with terminal colours.
_STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "color_message"}


def task_fields(record: logging.LogRecord) -> dict[str, str]:
    """``task_id`` and ``task_name`` of the record (``extra=``), else of the task being
    executed by this thread (the lookup Celery's own ``TaskFormatter`` makes); empty
    outside a task."""
    task_id, task_name = getattr(record, "task_id", None), getattr(record, "task_name", None)
    if task_id is None:
        task = get_current_task()
        if task is not None and task.request.id is not None:
            task_id, task_name = task.request.id, task.name
    if task_id is None:
        return {}
    return {"task_id": str(task_id), "task_name": str(task_name)}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (ISO-8601, UTC, milliseconds), ``level``,
    ``logger``, ``message``; ``task_id``/``task_name`` inside a task; ``exc_info`` (the
    formatted traceback) and ``stack_info`` when present; then any ``extra=`` fields.
    Values JSON cannot encode are written as their ``repr``."""

    def format(self, record: logging.LogRecord) -> str:
        created = datetime.fromtimestamp(record.created, UTC)
        entry: dict[str, Any] = {
            "time": created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **task_fields(record),
        }
        if record.exc_info:
            entry["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exc_info"] = record.exc_text
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value
        return json.dumps(entry, default=repr)


class TextFormatter(logging.Formatter):
    """``2024-05-01 12:00:00,123 INFO    celeryref.tasks name[id]: message`` (the task
    part inside a task only), then the traceback, if any, on the following lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        task = task_fields(record)
        where = f" {task['task_name']}[{task['task_id']}]" if task else ""
        when = self.formatTime(record)
        return f"{when} {record.levelname:<7} {record.name}{where}: {record.message}"


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """:func:`configure`'s handler: a type of its own, so a second call replaces it."""


def level_number(level: int | str) -> int:
    """``20``, ``"20"``, ``"info"`` or ``"INFO"`` -> 20; anything else is refused."""
    if isinstance(level, int):
        return level
    name = level.strip().upper()
    number = int(name) if name.isdigit() else logging.getLevelNamesMapping().get(name)
    if number is None:
        raise ValueError(f"LOG_LEVEL must be a level name or number, got {level!r}")
    return number


def is_configured() -> bool:
    """Whether :func:`configure` has installed its handler in this process."""
    return any(type(h) is _Handler for h in logging.getLogger().handlers)


def configure(
    level: int | str = logging.INFO, fmt: str | None = None, stream: IO[str] | None = None
) -> None:
    """Send every record of the process to ``stream`` (stderr) in one format.

    ``level`` and ``fmt`` (``"text"``/``"json"``) apply when ``LOG_LEVEL`` /
    ``LOG_FORMAT`` are unset or empty. Safe to call again: the previous handler is
    replaced, as are plain ``StreamHandler``s on the root (what ``basicConfig``,
    Tornado and Celery install); other handlers (files, pytest's capture) stay.
    Warnings are logged (``py.warnings``), as Celery does.
    """
    chosen = os.environ.get("LOG_FORMAT") or fmt or FORMATS[0]
    if chosen not in FORMATS:
        raise ValueError(f"LOG_FORMAT must be one of {', '.join(FORMATS)}, got {chosen!r}")
    number = level_number(os.environ.get("LOG_LEVEL") or level)
    handler = _Handler(sys.stderr if stream is None else stream)
    handler.setFormatter(JsonFormatter() if chosen == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        if type(old) in (logging.StreamHandler, _Handler):
            root.removeHandler(old)
            old.close()
    root.addHandler(handler)
    root.setLevel(number)
    logging.captureWarnings(True)  # warnings.warn() becomes a record (logger py.warnings)
    for name in TAKEN_OVER:
        logger = logging.getLogger(name)
        for old in list(logger.handlers):
            logger.removeHandler(old)
        logger.propagate = True
        logger.setLevel(logging.NOTSET)
    every_task = os.environ.get("LOG_EVERY_TASK", "") == "1" or number <= logging.DEBUG
    for name in PER_TASK_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if every_task else logging.WARNING)
