"""Canvas primitives and the image pipeline across a real broker and result backend."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from celeryref.domain import imaging
from celeryref.tasks.default import canvas_demo
from celeryref.tasks.io_intensive import images
from tests.conftest import wait_for
from tests.integration import wf_support
from tests.integration.wf_support import WORK_QUEUES, Sink, mails_to

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


def ppm(width: int, height: int, shade: int) -> bytes:
    pixels = bytes((shade + x + y) % 256 for y in range(height) for x in range(width * 3))
    return b"P6\n%d %d\n255\n" % (width, height) + pixels


class ImageHandler(http.server.BaseHTTPRequestHandler):
    images: ClassVar[dict[str, bytes]] = {}

    def do_GET(self) -> None:
        body = self.images.get(self.path)
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", "image/x-portable-pixmap")
        self.end_headers()
        self.wfile.write(body or b"")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def image_server() -> Iterator[str]:
    """Serves /a.ppm (64x32), /b.ppm (20x40) and /c.ppm (8x8) on 127.0.0.1."""
    ImageHandler.images = {
        "/a.ppm": ppm(64, 32, 1),
        "/b.ppm": ppm(20, 40, 2),
        "/c.ppm": ppm(8, 8, 3),
    }
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ImageHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_image_pipeline_resizes_uploads_and_notifies_once(
    worker: Any, domain_tables: None, smtp_sink: Sink, image_server: str
) -> None:
    """Three URLs: each is downloaded, fitted into 16x16 and written to the images
    directory; then exactly ONE e-mail lists all three."""
    urls = [f"{image_server}/{name}.ppm" for name in ("a", "b", "c")]
    with worker(*WORK_QUEUES, pool="threads", concurrency=4):
        result = images.process_images.delay(urls, 16, 16, ["art@example.com"])
        summary = result.get(timeout=TIMEOUT)
        [mail] = wait_for(mails_to(smtp_sink, "art@example.com"), 20, "the pipeline mail")

    assert summary["sent"] is True and summary["images"] == 3
    assert mail["subject"] == "3 images processed"
    sizes = {}
    for line in mail["body"].splitlines():
        url, _, rest = line.partition(" -> ")
        image = imaging.parse(Path(rest.split(" (")[0]).read_bytes())
        sizes[url.rsplit("/", 1)[1]] = (image.width, image.height)
    assert sizes == {"a.ppm": (16, 8), "b.ppm": (8, 16), "c.ppm": (8, 8)}
    assert len(smtp_sink.messages()) == 1
