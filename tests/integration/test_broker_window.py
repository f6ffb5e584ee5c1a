"""F9 against the real Redis broker: the reply that carries a message to a consumer is cut
on its way (a connection cut, a container killed), with a control on kombu's own channel
(when the control fails, kombu closed the window upstream and our pop can go).

A small TCP proxy sits between the consumer and the tier's Redis. It forwards every byte
both ways until a reply from Redis carries the message under test; that reply is dropped
and both sockets are closed. Redis has then run the command that hands the message over,
and the consumer never sees it: what is left in Redis is all there is."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
from kombu import Connection, Producer, Queue
from kombu.transport import redis as kombu_redis

from celeryref.reliability import put_once
from celeryref.settings import settings
from celeryref.upstream import redis_channel
from tests.support.broker import own_queue, transport_options
from tests.support.cutting_proxy import CuttingProxy


@pytest.fixture
def queue(clean_state: None) -> Iterator[Queue]:
    """A queue of its own on the tier's Redis; its keys and binding removed after."""
    yield from own_queue("f9")


def publish_one(queue: Queue, marker: str) -> None:
    """One message on ``queue`` whose headers carry ``marker``, through a direct connection."""
    with Connection(settings.broker_url, transport_options=transport_options()) as connection:
        channel = connection.default_channel
        queue(channel).declare()
        Producer(channel).publish(
            {"n": 1},
            exchange=queue.exchange,
            routing_key=queue.routing_key,
            headers={"f9": marker},
        )


def consume_through(proxy: CuttingProxy, queue: Queue) -> tuple[list[Any], BaseException]:
    """Consume ``queue`` through ``proxy`` as a worker does (``drain_events``) until the
    connection is cut. Returns the messages delivered and the error the consumer saw."""
    proxied = proxy.url_through(settings.broker_url)
    received: list[Any] = []
    connection = Connection(proxied, transport_options=transport_options())
    try:
        channel = connection.default_channel
        channel.basic_consume(queue.name, False, received.append, "f9-test")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                connection.drain_events(timeout=1)
            except TimeoutError:  # socket.timeout: nothing yet
                continue
            except connection.connection_errors as exc:
                assert proxy.cut.is_set(), f"failed before the cut: {exc!r}"
                return received, exc
        pytest.fail("the proxy never saw the message in a reply")
    finally:
        connection.collect()  # the cut one, without talking to Redis


def where_is(marker: str, queue: Queue) -> dict[str, list[str]]:
    """Every key of the tier's Redis holding the message marked ``marker``: queue lists
    and the ``unacked`` hash (the visibility-timeout sweep's source)."""
    client = redis.Redis.from_url(settings.broker_url)
    found: dict[str, list[str]] = {}
    for key in client.scan_iter(f"{queue.name}*"):
        if client.type(key) == b"list":
            hits = [raw for raw in client.lrange(key, 0, -1) if marker.encode() in raw]
            if hits:
                found[key.decode()] = [raw.decode() for raw in hits]
    unacked = [raw for raw in client.hvals("unacked") if marker.encode() in raw]
    if unacked:
        found["unacked"] = [raw.decode() for raw in unacked]
    return found


def cut_inside_the_window(queue: Queue) -> tuple[str, list[Any], BaseException]:
    """Publish one message, consume it through a proxy that cuts the reply carrying it.
    Returns its marker, what the consumer received, and the error it saw."""
    marker = uuid.uuid4().hex
    publish_one(queue, marker)
    assert list(where_is(marker, queue)) == [queue.name]
    proxy = CuttingProxy((urlsplit(settings.broker_url).hostname or "", _port()), marker.encode())
    try:
        received, error = consume_through(proxy, queue)
    finally:
        proxy.close()
    return marker, received, error


def publish_through(proxy: CuttingProxy, queue: Queue, marker: str) -> None:
    """Publish one message marked ``marker`` through ``proxy`` as Celery does: with its
    publish id (:func:`celeryref.reliability.put_once.stamp`) and kombu's retry on
    connection errors."""
    proxied = proxy.url_through(settings.broker_url)
    policy = {"max_retries": 3, "interval_start": 0, "interval_step": 0.1, "interval_max": 0.2}
    with Connection(proxied, transport_options=transport_options()) as connection:
        Producer(connection).publish(
            {"n": 1},
            exchange=queue.exchange,
            routing_key=queue.routing_key,
            headers={"f9": marker, put_once.HEADER: marker},  # as Celery's publish has it
            retry=True,
            retry_policy=policy,
        )


