"""Findings F12 and F13 against the real Redis broker, each with a control on kombu's own
channel (when a control fails, kombu fixed it upstream and the workaround can go).

F12: closing a connection whose transport is already detached (Celery 5.7's reconnect
path after a failed first close) must not crash the worker, and must not lose the
channel's unacknowledged message. F13: a message ``BRPOP`` handed over just as Redis went
away must not be lost."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from kombu import Connection, Exchange, Producer, Queue
from kombu.transport import redis as kombu_redis

from celeryref.celery_app import app
from celeryref.settings import settings
from celeryref.upstream import redis_channel as broker_transport
from tests.integration.conftest import spare

QUEUE = Queue("f12-test", Exchange("f12-test", type="direct"), routing_key="f12-test")


@pytest.fixture
def broker(clean_state: None) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(settings.broker_url)
    yield client
    client.delete(QUEUE.name, "unacked", "unacked_index")


def channel_with_one_message(connection: Connection) -> Any:
    """``connection``'s channel, with :data:`QUEUE` declared and one message in it."""
    channel = connection.default_channel
    QUEUE(channel).declare()
    Producer(channel).publish({"n": 1}, exchange=QUEUE.exchange, routing_key=QUEUE.routing_key)
    return channel


def close_like_celery_after_a_failed_first_close() -> tuple[Any, Exception | None]:
    """A message delivered and not acknowledged, then the transport detached with the
    channel still open (what ``collect()`` leaves when Redis refused the first close),
    then ``close()``. Returns the delivered message and what ``close()`` raised."""
    connection = app.connection_for_read()
    message = channel_with_one_message(connection).basic_get(QUEUE.name, no_ack=False)
    assert message is not None
    connection._do_close_transport()
    try:
        connection.close()
    except Exception as exc:  # what close() raises is the result under test
        return message, exc
    return message, None


def test_closing_a_detached_channel_is_a_connection_error_and_keeps_the_message(
    broker: redis.Redis,
) -> None:
    """With the installed channel the close completes (its connection error is ignored
    like any other during teardown) and the message waits in ``unacked`` for the sweep."""
    assert kombu_redis.Transport.Channel is broker_transport.Channel
    message, raised = close_like_celery_after_a_failed_first_close()
    assert raised is None
    assert message.delivery_tag.encode() in broker.hkeys("unacked")


def test_kombus_own_channel_still_crashes_there(
    broker: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Control (F12): kombu's channel raises AttributeError on the same path, the error that
    killed workers in the Redis restart drill. When this fails, kombu fixed it upstream
    and :mod:`celeryref.upstream.redis_channel` can go."""
    monkeypatch.setattr(kombu_redis.Transport, "Channel", kombu_redis.Channel)
    _, raised = close_like_celery_after_a_failed_first_close()
    assert isinstance(raised, AttributeError), raised


def pop_as_redis_goes_away(url: str, broker: redis.Redis) -> Connection:
    """F13's window on the spare Redis at ``url``: ``BRPOP`` hands :data:`QUEUE`'s one
    message over, then Redis stops before the consumer records it as unacknowledged,
    then Redis is back. Returns the broken connection, the message in no Redis key."""
    options = app.conf.broker_transport_options
    connection = Connection(url, transport_options=options)
    channel = channel_with_one_message(connection)
    received: list[Any] = []
    channel.basic_consume(QUEUE.name, False, received.append, "f13-test")
    channel.connection.cycle._register_BRPOP(channel)  # connect, send BRPOP (as the hub does)
    assert channel.client.connection.can_read(timeout=10), "BRPOP did not answer"

    stop = spare("stop", "redis")
    assert stop.returncode == 0, stop.stderr
    try:
        with pytest.raises(channel.connection_errors):
            channel._brpop_read()  # the reply is already here; recording it fails
    finally:
        up = spare("up", "-d", "--wait", "redis")
        assert up.returncode == 0, up.stderr
    assert received == []
    assert broker.llen(QUEUE.name) == 0 and broker.hlen("unacked") == 0  # only in memory
    return connection


def reconnect(url: str) -> None:
    """Open and close a channel, as the worker does once Redis answers again."""
    with Connection(url, transport_options=app.conf.broker_transport_options) as reconnected:
        reconnected.channel().close()


def test_redis_going_away_at_the_pop_loses_nothing(
    spare_redis: tuple[str, redis.Redis],
) -> None:
    """F13 (and F9): the consumer is woken for :data:`QUEUE`'s one message, then Redis stops
    before the pop completes. Our pop and its ``unacked`` record are one Lua script, so
    after Redis is back the message is still in Redis: in its list (never popped) or in
    ``unacked`` (popped and recorded, restored by the visibility sweep), never in neither."""
    url, broker = spare_redis
    options = app.conf.broker_transport_options
    connection = Connection(url, transport_options=options)
    channel = channel_with_one_message(connection)
    received: list[Any] = []
    channel.basic_consume(QUEUE.name, False, received.append, "f13-test")
    channel.connection.cycle._register_BRPOP(channel)  # connect, wait (as the hub does)
    assert channel.client.connection.can_read(timeout=10), "the consumer was not woken"

    stop = spare("stop", "redis")
    assert stop.returncode == 0, stop.stderr
    try:
        with pytest.raises(channel.connection_errors):
            channel._brpop_read()  # woken; the pop itself meets a Redis that is gone
    finally:
        up = spare("up", "-d", "--wait", "redis")
        assert up.returncode == 0, up.stderr
    assert received == []
    assert broker.llen(QUEUE.name) + broker.hlen("unacked") == 1
    assert broker_transport.orphans() == []
    connection.collect()  # the broken one, without talking to Redis


def test_kombus_own_channel_loses_the_message_there(
    spare_redis: tuple[str, redis.Redis], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Control (F13): with kombu's channel the same message is dropped: in no queue, not in
    ``unacked`` (so no visibility-timeout sweep brings it back), kept nowhere, and still
    gone after the reconnect."""
    monkeypatch.setattr(kombu_redis.Transport, "Channel", kombu_redis.Channel)
    url, broker = spare_redis
    connection = pop_as_redis_goes_away(url, broker)
    assert broker_transport.orphans() == []

    reconnect(url)
    lists = [key for key in broker.scan_iter() if broker.type(key) == b"list"]
    assert [broker.lrange(key, 0, -1) for key in lists if broker.llen(key)] == []
    assert broker.hlen("unacked") == 0
    connection.collect()
