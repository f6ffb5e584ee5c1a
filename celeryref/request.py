"""The worker-side request of every task (``BaseTask.Request``).

With ``worker_cancel_long_running_tasks_on_connection_loss`` Celery cancels every
unacknowledged ``acks_late`` request when the broker connection drops, so a task
interrupted mid-run is redelivered instead of running twice. A request that was
received but had not *started* has nothing to interrupt, yet Celery's cancel
terminates its pool job, reports it ``REVOKED`` and acknowledges its message: the
task is lost (seen in the fault suite's Redis restart drill). Such requests are
left alone here; they run when their turn comes. The same applies to the cancel
at the end of the soft shutdown window: a request not started is not revoked, and
its unacknowledged message goes back to the queue when the worker closes.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.worker import request

logger = logging.getLogger(__name__)


class Request(request.Request):
    """Celery's request, never revoking a task that has not started."""

    def cancel(self, pool: Any, signal: Any = None, emit_retry: bool = True) -> None:
        if not self.time_start:
            logger.info("not cancelling %s[%s]: it has not started", self.name, self.id)
            return
        super().cancel(pool, signal=signal, emit_retry=emit_retry)
