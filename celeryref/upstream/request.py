"""The worker-side request of every task (``BaseTask.Request``).

With ``worker_cancel_long_running_tasks_on_connection_loss`` Celery cancels every
unacknowledged ``acks_late`` request when the broker connection drops, so a task
interrupted mid-run is redelivered instead of running twice. Celery 5.7 does that by
terminating the *pool process* the request ran on (seen in the fault suite's Redis
restart drill, docs/RELIABILITY.md F15): a request whose task already finished in the
child, but whose result the main process had not read yet, still counts as running.
Its pool process has meanwhile started the next task; terminating the process kills
that one too, and billiard reports it ``Terminated``, which Celery takes for a revoke:
it marks the innocent task ``REVOKED`` and acknowledges its message. Here a request
terminated although nobody revoked or cancelled it goes back to the queue instead.

(An earlier guard that left not-started requests alone on cancel, F2, was removed in
issue 14: Celery 5.7 cancels only started requests, and no control test could show
the stock class losing one.)

The same applies to the cancel at the end of the soft shutdown window.

Every requeue made here on purpose (a cancelled running request, an innocent one
terminated with it) takes its delivery back from the redelivery guard
(:func:`celeryref.reliability.delivery_guard.forgive_delivery`, F22): only a delivery
whose process died without an outcome counts towards ``MAX_DELIVERIES``. Take-backs
Redis could not take are written when the worker receives its next message.
"""

from __future__ import annotations

import logging
from typing import Any

from billiard.einfo import ExceptionWithTraceback
from celery.exceptions import Terminated
from celery.worker import request

from celeryref.reliability import delivery_guard

logger = logging.getLogger(__name__)


class Request(request.Request):
    """Celery's request, never revoking a task that nobody revoked."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        delivery_guard.write_forgiven()  # before this message can run; cheap when none wait

    def cancel(self, pool: Any, signal: Any = None, emit_retry: bool = True) -> None:
        self._forgive_delivery()  # cancelled to be requeued: not a death (F22)
        super().cancel(pool, signal=signal, emit_retry=emit_retry)

    def _forgive_delivery(self) -> None:
        """This delivery is requeued on purpose: it does not count as a death (F22)."""
        delivery_guard.forgive_delivery(self.id, int(self._request_dict.get("retries") or 0))

    def on_failure(
        self, exc_info: Any, send_failed_event: bool = True, return_ok: bool = False
    ) -> None:
        exc = exc_info.exception
        if isinstance(exc, ExceptionWithTraceback):
            exc = exc.exc
        if isinstance(exc, Terminated) and not self._stopped_on_purpose():
            logger.warning(
                "%s[%s] died with its pool process, terminated to cancel another request; "
                "its message goes back to the queue",
                self.name,
                self.id,
            )
            self._announce_cancelled(emit_retry=False)
            self._forgive_delivery()
            self.reject(requeue=True)
            return
        super().on_failure(exc_info, send_failed_event=send_failed_event, return_ok=return_ok)

    def _stopped_on_purpose(self) -> bool:
        """Whether this request itself was cancelled or revoked (by id)."""
        return bool(
            self._already_cancelled or self._already_revoked or self.id in request.revoked_tasks
        )
