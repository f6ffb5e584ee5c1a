"""Celery reference deployment: one image, one worker service per workload queue."""
