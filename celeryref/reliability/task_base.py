"""The base class of every task (``task_cls`` of the app): the one place failures are decided.

Per attempt it:

1. refuses a message delivered more than ``MAX_DELIVERIES`` times
   (:mod:`celeryref.reliability.delivery_guard`) and dead-letters it;
2. for ``idempotent=True`` tasks, claims the idempotency key or returns the stored
   result (:mod:`celeryref.reliability.idempotency`);
3. runs the task, logging start and finish with the duration (DEBUG: Celery's own
   INFO lines say received and succeeded), and records the outcome in the shared
   history and metrics (:mod:`celeryref.observability.task_stats`, written in batches);
4. on an exception: logs it to the bounded error log, runs the error callbacks for
   its type (:mod:`celeryref.reliability.error_log`), classifies it (:mod:`celeryref.errors`);
   a transient error is retried with the task's :class:`~celeryref.reliability.retry.RetryPolicy`;
   a permanent one, or a transient one out of retries, is dead-lettered and operators
   are alerted on the ``priority`` queue (:mod:`celeryref.reliability.dead_letters.record`).
   A dead letter that neither Postgres nor Redis takes keeps its message: requeued,
   with the task's own error as the reason (F21; the guard bounds the runs).

Task options (``@app.task(idempotent=True, retry_policy=RetryPolicy(...))``):
``idempotent``, ``retry_policy``, ``alert_on_dead_letter``.

Longer than 250 lines: the attempt's four steps and Celery's ``retry`` override
(listed in :data:`celeryref.upstream.PATCHES`) decide one failure together; split,
the order in which they run would have to be read across files.
"""

from __future__ import annotations

import logging
import time
import traceback
from typing import Any

from celery import Task
from celery.exceptions import Ignore, Reject, Retry, TimeLimitExceeded

from celeryref.errors import CircuitOpen, Classification, Severity, classify
from celeryref.reliability import delivery_guard, error_log, idempotency, time_budget
from celeryref.reliability.dead_letters import record as dead_lettering
from celeryref.reliability.retry import RetryPolicy, policy_for
from celeryref.settings import settings

logger = logging.getLogger("celeryref.tasks")

_FLOW_CONTROL = (Retry, Ignore, Reject)