def publish_losing_the_reply(queue: Queue) -> dict[str, list[str]]:
    """Publish one message whose push reaches Redis while its reply is lost (the
    connection cut); where the message is afterwards."""
    marker = uuid.uuid4().hex
    with Connection(settings.broker_url, transport_options=transport_options()) as connection:
        queue(connection.default_channel).declare()
    upstream = (urlsplit(settings.broker_url).hostname or "", _port())
    proxy = CuttingProxy(upstream, marker.encode(), on_request=True)
    try:
        publish_through(proxy, queue, marker)
    finally:
        proxy.close()
    assert proxy.cut.is_set(), "the proxy never saw the publish"
    return where_is(marker, queue)


def test_kombus_own_channel_pushes_a_retried_publish_twice(
    queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Control (F25): with kombu's channel a publish whose reply is lost is retried (by
    redis-py or kombu's ``ensure``) and Redis gets the message twice: one task id, two
    runs. When this fails, kombu closed the hole upstream and ``put_once`` can go."""
    monkeypatch.setattr(kombu_redis.Transport, "Channel", kombu_redis.Channel)
    found = publish_losing_the_reply(queue)
    assert len(found[queue.name]) == 2, found


def test_a_retried_publish_is_pushed_once(queue: Queue) -> None:
    """F25: the same lost reply with the installed channel: the retry carries the first
    attempt's id, the script sees it, and the queue holds the message once."""
    assert kombu_redis.Transport.Channel is redis_channel.Channel
    redis.Redis.from_url(settings.broker_url).script_flush()  # as after a restart: reloaded
    found = publish_losing_the_reply(queue)
    assert list(found) == [queue.name]
    (raw,) = found[queue.name]
    assert put_once.HEADER in json.loads(raw)["headers"]


def _port() -> int:
    return urlsplit(settings.broker_url).port or 6379


def test_kombus_own_channel_loses_the_message_there(
    queue: Queue, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Control (F9): with kombu's channel the ``BRPOP`` reply carrying the message is cut: the
    consumer never gets it, and it is in no queue and not in ``unacked``, so no sweep can
    bring it back. When this fails, kombu closed the window upstream."""
    monkeypatch.setattr(kombu_redis.Transport, "Channel", kombu_redis.Channel)
    marker, received, error = cut_inside_the_window(queue)
    assert received == []
    assert isinstance(error, redis.exceptions.ConnectionError), error
    assert where_is(marker, queue) == {}


def test_the_same_cut_leaves_the_message_in_unacked_for_the_sweep(queue: Queue) -> None:
    """F9: with the installed channel the pop records the message as unacked in the same
    command, so the same cut leaves it in ``unacked``; the visibility-timeout sweep puts it
    back on its queue, and the next consumer gets it, marked redelivered."""
    assert kombu_redis.Transport.Channel is redis_channel.Channel
    redis.Redis.from_url(settings.broker_url).script_flush()  # as after a restart: reloaded
    marker, received, error = cut_inside_the_window(queue)
    assert received == []
    assert isinstance(error, redis.exceptions.ConnectionError), error
    (record,) = where_is(marker, queue)["unacked"]
    payload, exchange, routing_key = json.loads(record)
    assert (payload["headers"]["f9"], exchange, routing_key) == (marker, queue.name, queue.name)

    swept = {**transport_options(), "visibility_timeout": 0}  # the sweep, without waiting an hour
    with Connection(settings.broker_url, transport_options=swept) as connection:
        connection.default_channel.qos.restore_visible(num=100, interval=1)
    assert list(where_is(marker, queue)) == [queue.name]
    with Connection(settings.broker_url, transport_options=transport_options()) as connection:
        message = connection.default_channel.basic_get(queue.name, no_ack=False)
        assert message is not None
        assert (message.headers["f9"], message.delivery_info["redelivered"]) == (marker, True)
        message.ack()
    assert where_is(marker, queue) == {}
