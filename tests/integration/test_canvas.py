"""Canvas primitives and the image pipeline across a real broker and result backend."""

from __future__ import annotations

import http.server
import io
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from PIL import Image

from celeryref.client import canvas as canvas_demo
from celeryref.errors import InvalidArguments
from celeryref.reliability.dead_letters import store as dead_letters
from celeryref.tasks.io_intensive import images
from tests.conftest import wait_for
from tests.integration import wf_support
from tests.integration.wf_support import WORK_QUEUES, Sink, mails_to
from tests.unit.test_imaging import png_claiming

domain_tables = wf_support.domain_tables
smtp_sink = wf_support.smtp_sink
start_sink = wf_support.start_sink

TIMEOUT = 30


def test_chain_feeds_each_result_to_the_next(worker: Any) -> None:
    """add(2, 3) | multiply(4) | square -> 400."""
    with worker(*WORK_QUEUES, pool="threads", concurrency=4):
        assert canvas_demo.chain_demo(2, 3, 4).apply_async().get(timeout=TIMEOUT) == 400


def test_group_returns_results_in_order(worker: Any) -> None:
    """A group of squares returns the list in the order of its tasks."""
    with worker(*WORK_QUEUES, pool="threads", concurrency=4):
        assert canvas_demo.group_demo([1, 2, 3, 4]).apply_async().get(timeout=TIMEOUT) == [
            1,
            4,
            9,
            16,
        ]


def test_chord_reduces_the_group_once(worker: Any) -> None:
    """Sum of squares 0..9 = 285, computed by one xsum over ten parallel squares."""
    with worker(*WORK_QUEUES, pool="threads", concurrency=4):
        assert canvas_demo.chord_demo(range(10)).apply_async().get(timeout=TIMEOUT) == 285


def test_chunks_batch_calls_into_few_messages(worker: Any) -> None:
    """Ten additions in chunks of three: four messages, results grouped per chunk."""
    pairs = [(i, i) for i in range(10)]
    with worker(*WORK_QUEUES, pool="threads", concurrency=4):
        result = canvas_demo.chunks_demo(pairs, 3).apply_async()
        assert result.get(timeout=TIMEOUT) == [[0, 2, 4], [6, 8, 10], [12, 14, 16], [18]]
    assert len(result.results) == 4


def test_map_and_starmap_run_many_calls_in_one_message(worker: Any) -> None:
    """map(square) and starmap(add) return one list each."""
    with worker(*WORK_QUEUES, pool="threads", concurrency=4):
        assert canvas_demo.map_demo([1, 2, 3]).apply_async().get(timeout=TIMEOUT) == [1, 4, 9]
        assert canvas_demo.starmap_demo([(1, 2), (3, 4)]).apply_async().get(timeout=TIMEOUT) == [
            3,
            7,
        ]


def test_map_reduce_over_chunks(worker: Any) -> None:
    """Sum of squares 0..99 = 328350: ten mapped chunks, each reduced, then reduced again."""
    with worker(*WORK_QUEUES, pool="threads", concurrency=4):
        work = canvas_demo.map_reduce_demo(list(range(100)), 10)
        assert work.apply_async().get(timeout=TIMEOUT) == 328_350


def picture(width: int, height: int, fmt: str) -> bytes:
    """A ``width x height`` gradient encoded as ``fmt`` (PNG or JPEG)."""
    image = Image.linear_gradient("L").resize((width, height)).convert("RGB")
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


class ImageHandler(http.server.BaseHTTPRequestHandler):
    images: ClassVar[dict[str, bytes]] = {}

    def do_GET(self) -> None:
        body = self.images.get(self.path)
        self.send_response(200 if body else 404)
        self.send_header(
            "Content-Type", "image/jpeg" if self.path.endswith(".jpg") else "image/png"
        )
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def image_server() -> Iterator[str]:
    """Serves /a.png (64x32), /b.jpg (20x40), /c.png (8x8), and two refusals:
    /bomb.png (a header claiming 20000x20000) and /junk.png (not an image), on 127.0.0.1."""
    ImageHandler.images = {
        "/a.png": picture(64, 32, "PNG"),
        "/b.jpg": picture(20, 40, "JPEG"),
        "/c.png": picture(8, 8, "PNG"),
        "/bomb.png": png_claiming(20_000, 20_000),
        "/junk.png": b"<html>not an image</html>",
    }
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ImageHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_image_pipeline_resizes_uploads_and_notifies_once(
    worker: Any, domain_tables: None, smtp_sink: Sink, image_server: str
) -> None:
    """A PNG, a JPEG and a small PNG: each is downloaded, fitted into 16x16 in its own
    format and written to the images directory; then exactly ONE e-mail lists all three."""
    urls = [f"{image_server}/{name}" for name in ("a.png", "b.jpg", "c.png")]
    with worker(*WORK_QUEUES, pool="threads", concurrency=4):
        result = images.process_images.delay(urls, 16, 16, ["art@example.com"])
        summary = result.get(timeout=TIMEOUT)
        [mail] = wait_for(mails_to(smtp_sink, "art@example.com"), 20, "the pipeline mail")

    assert summary["sent"] is True and summary["images"] == 3
    assert mail["subject"] == "3 images processed"
    written = {}
    for line in mail["body"].splitlines():
        url, _, rest = line.partition(" -> ")
        path = Path(rest.split(" (")[0])
        with Image.open(path) as image:
            written[url.rsplit("/", 1)[1]] = (image.format, image.size, path.suffix)
    assert written == {
        "a.png": ("PNG", (16, 8), ".png"),
        "b.jpg": ("JPEG", (8, 16), ".jpg"),
        "c.png": ("PNG", (8, 8), ".png"),
    }
    assert len(smtp_sink.messages()) == 1


@pytest.mark.parametrize(
    ("name", "reason"),
    [("bomb.png", "over 25000000 pixels"), ("junk.png", "not a JPEG or PNG image")],
)
def test_an_image_that_is_a_bomb_or_junk_fails_at_once_and_is_dead_lettered(
    worker: Any, image_server: str, name: str, reason: str
) -> None:
    """The download refuses it from its header (InvalidArguments): no retry, no resize,
    a dead letter that names the URL and the reason."""
    url = f"{image_server}/{name}"
    with worker(*WORK_QUEUES, pool="threads", concurrency=2):
        result = images.download_image.delay(url)
        with pytest.raises(InvalidArguments, match=reason):
            result.get(timeout=TIMEOUT)
    (entry,) = dead_letters.list_entries()
    assert (entry.task_id, entry.retries, entry.exception_type) == (
        result.id,
        0,
        "InvalidArguments",
    )
    assert url in entry.exception and reason in entry.exception
