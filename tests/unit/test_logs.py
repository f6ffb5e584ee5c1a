"""celeryref/observability/logs.py: one JSON object per line or readable text, for
every process (CLIs, API, Celery worker and beat, Flower)."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from celery import Celery
from celery.app.log import Logging
from celery.signals import import_modules, setup_logging
from celery.utils.log import ColorFormatter

from celeryref.app import signals
from celeryref.observability import logs
from devtools.harness import ROOT

#: Loggers whose handlers, level and propagation the tests below may change.
TOUCHED = ("", "celery", "celery.task", "multiprocessing", *logs.TAKEN_OVER)


@pytest.fixture(autouse=True)
def isolated_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts unconfigured, without LOG_FORMAT/LOG_LEVEL, and leaves logging,
    Celery's "already set up" flag and the environment as it found them."""
    monkeypatch.delenv("LOG_FORMAT", raising=False)
    monkeypatch.delenv("LOG_LEVEL", raising=False)
    saved = {
        name: (list(lg.handlers), lg.level, lg.propagate)
        for name in TOUCHED
        for lg in [logging.getLogger(name)]
    }
    environ, celery_setup = dict(os.environ), Logging._setup
    root = logging.getLogger()  # configured already by an earlier test's import_modules?
    root.handlers[:] = [h for h in root.handlers if not isinstance(h, logs._Handler)]
    yield
    for name, (handlers, level, propagate) in saved.items():
        lg = logging.getLogger(name)
        for handler in lg.handlers:
            if handler not in handlers:
                handler.close()
        lg.handlers[:] = handlers
        lg.setLevel(level)
        lg.propagate = propagate
    Logging._setup = celery_setup
    os.environ.clear()
    os.environ.update(environ)
    logging.captureWarnings(False)


def configured(fmt: str | None = None, level: int | str = logging.DEBUG) -> io.StringIO:
    stream = io.StringIO()
    logs.configure(level=level, fmt=fmt, stream=stream)
    return stream


def lines(stream: io.StringIO) -> list[str]:
    return stream.getvalue().splitlines()


def test_a_json_line_has_time_level_logger_message_and_extra_fields() -> None:
    """Given LOG_FORMAT=json, a record is one line of JSON with the documented fields."""
    stream = configured("json")
    logging.getLogger("celeryref.x").warning("hello %s", "you", extra={"queue": "default"})
    (line,) = lines(stream)
    entry = json.loads(line)
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "celeryref.x"
    assert entry["message"] == "hello you"
    assert entry["queue"] == "default"
    assert entry["time"].endswith("Z") and datetime.fromisoformat(entry["time"])
    assert "task_id" not in entry and "exc_info" not in entry


def test_an_exception_stays_on_one_json_line_with_its_traceback() -> None:
    """A traceback (multi-line, quotes) and an unencodable extra still give one valid line."""
    stream = configured("json")
    try:
        raise KeyError('missing "key"\n')
    except KeyError:
        logging.getLogger("x").exception("failed", extra={"thing": object()})
    (line,) = lines(stream)
    entry = json.loads(line)
    assert entry["message"] == "failed"
    assert entry["exc_info"].startswith("Traceback (most recent call last):")
    assert "KeyError" in entry["exc_info"]
    assert entry["thing"].startswith("<object object")


def test_records_inside_a_task_carry_its_id_and_name() -> None:
    """Given a task executing (Celery's request stack), its id and name are on the line."""
    stream = configured("json")
    app = Celery("logs-test", set_as_current=False)

    @app.task(name="logs_test.hello")
    def hello() -> None:
        logging.getLogger("celeryref.tasks").info("inside")

    result = hello.apply(task_id="abc-123")
    assert result.successful(), result.traceback
    logging.getLogger("celeryref.tasks").info("outside")
    entries = [json.loads(line) for line in lines(stream)]
    inside, outside = (e for e in entries if e["logger"] == "celeryref.tasks")
    assert (inside["task_id"], inside["task_name"]) == ("abc-123", "logs_test.hello")
    assert "task_id" not in outside


