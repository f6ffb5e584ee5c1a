"""The acknowledgement rides on the next pop (issue 15) against the real Redis broker.

A consumer driven by kombu's event loop (a ``Hub``, as Celery's worker drives it) with
prefetch 1 and late acknowledgements: each ack used to be a round trip of its own that
the loop waited for before it could fetch the next message. With the installed channel
the ack travels inside the pop that fetches the next message
(:data:`celeryref.upstream.redis_channel.POP`); an ack no pop takes is sent alone at
the next turn of the loop; an ack whose pop was cut is sent again by the next channel.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
from kombu import Connection, Producer, Queue
from kombu.asynchronous import Hub
from kombu.transport import redis as kombu_redis
from kombu.utils.json import loads

from celeryref.settings import settings
from celeryref.upstream import redis_channel
from tests.conftest import wait_for
from tests.support.broker import own_queue, transport_options
from tests.support.cutting_proxy import CuttingProxy

Received = list[Any]


@pytest.fixture
def queue(clean_state: None) -> Iterator[Queue]:
    """A queue of its own on the tier's Redis; its keys and binding removed after."""
    yield from own_queue("acks")


def publish(queue: Queue, count: int) -> None:
    with Connection(settings.broker_url, transport_options=transport_options()) as connection:
        channel = connection.default_channel
        queue(channel).declare()
        producer = Producer(channel)
        for n in range(count):
            producer.publish({"n": n}, exchange=queue.exchange, routing_key=queue.routing_key)


def unacked(tags: list[str]) -> list[str]:
    """Which of ``tags`` Redis still holds as unacknowledged (the sweep would redeliver)."""
    client = redis.Redis.from_url(settings.broker_url)
    return [tag for tag in tags if client.hexists("unacked", tag)]


class LoopConsumer:
    """Consume ``queue`` as Celery's worker does: prefetch 1, no auto-ack, driven by a
    ``Hub``; ``on_message`` runs on the loop's thread for each message."""

    def __init__(self, url: str, queue: Queue, on_message: Callable[[Any], None]) -> None:
        self.connection = Connection(url, transport_options=transport_options())
        self.channel = self.connection.default_channel
        self.hub = Hub()
        self.connection.transport.register_with_event_loop(self.connection.connection, self.hub)
        self.channel.basic_qos(0, 1, False)
        self.channel.basic_consume(queue.name, False, on_message, "acks-test")

    def turn(self) -> None:
        self.hub.run_once()

    def until(self, done: Callable[[], bool], what: str) -> None:
        wait_for(lambda: self.turn() or done(), timeout=15, what=what, every=0)

    def close(self) -> None:
        self.connection.collect()
        self.hub.close()


def test_an_ack_rides_on_the_next_pop(queue: Queue, monkeypatch: pytest.MonkeyPatch) -> None:
    """Three messages, each acknowledged as it arrives: no ack is a round trip of its
    own (kombu's ``QoS._remove_from_indices`` run alone); the first two reach Redis with
    the pops that fetched the next messages, the last alone at the next turn."""
    assert kombu_redis.MultiChannelPoller is redis_channel.Poller
    alone: list[str] = []
    kombus = kombu_redis.QoS._remove_from_indices

    def spy(qos: Any, tag: str, pipe: Any = None) -> Any:
        if pipe is None:  # kombu's ack: a transaction of its own, waited for
            alone.append(tag)
        return kombus(qos, tag, pipe)

    monkeypatch.setattr(kombu_redis.QoS, "_remove_from_indices", spy)
    publish(queue, 3)
    received: Received = []

    def on_message(message: Any) -> None:
        received.append(message)
        message.ack()

    consumer = LoopConsumer(settings.broker_url, queue, on_message)
    try:
        consumer.until(lambda: len(received) == 3, "three messages")
        tags = [m.delivery_tag for m in received]
        assert unacked(tags[:2]) == []  # carried by the second and third pops
        consumer.turn()  # the next turn: a pop that finds nothing, or the ack alone
        assert unacked(tags) == []
    finally:
        consumer.close()
    assert [m.payload["n"] for m in received] == [0, 1, 2]
    assert alone == []


def test_an_ack_no_pop_takes_is_sent_at_the_next_turn(queue: Queue) -> None:
    """The consumer is cancelled right after its ack, so no pop follows: the ack goes
    alone at the next turn of the loop, not whenever the channel closes."""
    publish(queue, 1)
    received: Received = []

    def on_message(message: Any) -> None:
        received.append(message)
        message.ack()
        consumer.channel.basic_cancel("acks-test")

    consumer = LoopConsumer(settings.broker_url, queue, on_message)
    try:
        consumer.until(lambda: bool(received), "the message")
        assert consumer.channel._acks == [received[0].delivery_tag]  # waiting for a pop
        consumer.turn()
        assert consumer.channel._acks == []
        assert unacked([received[0].delivery_tag]) == []
    finally:
        consumer.close()


def test_an_ack_whose_pop_was_cut_is_sent_by_the_next_channel(queue: Queue) -> None:
    """The pop carrying an ack is cut before Redis has it: Redis still holds the message
    as unacknowledged, and its sweep would run the finished task again. The next channel
    this process opens sends the ack, and the record is gone."""
    publish(queue, 2)
    received: Received = []

    def on_message(message: Any) -> None:
        received.append(message)
        message.ack()

    # The oldest message (popped first) is the list's last; its tag is in no request
    # before the pop that carries its ack.
    client = redis.Redis.from_url(settings.broker_url)
    first = loads(client.lrange(queue.name, -1, -1)[0])["properties"]["delivery_tag"]
    url = urlsplit(settings.broker_url)
    proxy = CuttingProxy((url.hostname or "", url.port or 6379), first.encode(), drop=True)
    consumer = LoopConsumer(proxy.url_through(settings.broker_url), queue, on_message)
    try:
        with pytest.raises(redis.exceptions.ConnectionError):
            consumer.until(lambda: False, "the cut")
        assert proxy.cut.is_set()
        assert [m.delivery_tag for m in received] == [first]
        assert unacked([first]) == [first]  # Redis never saw the ack
    finally:
        consumer.close()
        proxy.close()
    with Connection(settings.broker_url, transport_options=transport_options()) as connection:
        connection.default_channel  # noqa: B018 (opening it is the point)
    assert unacked([first]) == []


def test_an_ack_after_the_connection_is_collected_is_kombus_own(queue: Queue) -> None:
    """Celery acknowledges a task that finished after its broker connection was lost on
    the old channel, from the loop's thread, once it has collected that connection (the
    channel closed, its ``connection`` ``None``). The ack is then kombu's own: through the
    channel's pooled client if Redis answers (here), else a connection error Celery's
    ``ack_log_error`` logs. Scenario 8 found ``worker-io`` stopped by an
    ``AttributeError`` here instead."""
    publish(queue, 1)
    received: Received = []
    consumer = LoopConsumer(settings.broker_url, queue, received.append)
    try:
        consumer.until(lambda: bool(received), "the message")
        consumer.connection.collect()  # what Celery does with a lost connection
        assert received[0].channel.connection is None
        received[0].ack()
        assert unacked([received[0].delivery_tag]) == []
    finally:
        consumer.close()
