"""The image pipeline: download -> resize -> upload per URL, then ONE notification.

::

    chord([download_image.s(url) | resize_image.s(w, h) | upload_image.s() for url in urls],
          notify_images.s(recipients))

Steps hand each other blob keys (:mod:`celeryref.adapters.blobs`), never image bytes.
"Upload" writes the file under the images directory (a volume in compose).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from celery import chain, chord
from celery.canvas import Signature

from celeryref.adapters import blobs
from celeryref.adapters.http import check_url, request
from celeryref.celery_app import app
from celeryref.domain import imaging
from celeryref.errors import InvalidArguments
from celeryref.settings import settings
from celeryref.tasks.cpu_intensive.images import resize_image
from celeryref.tasks.io_intensive import NETWORK_POLICY, call_timeouts
from celeryref.tasks.io_intensive.email import deliver

#: Most URLs of one pipeline.
MAX_URLS = 100


def upload_dir() -> Path:
    """Where uploaded images go (``IMAGE_DIR``, a volume in compose)."""
    return Path(settings.image_dir)


@app.task(retry_policy=NETWORK_POLICY)
def download_image(url: str) -> dict[str, Any]:
    """GET ``url`` (a JPEG or PNG image, at most 8 MiB); store it as a blob. The header
    is checked here (format, decompression bomb) so a bad URL fails before any resize."""
    answer = request("GET", url, timeout=call_timeouts(), max_bytes=blobs.MAX_BLOB_BYTES)
    data = answer.body
    if answer.truncated:
        raise InvalidArguments(f"{url}: larger than {blobs.MAX_BLOB_BYTES} bytes")
    try:
        image = imaging.probe(data)
    except InvalidArguments as exc:
        raise InvalidArguments(f"{url}: {exc}") from exc
    return {
        "url": url,
        "blob": blobs.put(data),
        "format": image.format,
        "width": image.width,
        "height": image.height,
    }


@app.task
def upload_image(resized: dict[str, Any]) -> dict[str, Any]:
    """Write the resized blob to the images directory (atomically); its path."""
    data = blobs.get(resized["blob"])
    folder = upload_dir()
    folder.mkdir(parents=True, exist_ok=True)
    suffix = imaging.SUFFIXES[resized["format"]]
    path = folder / f"{resized['blob'][:16]}-{resized['width']}x{resized['height']}.{suffix}"
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, path)
    return {
        "url": resized["url"],
        "path": str(path),
        "width": resized["width"],
        "height": resized["height"],
        "bytes": len(data),
    }


@app.task(bind=True, retry_policy=NETWORK_POLICY)
def notify_images(
    self: Any, results: list[dict[str, Any]], recipients: list[str] | None = None
) -> dict[str, Any]:
    """ONE e-mail listing every processed image (the chord body)."""
    to = recipients or list(settings.alerts.recipients)
    if not to:
        return {"sent": False, "images": len(results), "reason": "no recipients"}
    lines = [f"{r['url']} -> {r['path']} ({r['width']}x{r['height']})" for r in results]
    subject = f"{len(results)} images processed"
    sent = deliver(str(self.request.id), to, subject, "\n".join(lines) + "\n")
    return {**sent, "images": len(results)}


def image_pipeline(
    urls: list[str], max_width: int, max_height: int, recipients: list[str] | None = None
) -> Signature:
    """The pipeline as one chord: a chain per URL, then one :func:`notify_images`."""
    if not isinstance(urls, list) or not 0 < len(urls) <= MAX_URLS:
        raise InvalidArguments(f"urls must be a list of 1..{MAX_URLS} URLs")
    per_url = [
        chain(
            download_image.s(check_url(url)),
            resize_image.s(max_width, max_height),
            upload_image.s(),
        )
        for url in urls
    ]
    return chord(per_url, notify_images.s(recipients))


@app.task(bind=True)
def process_images(
    self: Any,
    urls: list[str],
    max_width: int = 128,
    max_height: int = 128,
    recipients: list[str] | None = None,
) -> Any:
    """Run :func:`image_pipeline`; the caller's result is the notification's."""
    return self.replace(image_pipeline(urls, max_width, max_height, recipients))
