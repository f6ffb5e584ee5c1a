"""The exceptions tasks raise, and what the worker does with each.

::

    TaskError                   base of every error this package raises on purpose
     +-- TransientError         may succeed if tried again later: retried with backoff
     |    +-- UpstreamUnavailable   a dependency timed out, refused, or answered 5xx
     +-- PermanentError         will fail the same way every time: never retried
          +-- BadRequestUpstream    a dependency answered 4xx to what we sent
          +-- InvalidArguments      the task was called with arguments it cannot use
"""

from __future__ import annotations


class TaskError(Exception):
    """Base of every error this package raises on purpose."""


class TransientError(TaskError):
    """A failure that may go away by itself; the task is retried with backoff."""


class UpstreamUnavailable(TransientError):
    """A dependency timed out, refused the connection, or answered with a 5xx."""


class PermanentError(TaskError):
    """A failure that repeats on every attempt; the task is not retried."""


class BadRequestUpstream(PermanentError):
    """A dependency refused our request (HTTP 4xx): sending it again cannot help."""


class InvalidArguments(PermanentError):
    """The task's arguments are unusable (wrong type, out of range, missing)."""