class BaseTask(Task):
    """Logging, metrics, retries, idempotency and dead letters for every task."""

    #: Retry policy of this task; ``None`` uses :func:`celeryref.reliability.retry.policy_for`.
    retry_policy: RetryPolicy | None = None
    #: Run the side effect at most once per idempotency key.
    idempotent: bool = False
    #: Alert operators when this task is dead-lettered.
    alert_on_dead_letter: bool = True
    #: Seconds before a message whose dead letter no store took goes back to the queue.
    keep_pause: float = 5.0

    #: Requests received but not started survive a lost broker connection.
    Request = "celeryref.upstream.request:Request"

    # -- sending -----------------------------------------------------------------

    def retry(self, *args: Any, countdown: float | None = None, **options: Any) -> Any:
        """Celery's ``retry``, keeping a retry whose publish failed.

        A backoff longer than the broker can hold goes to the durable scheduler like any
        far delay (:meth:`celeryref.upstream.app.App.send_task`, F23), instead of being
        shortened.
        """
        try:
            return super().retry(*args, countdown=countdown, **options)
        except Reject as refused:  # Celery's answer to a retry it could not publish
            self._retry_not_published(refused)
            raise

    def _retry_not_published(self, refused: Reject) -> None:
        """Keep a task whose retry could not be published.

        Celery turns the failed publish into ``Reject(requeue=False)``: the message is
        dropped and the task marked FAILURE, with no dead letter. A broker that is away
        (the cause is transient) gets the message back instead: requeued at once, or,
        with the connection gone too, restored from ``unacked`` once Redis is back
        (the delivery guard still bounds how often). Anything else is dead-lettered.
        """
        cause = refused.reason
        if not isinstance(cause, Exception):
            return
        classification = classify(cause)
        if classification.transient:
            logger.warning(
                "could not publish the retry of %s[%s] (%r); its message goes back to the queue",
                self.name,
                self.request.id,
                cause,
            )
            raise Reject(cause, requeue=True) from cause
        self._dead_letter(self.request.args, self.request.kwargs, cause, None, classification)

    # -- the attempt -------------------------------------------------------------

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        request = self.request
        if request.called_directly:
            return self.run(*args, **kwargs)
        started = time.perf_counter()
        try:
            # Counted by the STARTED write (one round trip for both, issue 15), else here.
            deliveries = getattr(request, delivery_guard.COUNT_ATTRIBUTE, None)
            if deliveries is None:
                deliveries = delivery_guard.record_delivery(request.id, request.retries)
        except Exception as exc:  # uncounted is a failed attempt: classified, maybe retried
            self._handle_failure(exc, args, kwargs, started)
            raise  # unreachable: _handle_failure always raises
        if delivery_guard.is_redelivery_loop(deliveries):
            reason = (
                f"{self.name}[{request.id}] delivered {deliveries} times "
                "without an outcome (its worker process died, or its message was "
                "requeued each time); refusing to run it again"
            )
            self._dead_letter(
                args,
                kwargs,
                Reject(reason),
                None,
                Classification(False, Severity.HIGH, "redelivery_loop"),
            )
            raise Reject(reason, requeue=False)
        logger.debug(  # Celery logs receipt and outcome at INFO already (issue 15)
            "task start %s[%s] attempt=%d delivery=%d",
            self.name,
            request.id,
            request.retries + 1,
            deliveries,
        )
        try:
            result = self._run_once(args, kwargs)
        except _FLOW_CONTROL as flow:
            outcome = {Retry: "retried", Ignore: "replaced"}.get(type(flow), "failed")
            self._finished(outcome, started)
            raise
        except Exception as exc:
            time_budget.settle()  # Ignore: a thread pool's watchdog reported its time limit
            self._handle_failure(exc, args, kwargs, started)
            raise  # unreachable: _handle_failure always raises
        time_budget.settle()
        self._finished("succeeded", started)
        return result

    def _run_once(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        # A client's key makes any task at most once (F18, F25): a send whose outcome the
        # API could not know (503) and the client's resend under the key are one run.
        if not self.idempotent and getattr(self.request, idempotency.HEADER, None) is None:
            return self.run(*args, **kwargs)
        key = self.idempotency_key(args, kwargs)
        lease = idempotency.lease_for(self.hard_time_limit())
        claim = idempotency.claim(key, self.name, self.request.id, lease)
        self.request.claimed_idempotency_key = key if claim.acquired else None
        if not claim.acquired:
            logger.info(
                "task %s[%s] repeat of key %s: stored result", self.name, self.request.id, key
            )
            return claim.result
        try:
            result = self.run(*args, **kwargs)
        except Exception as exc:
            if not self._will_retry(exc):  # dead-lettered: a replay may run it again
                try:
                    idempotency.release(key, self.request.id)
                except Exception:
                    logger.exception("could not release key %s; it expires with its lease", key)
            raise
        idempotency.complete(key, self.request.id, result)
        return result

    def complete_idempotency_key(self, cursor: Any, result: Any) -> None:
        """Complete this run's idempotency key inside the task's own transaction.

        Call it with the cursor that writes the task's effect and the result the task
        will return: the effect and the key then commit (or roll back) together, so a
        failure after the commit makes the retry or redelivery return ``result``
        instead of running the effect again (``docs/RELIABILITY.md``, F11).
        """
        key = getattr(self.request, "claimed_idempotency_key", None)
        if key is None:
            raise TypeError(f"{self.name}[{self.request.id}] holds no idempotency key")
        idempotency.complete(key, str(self.request.id), result, cursor=cursor)

    def hard_time_limit(self) -> float:
        """Seconds this run may take before it is stopped: the message's ``time_limit``
        (a per-call option, a workflow step's), else the task's own, else ``TASK_TIME_LIMIT``."""
        given = (getattr(self.request, "timelimit", None) or (None, None))[0]
        return float(given or self.time_limit or settings.task_time_limit)

    def idempotency_key(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        """The caller's key (header ``idempotency_key``) or one derived from the arguments."""
        given = getattr(self.request, idempotency.HEADER, None)
        if given is not None:
            return f"{self.name}:{idempotency.validate_key(given)}"
        return idempotency.derive_key(self.name, list(args), kwargs)

    def _finished(self, outcome: str, started: float, error: str | None = None) -> None:
        duration = time.perf_counter() - started
        logger.debug(
            "task finish %s[%s] %s in %.3fs", self.name, self.request.id, outcome, duration
        )
        self._record_stats(outcome, duration, error)

    def _record_stats(self, outcome: str, duration: float, error: str | None) -> None:
        from celeryref.observability import task_stats

        try:
            task_stats.record(self.name, self.request.id, outcome, duration, error)
        except Exception:  # metrics must never fail a task
            logger.exception("could not record stats of %s", self.name)

    # -- failure -----------------------------------------------------------------

    def _handle_failure(
        self, exc: Exception, args: tuple[Any, ...], kwargs: dict[str, Any], started: float
    ) -> None:
        request = self.request
        classification = classify(exc)
        error_log.run_callbacks(exc)
        try:
            error_log.log_error(self.name, request.id, exc, classification, request.retries)
        except Exception:
            logger.exception("could not write the error log")
        policy = self._policy()
        error = f"{type(exc).__name__}: {exc}"
        if self._will_retry(exc):
            if isinstance(exc, CircuitOpen):
                countdown = max(exc.retry_after, policy.backoff(request.retries))
            else:
                countdown = policy.backoff(request.retries)
            logger.warning(
                "task %s[%s] %s (%s); retry %d/%d in %.2fs",
                self.name,
                request.id,
                error,
                classification.category,
                request.retries + 1,
                policy.max_retries,
                countdown,
            )
            if classification.severity >= Severity.CRITICAL and request.retries == 0:
                dead_lettering.alert(
                    self, f"{self.name} hit a critical error", error, classification, None
                )
            self._finished("retried", started, error)
            raise self.retry(exc=exc, countdown=countdown, max_retries=policy.max_retries)
        self._finished("dead_lettered", started, error)
        self._dead_letter(args, kwargs, exc, traceback.format_exc(), classification)
        raise exc

    def _dead_letter(
        self, args: Any, kwargs: Any, exc: Exception, tb: str | None, c: Classification
    ) -> None:
        """Dead-letter ``exc``; when no store takes it, keep the message instead (F21).

        A message is acknowledged only once its dead letter is stored somewhere
        durable. Here it goes back to the queue after :attr:`keep_pause` seconds (no
        busy loop while both stores are down) with ``exc`` as the reason: the task's
        own error stays the reported cause. Each return counts as a delivery, so the
        task runs at most ``MAX_DELIVERIES`` times; later deliveries are refused
        before running, and their dead letter is tried again each time.
        """
        try:
            dead_lettering.dead_letter(self, args, kwargs, exc, tb, c)
        except dead_lettering.NotStored as lost:
            logger.error(
                "task %s[%s] failed with %s: %s; %s; its message goes back to the queue",
                self.name,
                self.request.id,
                type(exc).__name__,
                exc,
                lost,
            )
            time.sleep(self.keep_pause)
            raise Reject(exc, requeue=True) from lost

    def _policy(self) -> RetryPolicy:
        return self.retry_policy or policy_for(self.name)

    def _will_retry(self, exc: Exception) -> bool:
        """Whether this attempt's failure with ``exc`` is retried (else: dead letter)."""
        return classify(exc).transient and self._policy().allows(self.request.retries)

    def on_failure(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        """Hard time limits kill the process before ``__call__`` sees them: dead-letter here."""
        if isinstance(exc, TimeLimitExceeded):
            tb = str(einfo) if einfo else None
            try:
                dead_lettering.dead_letter(
                    self, args, kwargs, exc, tb, classify(exc), task_id=task_id
                )
            except dead_lettering.NotStored as lost:  # in the worker: it cannot keep it
                logger.critical("task %s[%s] lost: %s", self.name, task_id, lost)
