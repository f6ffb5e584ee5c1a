"""kombu's Redis channel with three holes closed (a crash and two lost messages: F12, F13,
F9), and the acknowledgement riding on the next pop (issue 15).

**F12, a crash.** When a worker loses the broker, Celery 5.7 first ``collect()``s the
connection (close its channel, then detach the transport: ``transport.client = None``)
and then ``close()``s it. If Redis is down, the first channel close fails early
(draining the pending ``BRPOP``), so the second one runs the rest: it requeues the
channel's unacknowledged messages through a new connection pool built from the detached
transport's settings, and ``None.hostname`` raises ``AttributeError``. That is not a
connection error, nobody catches it, the worker dies with "Unrecoverable error" and only
Docker's restart policy brings it back. Here a channel whose transport is detached
raises a connection error instead; Celery ignores those while it tears a connection
down, and the worker reconnects by itself. The messages it could not requeue are still
in Redis's ``unacked`` hash and come back with the visibility-timeout sweep.

**F13, a lost message.** ``BRPOP`` removes a message from its queue; only then does the
consumer record it in the ``unacked`` hash. When Redis goes away between the two, the
record fails, kombu drops the message, and it exists nowhere any more. Here a message
whose record failed is kept in this process (:class:`QoS`) and pushed back onto its
queue by the next channel this process opens, that is when the worker has reconnected.
(With F9's pop below, only :meth:`Channel.basic_get` still records in a second command.)

**F9, a lost message.** The same window with Redis up: a ``BRPOP`` reply cut on its
way (connection cut, container killed) carries a message that is in no queue and not
in ``unacked``. Here the consumer pops with :data:`POP`, one Lua script that records
the message in ``unacked`` and pops it, so Redis holds it in its list or in ``unacked``,
where the visibility-timeout sweep (kombu's ``QoS.restore_visible``) finds it. Redis
cannot block inside a script, so an idle consumer blocks on its queues' bells
(:func:`bell`): :meth:`Channel._put` pushes a token next to each message. A token
carries no message, so losing one costs nothing; and a consumer looks at least every
``brpop_timeout`` seconds anyway (for a message pushed by a client without this
channel, or put back by the sweep, which ring no bell). Both commands are sent and
read on kombu's ``BRPOP`` connection the way kombu sends ``BRPOP``, so the worker's
event loop never waits: with a backlog a consumer sends one ``EVALSHA`` per message
(kombu: ``BRPOP``, then ``ZADD`` and ``HSET`` in a transaction); idle, it alternates
``BRPOP`` on the bells and an ``EVALSHA`` that finds nothing.

**The acknowledgement rides on the next pop.** kombu acknowledges a message with a
transaction of its own (``ZREM`` and ``HDEL`` of its ``unacked`` record) and waits for
the reply. With ``acks_late`` and prefetch 1 (spec F1) the worker's event loop acks a
task after its result is stored, and only then may it fetch the next message: two
round trips in a row between two tasks of a process, the loop blocked in the first.
Here an ack made on the event loop's thread only frees the prefetch slot and waits
(:meth:`Channel.ack_with_next_pop`); the next turn of the loop sends the pop with the
ack in it (:data:`POP` removes the records first), so fetching the next message costs
the round trip it always did and the ack costs none. At the same turn an ack no pop
took (no queue consumed, the prefetch full, a wait on the bells in flight) is sent
alone as kombu sends it (:class:`Poller`), so an ack waits at most one turn. The
record is removed after the result is stored, as before: what ``acks_late`` promises
is unchanged. An ack whose pop was cut (Redis may never have seen it) is sent again by
the next channel this process opens: removing a record twice is harmless, and
otherwise the visibility-timeout sweep would run the finished task a second time.
Acks from other threads, from consumers without an event loop (``drain_events``) and on
a channel Celery has collected after a lost connection (a task that finished after the
loss) are kombu's, unchanged. Celery hands the threads pool's acks to the event loop
too, so they ride as the prefork pool's do.

F12 was seen in the fault suite's Redis restart drill (docs/RELIABILITY.md, scenario
8), F9 there and when containers are killed under load (scenario 16); F13 is a path in
kombu's code, found while reading it for that drill. F12 and F13 are reproduced by
``tests/integration/test_broker_transport.py``, F9 by ``test_broker_window.py``; the
riding ack is tested by ``test_broker_acks.py``.

kombu chooses the channel class through ``Transport.Channel``; :func:`install` sets it
on kombu's Redis transport (not a transport of our own: broker URLs, Flower and the
worker banner keep the plain ``redis://`` scheme), and :mod:`celeryref.celery_app`
installs it, so every process that builds the app has it; kombu's transport builds
its poller by the module's ``MultiChannelPoller`` name, which :func:`install` points
at :class:`Poller`.

Longer than 250 lines: the three fixes and the riding ack override the same kombu
channel, its QoS and its pop; split into modules they would subclass one another's
subclasses, and which override wins would depend on import order.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
from queue import Empty
from time import monotonic, time
from typing import Any, Final, NamedTuple

import redis
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.encoding import bytes_to_str
from kombu.utils.json import dumps, loads

from celeryref.reliability import put_once

logger = logging.getLogger(__name__)

#: KEYS: the lists to pop, in order; one bell per queue; ``unacked``; ``unacked_index``.
#: ARGV: how many lists; the time (seconds) to index the record under; then the
#: delivery tags to acknowledge first (removed from ``unacked`` as kombu's ack does).
#: Returns ``{list, message, recorded}`` (``recorded`` 0: no delivery tag to record it
#: under, handed over as kombu would) or nil; when every list is empty it deletes the
#: bells, since no message waits behind them. The record is written before the pop: a
#: refused write (``OOM`` under ``noeviction``) leaves the message in its list.
POP: Final = """
local n = tonumber(ARGV[1])
local unacked, index = KEYS[#KEYS - 1], KEYS[#KEYS]
for i = 3, #ARGV do
  redis.call('ZREM', index, ARGV[i])
  redis.call('HDEL', unacked, ARGV[i])
end
for i = 1, n do
  local item = redis.call('LINDEX', KEYS[i], -1)
  if item then
    local ok, payload = pcall(cjson.decode, item)
    local props = ok and type(payload) == 'table' and payload['properties']
    local tag = type(props) == 'table' and props['delivery_tag']
    if type(tag) ~= 'string' then
      return {KEYS[i], redis.call('RPOP', KEYS[i]), 0}
    end
    local info = props['delivery_info']
    if type(info) ~= 'table' then info = {} end
    local record = '[' .. item .. ',' .. cjson.encode(info['exchange']) .. ','
      .. cjson.encode(info['routing_key']) .. ']'
    local written = redis.pcall('HSET', unacked, tag, record)
    if type(written) == 'table' and written.err then return written end
    written = redis.pcall('ZADD', index, ARGV[2], tag)
    if type(written) == 'table' and written.err then
      redis.call('HDEL', unacked, tag)
      return written
    end
    return {KEYS[i], redis.call('RPOP', KEYS[i]), 1}
  end
end
for i = n + 1, #KEYS - 2 do redis.call('DEL', KEYS[i]) end
return nil
"""

#: What ``EVALSHA`` calls :data:`POP` by.
POP_SHA: Final = hashlib.sha1(POP.encode()).hexdigest()  # noqa: S324 (Redis's name, not security)

#: The transport option giving how long a publish's id is kept (F25,
#: :func:`celeryref.reliability.put_once.seconds_for`).
PUT_ONCE_OPTION: Final = "put_once_seconds"

#: What a bell's token holds (nothing: a bell only wakes a consumer).
TOKEN: Final = b"1"


def bell(queue: str, sep: str) -> str:
    """The key of ``queue``'s bell: a list of tokens, one per message pushed."""
    return f"{queue}{sep}bell"


class Orphan(NamedTuple):
    """A message popped from its queue that could not be recorded as unacknowledged."""

    pid: int
    payload: dict[str, Any]
    exchange: str
    routing_key: str


_orphans: list[Orphan] = []
_orphans_lock = threading.Lock()


def orphans() -> list[Orphan]:
    """Messages this process holds until it can push them back (a copy)."""
    with _orphans_lock:
        return list(_orphans)


#: Acknowledgements (pid, delivery tag) a lost connection took with it, sent again by
#: the next channel this process opens.
_unsent_acks: list[tuple[int, str]] = []


def _task_id(payload: dict[str, Any]) -> str:
    return str((payload.get("headers") or {}).get("id", "?"))


class QoS(kombu_redis.QoS):
    """kombu's Redis QoS; a delivery it cannot record becomes an orphan, not a loss, and
    one :data:`POP` recorded already is not recorded again."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Delivery tags being delivered that Redis holds in ``unacked`` already.
        self.recorded: set[str] = set()

    def append(self, message: Any, delivery_tag: str) -> None:
        if delivery_tag in self.recorded:
            self.recorded.discard(delivery_tag)
            virtual.QoS.append(self, message, delivery_tag)  # this process's own record
            return
        try:
            super().append(message, delivery_tag)
        except self.channel.connection_errors:
            info = message.delivery_info
            orphan = Orphan(os.getpid(), message._raw, info["exchange"], info["routing_key"])
            with _orphans_lock:
                _orphans.append(orphan)
            logger.warning(
                "broker lost while receiving task %s; it is requeued on reconnect",
                _task_id(orphan.payload),
            )
            raise

    def ack(self, delivery_tag: str) -> None:
        if self.channel.ack_with_next_pop(delivery_tag):
            virtual.QoS.ack(self, delivery_tag)  # the prefetch slot is free now
            return
        super().ack(delivery_tag)


class Poller(kombu_redis.MultiChannelPoller):
    """kombu's poller of a transport's channels; it knows the event loop's thread, and
    sends at each turn of the loop the acknowledgements no pop took."""

    #: The thread of the event loop this poller is registered with (None: none).
    loop_thread: int | None = None

    def on_poll_init(self, poller: Any) -> Any:
        self.loop_thread = threading.get_ident()  # only an event loop calls this
        return super().on_poll_init(poller)

    def on_poll_start(self) -> None:
        super().on_poll_start()  # a channel that pops now takes its acknowledgements
        for channel in self._channels:
            if isinstance(channel, Channel):
                channel.send_acks_left()


class Channel(kombu_redis.Channel):
    """kombu's Redis channel: :class:`QoS`, orphans requeued once connected, and a
    detached transport is a connection error, not a crash."""

    QoS = QoS

    #: The command in flight on the ``BRPOP`` connection: ``EVALSHA`` (the pop) or
    #: ``BRPOP`` (on the bells).
    _sent = "BRPOP"
    #: Whether the next command is the pop (a backlog needs no bell) or the wait.
    _pop_next = True
    #: Whether the next wait is on a key nobody rings: Redis refused the pop (``OOM``).
    _pause_next = False
    #: The lists the pop in flight looks at, and the queue of each.
    _popping: dict[str, str] = {}  # noqa: RUF012 (replaced, never mutated)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        #: Acknowledgements waiting for the next pop, and those the pop in flight carries.
        self._acks: list[str] = []
        self._acks_sent: list[str] = []
        super().__init__(*args, **kwargs)  # connected: it pinged Redis
        self._requeue_orphans()
        with _orphans_lock:
            self._acks += [tag for pid, tag in _unsent_acks if pid == os.getpid()]
            _unsent_acks[:] = [(pid, tag) for pid, tag in _unsent_acks if pid != os.getpid()]
        self.send_acks_left()

    def ack_with_next_pop(self, delivery_tag: str) -> bool:
        """Whether the acknowledgement of ``delivery_tag`` waits for the next pop, which
        carries it to Redis in the same round trip (:data:`POP`): only on the event
        loop's own thread, where the next turn sends either that pop or the ack alone
        (:meth:`Poller.on_poll_start`). Not on a channel whose connection is gone: Celery
        acknowledges a task that finished after a lost connection on the old channel,
        and kombu's ack then fails with a connection error that Celery logs."""
        if self._closing or self.connection is None:
            return False
        if getattr(self.connection.cycle, "loop_thread", None) != threading.get_ident():
            return False
        self._acks.append(delivery_tag)
        return True

    def send_acks_left(self) -> None:
        """Send the acknowledgements no pop took, as kombu sends one (a transaction);
        they wait for the pop in flight instead, whose reply comes at once."""
        if not self._acks or (self._in_poll and self._sent == "EVALSHA"):
            return
        tags, self._acks = self._acks, []
        try:
            with self.conn_or_acquire() as client:
                pipe = client.pipeline()
                for tag in tags:
                    self.qos._remove_from_indices(tag, pipe)
                pipe.execute()
        except self.connection_errors:
            _keep_unsent(tags)
            raise

    def close(self) -> None:
        if not self._closing:
            with contextlib.suppress(*self.connection_errors):  # kept: _keep_unsent
                self.send_acks_left()
        super().close()

    def _requeue_orphans(self) -> None:
        with _orphans_lock:
            # A forked child inherits a copy of the list: only the process that
            # popped a message pushes it back.
            mine = [o for o in _orphans if o.pid == os.getpid()]
            if not mine:
                return
            try:
                with self.conn_or_acquire() as client:
                    pipe = client.pipeline()
                    for orphan in mine:
                        self._do_restore_message(
                            orphan.payload, orphan.exchange, orphan.routing_key, pipe
                        )
                    pipe.execute()
            except self.connection_errors as exc:
                logger.warning("could not requeue %d orphan(s) yet: %s", len(mine), exc)
                return  # kept for the next channel
            _orphans[:] = [o for o in _orphans if o.pid != os.getpid()]
        for orphan in mine:
            logger.warning(
                "requeued task %s, received as the broker was lost", _task_id(orphan.payload)
            )

    def _put(self, queue: str, message: Any, **kwargs: Any) -> None:
        """Push ``message`` and ring ``queue``'s bell, in the same round trip."""
        ring = bell(queue, self.sep)
        expires = self._expires.get(queue)  # milliseconds, for a queue with x-expires
        batch = kwargs.get("_publish_batch")
        if batch is not None:
            super()._put(queue, message, **kwargs)
            batch.add("lpush", ring, TOKEN)
            if expires:
                batch.add("pexpire", ring, expires)
            return
        key = self._q_for_pri(queue, self._get_message_priority(message, reverse=False))
        expiring = ([self._q_for_pri(queue, pri) for pri in self.priority_steps], expires)
        put_id = put_once.put_id(message)  # F25
        with self.conn_or_acquire() as client:
            if put_id is not None:
                keep = int(self.connection.client.transport_options.get(PUT_ONCE_OPTION, 0))
                keep = keep or put_once.seconds_for(20, 5, 1)  # Celery's retries, our timeouts
                lists = (key, ring)
                prefix = self.global_keyprefix
                put_once.push(client, put_id, dumps(message), lists, keep, expiring, prefix)
                return
            with client.pipeline(transaction=False) as pipe:
                pipe.lpush(key, dumps(message)).lpush(ring, TOKEN)
                if expires:
                    for name in expiring[0]:
                        pipe.pexpire(name, expires)
                    pipe.pexpire(ring, expires)
                pipe.execute()

    def _brpop_start(self, timeout: int | None = None) -> None:
        """Send the pop, or the wait on the bells; :meth:`_brpop_read` reads its reply."""
        queues = self._queue_cycle.consume(len(self.active_queues))
        if not queues:
            return
        prefix = self.global_keyprefix
        bells = [prefix + bell(queue, self.sep) for queue in queues]
        if self._pop_next:
            self._popping = {
                prefix + self._q_for_pri(queue, pri): queue
                for pri in self.priority_steps
                for queue in queues
            }
            keys = [*self._popping, *bells, prefix + self.unacked_key]
            keys.append(prefix + self.unacked_index_key)
            args = ["EVALSHA", POP_SHA, len(keys), *keys, len(self._popping), time()]
            args += self._acks  # acknowledged since the last pop: one round trip for both
            self._acks_sent, self._acks = self._acks, []
        else:
            if self._pause_next:
                self._pause_next = False
                bells = [f"{prefix}{self.unacked_key}{self.sep}pause"]
            wait = self.brpop_timeout if timeout is None else timeout
            args = ["BRPOP", *bells, wait or 0]
        self._sent = str(args[0])
        self._in_poll = self.client.connection
        self._brpop_sent_at = monotonic()  # type: ignore[assignment]  # kombu: None
        self.client.connection.send_command(*args)

    def _brpop_read(self, **options: Any) -> bool:
        """Read the reply to :meth:`_brpop_start`'s command; deliver what it popped."""
        try:
            acks, self._acks_sent = self._acks_sent, []
            try:
                reply = self.client.parse_response(self.client.connection, self._sent, **options)
            except self.connection_errors:
                _keep_unsent(acks)  # whether Redis ran them is unknown: sent again
                self.client.connection.disconnect()  # reconnect on the next poll
                raise
            except redis.exceptions.NoScriptError:
                self._acks[:0] = acks  # not run: they go with the next pop
                with self.conn_or_acquire() as client:
                    client.script_load(POP)  # Redis restarted: its script cache is empty
                raise Empty from None
            except self.ResponseError as exc:  # nothing popped; retry after a wait
                self._acks[:0] = acks  # sent alone on the next turn (removing is idempotent)
                logger.warning("Redis refused to hand over a message: %s", exc)
                self._pop_next, self._pause_next = False, True
                raise Empty from None
            if self._sent == "BRPOP":
                self._pop_next = True  # rung, or waited long enough: look
                raise Empty
            if not reply:
                self._pop_next = False
                raise Empty
            key, item, recorded = reply
            self._deliver_popped(self._popping[bytes_to_str(key)], item, bool(recorded))
            return True
        finally:
            self._in_poll = None  # type: ignore[assignment]  # kombu: bool or a connection
            self._flush_brpop_reauth()

    def _deliver_popped(self, queue: str, item: bytes, recorded: bool) -> None:
        self._queue_cycle.rotate(queue)
        payload = loads(bytes_to_str(item))
        if not recorded:
            self.connection._deliver(payload, queue)
            return
        tag = payload["properties"]["delivery_tag"]
        qos: Any = self.qos
        qos.recorded.add(tag)
        try:
            self.connection._deliver(payload, queue)
        finally:
            if tag in qos.recorded:  # not appended: consumed without acks
                qos.recorded.discard(tag)
                qos._remove_from_indices(tag).execute()

    def _connparams(self, asynchronous: bool = False) -> Any:
        if self.connection.client is None:
            raise redis.exceptions.ConnectionError(
                "the broker connection of this channel is already closed"
            )
        return super()._connparams(asynchronous=asynchronous)


def _keep_unsent(tags: list[str]) -> None:
    """Keep acknowledgements a lost connection may have dropped, for the next channel:
    removing a record twice is harmless, running its task twice is not."""
    with _orphans_lock:
        _unsent_acks.extend((os.getpid(), tag) for tag in tags)


def install() -> None:
    """Make kombu's Redis transport open :class:`Channel` and poll with :class:`Poller`
    (idempotent)."""
    kombu_redis.Transport.Channel = Channel
    # Transport() builds its poller by this module-level name.
    kombu_redis.MultiChannelPoller = Poller  # type: ignore[misc]
