"""What the broker tests share: a queue of their own on the tier's Redis, and the app's
transport options for the kombu connections they open."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import redis
from kombu import Exchange, Queue

from celeryref.celery_app import app
from celeryref.settings import settings


def own_queue(prefix: str) -> Iterator[Queue]:
    """For a fixture: a queue named ``prefix-<random>``; its keys and binding removed after."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    yield Queue(name, Exchange(name, type="direct"), routing_key=name)
    client = redis.Redis.from_url(settings.broker_url)
    client.delete(*(key for key in client.scan_iter(f"{name}*")), f"_kombu.binding.{name}")


def transport_options() -> dict[str, Any]:
    """The deployment's broker transport options (visibility timeout, priorities...)."""
    return dict(app.conf.broker_transport_options)
