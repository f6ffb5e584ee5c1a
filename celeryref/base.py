"""The base class of every task (``task_cls`` of the app).

It logs start and finish with the duration and refuses a message that has been
delivered more often than ``MAX_DELIVERIES`` (see :mod:`celeryref.delivery_guard`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import Task
from celery.exceptions import Reject

from celeryref import delivery_guard

logger = logging.getLogger("celeryref.tasks")


class BaseTask(Task):
    """Logging, timing and the redelivery cap for every task."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        request = self.request
        if request.called_directly:
            return self.run(*args, **kwargs)
        deliveries = delivery_guard.record_delivery(request.id, request.retries)
        if delivery_guard.is_redelivery_loop(deliveries):
            reason = (
                f"{self.name}[{request.id}] delivered {deliveries} times "
                "(its worker process keeps dying); refusing to run it again"
            )
            logger.error(reason)
            raise Reject(reason, requeue=False)
        logger.info(
            "task start %s[%s] attempt=%d delivery=%d",
            self.name,
            request.id,
            request.retries + 1,
            deliveries,
        )
        started = time.perf_counter()
        outcome = "raised"
        try:
            result = self.run(*args, **kwargs)
            outcome = "succeeded"
            return result
        finally:
            logger.info(
                "task finish %s[%s] %s in %.3fs",
                self.name,
                request.id,
                outcome,
                time.perf_counter() - started,
            )
