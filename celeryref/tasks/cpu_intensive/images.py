"""The image pipeline's resize step (CPU-bound, so on ``cpu_intensive``)."""

from __future__ import annotations

from typing import Any

from celeryref.adapters import blobs
from celeryref.celery_app import app
from celeryref.domain import imaging
from celeryref.errors import InvalidArguments


def _side(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= imaging.MAX_SIDE:
        raise InvalidArguments(f"{name} must be an integer in 1..{imaging.MAX_SIDE}")
    return value


@app.task
def resize_image(downloaded: dict[str, Any], max_width: int, max_height: int) -> dict[str, Any]:
    """Fit the downloaded image (a blob) into ``max_width x max_height``; a new blob."""
    image = imaging.parse(blobs.get(downloaded["blob"]))
    size = imaging.fit(
        image.width, image.height, _side(max_width, "max_width"), _side(max_height, "max_height")
    )
    resized = imaging.resize(image, *size)
    return {
        "url": downloaded["url"],
        "blob": blobs.put(imaging.encode(resized)),
        "width": resized.width,
        "height": resized.height,
        "original": [image.width, image.height],
    }
