"""The image pipeline's resize step (CPU-bound, so on ``cpu_intensive``)."""

from __future__ import annotations

from typing import Any

from celeryref.adapters import blobs
from celeryref.celery_app import app
from celeryref.domain import imaging


@app.task
def resize_image(downloaded: dict[str, Any], max_width: int, max_height: int) -> dict[str, Any]:
    """Fit the downloaded image (a blob) into ``max_width x max_height``; a new blob
    in the same format (:func:`celeryref.domain.imaging.resize`)."""
    resized = imaging.resize(blobs.get(downloaded["blob"]), max_width, max_height)
    return {
        "url": downloaded["url"],
        "blob": blobs.put(resized.data),
        "format": resized.format,
        "width": resized.width,
        "height": resized.height,
        "original": list(resized.original),
    }
