"""Task modules, one per queue: ``celeryref.tasks.<queue>`` is routed to ``<queue>``.

Tasks are thin: they fetch, call a plain function, store. The plain functions live
beside them (or in ``celeryref.domain``) and are unit-tested without a broker.
"""
