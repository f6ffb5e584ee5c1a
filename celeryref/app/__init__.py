"""Celery wiring: configuration, task discovery, the beat schedule, the single beat, worker
signals.
"""
