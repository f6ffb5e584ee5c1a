"""Step tasks: ordinary tasks that, inside a workflow, report to the engine.

A step task is a plain function ``fn(data, upstream, params) -> result`` (the
execution's input, ``{dependency: result}``, the step's static params) turned into
a task by :func:`workflow_step` with :class:`StepTask` as its base::

    @app.task(bind=True, base=StepTask)
    @workflow_step
    def analyze_records(data, upstream, params): ...

Sent by the engine, the message carries only ``params`` and the step's context
(kwarg ``workflow``); the step loads its input and its dependencies' results from
Postgres, runs, and records the outcome through :mod:`celeryref.workflows.engine`,
which queues the steps that became ready. Called with ``data``/``upstream``
directly (no ``workflow``), it is a plain task.

Failures follow the base class (:mod:`celeryref.reliability.task_base`): a transient error is
retried with the step's own ``retries`` and ``retry_delay``; a permanent error, or
a transient one out of retries, fails the step (and the execution), as does a
hard time limit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celery.exceptions import TimeLimitExceeded

from celeryref.errors import classify
from celeryref.reliability.retry import RetryPolicy, policy_for
from celeryref.reliability.task_base import BaseTask
from celeryref.workflows import engine
from celeryref.workflows.engine import StepContext

StepFunction = Callable[[Any, dict[str, Any], dict[str, Any]], Any]

#: Cap (seconds) of one backoff between attempts of a step.
STEP_MAX_DELAY = 60.0


class StepTask(BaseTask):
    """Base of step tasks: the retry policy of the step being run; hard limits fail it."""

    _own_policy: RetryPolicy | None = None

    @property
    def retry_policy(self) -> RetryPolicy | None:
        ctx = _context(self.request.kwargs)
        if ctx is None:
            return self._own_policy
        delay = min(ctx.retry_delay, STEP_MAX_DELAY)
        return RetryPolicy(max_retries=ctx.retries, base_delay=delay, max_delay=STEP_MAX_DELAY)

    @retry_policy.setter
    def retry_policy(self, policy: RetryPolicy | None) -> None:
        self._own_policy = policy

    def on_failure(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        super().on_failure(exc, task_id, args, kwargs, einfo)
        ctx = _context(kwargs)
        if ctx is not None and isinstance(exc, TimeLimitExceeded):
            engine.fail_step(ctx, task_id, f"hard time limit exceeded: {exc}")


def _context(kwargs: object) -> StepContext | None:
    raw = kwargs.get("workflow") if isinstance(kwargs, dict) else None
    return StepContext.from_message(raw)


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def workflow_step(fn: StepFunction) -> Callable[..., Any]:
    """The body of a bound step task running ``fn``; see the module docstring."""

    def body(
        self: StepTask,
        data: Any = None,
        upstream: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        workflow: dict[str, Any] | None = None,
    ) -> Any:
        ctx = StepContext.from_message(workflow)
        if ctx is None:
            return fn(data or {}, upstream or {}, params or {})
        task_id = str(self.request.id)
        begin = engine.begin_step(ctx, task_id)
        if begin.action != "run":
            return begin.result
        try:
            result = fn(begin.data, begin.upstream or {}, params or {})
        except Exception as exc:
            policy = self.retry_policy or policy_for(self.name)
            if classify(exc).transient and policy.allows(self.request.retries):
                engine.note_retry(ctx, _error(exc))
            else:
                engine.fail_step(ctx, task_id, _error(exc))
            raise
        engine.complete_step(ctx, task_id, result)
        return result

    # Not functools.wraps: Celery must see body's signature (``workflow``), not fn's.
    body.__name__ = fn.__name__
    body.__qualname__ = fn.__qualname__
    body.__module__ = fn.__module__
    body.__doc__ = fn.__doc__
    return body