def test_text_is_readable_with_the_traceback_below() -> None:
    """Unset LOG_FORMAT means text: time, level, logger, task, message; traceback after."""
    stream = configured()
    logging.getLogger("celeryref.x").info("plain %d", 1, extra={"task_id": "t1", "task_name": "n"})
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("celeryref.x").error("went wrong", exc_info=True)
    first, second, *traceback = lines(stream)
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"
    assert re.fullmatch(stamp + r" INFO    celeryref\.x n\[t1\]: plain 1", first)
    assert re.fullmatch(stamp + r" ERROR   celeryref\.x: went wrong", second)
    assert traceback[0] == "Traceback (most recent call last):"
    assert traceback[-1] == "ValueError: boom"


def test_the_environment_wins_over_the_entry_points_defaults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """LOG_FORMAT and LOG_LEVEL override the arguments; an empty value does not."""
    monkeypatch.setenv("LOG_FORMAT", "json")
    monkeypatch.setenv("LOG_LEVEL", "warning")
    stream = configured("text", level=logging.DEBUG)
    logging.getLogger("x").info("dropped")
    logging.getLogger("x").warning("kept")
    assert [json.loads(line)["message"] for line in lines(stream)] == ["kept"]
    monkeypatch.setenv("LOG_LEVEL", "")
    logs.configure(level="10", stream=stream)
    assert logging.getLogger().level == logging.DEBUG


@pytest.mark.parametrize(("name", "value"), [("LOG_FORMAT", "yaml"), ("LOG_LEVEL", "loud")])
def test_a_misspelt_variable_is_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=name):
        configured()


def test_configure_replaces_console_handlers_and_keeps_the_others() -> None:
    """basicConfig's handler and a previous configure() go; pytest's capture stays;
    a second call leaves exactly one handler of ours."""
    root = logging.getLogger()
    console = logging.StreamHandler(io.StringIO())
    root.addHandler(console)
    others = [h for h in root.handlers if type(h) is not logging.StreamHandler]
    configured("json")
    stream = configured("json")
    assert console not in root.handlers
    assert [h for h in root.handlers if h not in others] == [root.handlers[-1]]
    assert logs.is_configured()
    logging.getLogger("x").warning("once")
    assert len(lines(stream)) == 1


def test_uvicorns_own_handlers_are_taken_over() -> None:
    """After uvicorn's default log config, access and server lines reach our handler,
    once each, in our format."""
    from uvicorn.config import LOGGING_CONFIG

    logging.config.dictConfig(LOGGING_CONFIG)
    stream = configured("json")
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d', "127.0.0.1:5", "GET", "/healthz", "1.1", 200
    )
    logging.getLogger("uvicorn.error").info("Started server process [%d]", 7)
    entries = [json.loads(line) for line in lines(stream)]
    assert [e["logger"] for e in entries] == ["uvicorn.access", "uvicorn.error"]
    assert entries[0]["message"] == '127.0.0.1:5 - "GET /healthz HTTP/1.1" 200'


def celery_handlers() -> list[logging.Handler]:
    loggers = [logging.getLogger(), logging.getLogger("celery.task")]
    return [h for lg in loggers for h in lg.handlers if isinstance(h.formatter, ColorFormatter)]


def test_the_setup_logging_receiver_keeps_celery_from_installing_its_handlers() -> None:
    """Given our receiver, Celery's own set-up (worker and beat call it) adds no
    ColorFormatter/TaskFormatter handler, and task loggers propagate to ours."""
    app = Celery("logs-test", set_as_current=False)
    Logging._setup = False
    app.log.setup(loglevel="INFO")
    assert celery_handlers() == []
    assert logs.is_configured()
    assert logging.getLogger().level == logging.INFO
    assert logging.getLogger("celery.task").propagate
    billiard = logging.getLogger("multiprocessing")  # pool errors, at ERROR as Celery has it
    assert billiard.propagate and billiard.level == logging.ERROR


def test_control_without_the_receiver_celery_installs_its_own_handlers() -> None:
    """The check above can fail: with the receiver disconnected Celery adds its handlers."""
    app = Celery("logs-test", set_as_current=False)
    Logging._setup = False
    setup_logging.disconnect(signals.configure_logging)
    try:
        app.log.setup(loglevel="INFO")
    finally:
        setup_logging.connect(signals.configure_logging)
    assert len(celery_handlers()) == 2


