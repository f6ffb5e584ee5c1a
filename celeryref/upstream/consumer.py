"""A worker consumer that records the messages Celery refuses before any task runs.

Celery already refuses them safely: a body in a content type outside
``accept_content`` (pickle, yaml, ...) is never deserialized, and a message for a
task this worker does not know is never executed. It only logs them, though; this
consumer also writes each one to the dead-letter store, so a poisoned or
misrouted message is visible to operators, never a silent drop. The raw body is
stored as a short hex prefix for inspection, never decoded.

Enabled by ``worker_consumer = "celeryref.upstream.consumer:RecordingConsumer"``.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.worker.consumer import Consumer

from celeryref.errors import Classification, Severity
from celeryref.reliability.dead_letters import store as dead_letters

logger = logging.getLogger(__name__)

#: Bytes of a refused body kept (hex) in the dead-letter entry.
BODY_PREFIX_BYTES = 256


def _record(message: Any, category: str, exc: BaseException, task_name: str | None) -> None:
    headers = dict(message.headers or {})
    body = message.body if isinstance(message.body, bytes) else str(message.body).encode()
    try:
        dead_letters.record(
            task_id=str(headers.get("id") or "<no id>"),
            task_name=str(task_name or headers.get("task") or "<unknown>"),
            queue=(message.delivery_info or {}).get("routing_key"),
            args=[],
            kwargs={},
            headers={
                "content_type": message.content_type,
                "content_encoding": message.content_encoding,
                "body_bytes": len(body),
                "body_prefix_hex": body[:BODY_PREFIX_BYTES].hex(),
            },
            exc=exc,
            traceback=None,
            classification=Classification(False, Severity.HIGH, category),
            retries=0,
        )
    except Exception:
        logger.exception("could not record the refused message (%s)", category)


class RecordingConsumer(Consumer):
    """Celery's consumer, plus a dead-letter record of every refused message."""

    def on_decode_error(self, message: Any, exc: BaseException) -> None:
        super().on_decode_error(message, exc)
        _record(message, "undecodable_message", exc, None)

    def on_unknown_task(self, body: Any, message: Any, exc: BaseException) -> None:
        super().on_unknown_task(body, message, exc)
        _record(message, "unknown_task", exc, None)

    def on_unknown_message(self, body: Any, message: Any) -> None:
        super().on_unknown_message(body, message)
        _record(message, "unknown_message", ValueError("not a Celery task message"), None)

    def on_invalid_task(self, body: Any, message: Any, exc: BaseException) -> None:
        super().on_invalid_task(body, message, exc)
        _record(message, "invalid_task_message", exc, None)