def test_flower_gets_our_handler_instead_of_tornados() -> None:
    """Flower sends import_modules after Tornado put a plain handler on the root: it is
    replaced. A process already configured (worker, beat) keeps its level."""
    root = logging.getLogger()
    tornado_like = logging.StreamHandler(io.StringIO())
    root.addHandler(tornado_like)
    import_modules.send(sender=None)
    assert tornado_like not in root.handlers and logs.is_configured()
    configured(level=logging.ERROR)
    import_modules.send(sender=None)
    assert root.level == logging.ERROR


def stderr_until(
    command: list[str], done: str, env: dict[str, str], timeout: float = 60
) -> list[str]:
    """Run ``command`` and collect its stderr lines up to the first containing ``done``;
    then stop it. Fails after ``timeout`` seconds without that line."""
    process = subprocess.Popen(
        command, cwd=ROOT, env={**os.environ, **env}, stderr=subprocess.PIPE, text=True
    )
    watchdog = threading.Timer(timeout, process.kill)
    watchdog.start()
    collected: list[str] = []
    try:
        assert process.stderr is not None
        for line in process.stderr:
            collected.append(line.rstrip("\n"))
            if done in line:
                return collected
        pytest.fail(f"no line with {done!r} in {timeout} s:\n" + "\n".join(collected))
    finally:
        watchdog.cancel()
        process.kill()
        process.wait()


def json_lines(collected: list[str]) -> list[dict[str, Any]]:
    """Every line parsed as JSON (a line that is not JSON fails the test, named)."""
    parsed = []
    for line in collected:
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON line: {line!r}")
    return parsed


def test_a_real_worker_writes_json_lines_only() -> None:
    """Given LOG_FORMAT=json and an unreachable broker, everything the worker logs to
    stderr (warnings included) is JSON, up to its "Cannot connect" error."""
    env = {
        "LOG_FORMAT": "json",
        "REDIS_HOST": "127.0.0.1",
        "REDIS_PORT": "1",
        "POSTGRES_HOST": "127.0.0.1",
        "POSTGRES_PORT": "1",
    }
    celery = [sys.executable, "-m", "celery", "-A", "celeryref.celery_app"]
    worker = [*celery, "worker", "--pool", "solo", "-Q", "default", "--loglevel", "INFO"]
    entries = json_lines(stderr_until(worker, "Cannot connect", env))
    assert entries[-1]["logger"] == "celery.worker.consumer.consumer"
    assert entries[-1]["level"] == "ERROR"


def test_the_api_factory_writes_json_lines_only() -> None:
    """uvicorn with the app service's factory: server lines are JSON from the first."""
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "celeryref.api.main:api_with_logging",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
    ]
    entries = json_lines(stderr_until(command, "Uvicorn running on", {"LOG_FORMAT": "json"}))
    assert entries[0]["message"].startswith("Started server process")
    assert {e["logger"] for e in entries} == {"uvicorn.error"}


@pytest.mark.parametrize(
    ("every_task", "level", "logged"),
    [("", logging.INFO, False), ("1", logging.INFO, True), ("", logging.DEBUG, True)],
)
def test_celerys_line_per_task_is_off_unless_asked_for(
    monkeypatch: pytest.MonkeyPatch, every_task: str, level: int, logged: bool
) -> None:
    """Celery's "received"/"succeeded" INFO lines only with LOG_EVERY_TASK=1 (or DEBUG);
    its warnings and errors, and every other INFO line, always."""
    monkeypatch.setenv("LOG_EVERY_TASK", every_task)
    monkeypatch.delenv("LOG_LEVEL", raising=False)
    stream = configured("json", level=level)
    for name in logs.PER_TASK_LOGGERS:
        logging.getLogger(name).info("per task")
        logging.getLogger(name).error("failed")
    logging.getLogger("celery.worker.consumer").info("other")
    messages = [json.loads(line)["message"] for line in lines(stream)]
    assert messages.count("per task") == (2 if logged else 0)
    assert messages.count("failed") == 2 and "other" in messages
