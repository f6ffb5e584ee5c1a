"""Binary PGM/PPM images (P5 grey, P6 RGB, 8-bit): parse, resize, encode. Pure Python.

Enough for the image pipeline's resize step without an imaging library; a product
would swap in Pillow here and nowhere else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from celeryref.errors import InvalidArguments

#: Channels per pixel of each format.
CHANNELS = {b"P5": 1, b"P6": 3}
#: Largest width or height accepted (pixels).
MAX_SIDE = 4_096

_TOKEN = re.compile(rb"(?:\s|#[^\n]*\n)*([^\s#]+)")


@dataclass(frozen=True)
class Image:
    width: int
    height: int
    channels: int
    #: Row-major samples, ``channels`` bytes per pixel.
    pixels: bytes

    @property
    def kind(self) -> bytes:
        return b"P5" if self.channels == 1 else b"P6"


def parse(data: bytes) -> Image:
    """Decode a binary PGM/PPM; ``InvalidArguments`` for anything else."""
    if data[:2] not in CHANNELS:
        raise InvalidArguments("not a binary PGM/PPM image (P5/P6)")
    tokens: list[bytes] = []
    pos = 0
    while len(tokens) < 4:
        match = _TOKEN.match(data, pos)
        if match is None:
            raise InvalidArguments("not a PGM/PPM image: truncated header")
        tokens.append(match.group(1))
        pos = match.end()
    magic, *numbers = tokens
    if magic not in CHANNELS or not all(n.isdigit() for n in numbers):
        raise InvalidArguments("not a binary PGM/PPM image (P5/P6)")
    width, height, maxval = (int(n) for n in numbers)
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE and 0 < maxval <= 255):
        raise InvalidArguments(f"unsupported image {width}x{height}, maxval {maxval}")
    channels = CHANNELS[magic]
    pixels = data[pos + 1 : pos + 1 + width * height * channels]  # one whitespace byte
    if len(pixels) != width * height * channels:
        raise InvalidArguments("not a PGM/PPM image: truncated pixel data")
    return Image(width, height, channels, pixels)


def encode(image: Image) -> bytes:
    header = b"%s\n%d %d\n255\n" % (image.kind, image.width, image.height)
    return header + image.pixels


def fit(width: int, height: int, max_width: int, max_height: int) -> tuple[int, int]:
    """The largest size within ``max_width x max_height`` with the same aspect ratio
    (never larger than the original)."""
    scale = min(max_width / width, max_height / height, 1.0)
    return max(1, round(width * scale)), max(1, round(height * scale))


def resize(image: Image, width: int, height: int) -> Image:
    """Nearest-neighbour resample to ``width x height``."""
    c = image.channels
    row_bytes = image.width * c
    columns = [(x * image.width // width) * c for x in range(width)]
    out = bytearray()
    for y in range(height):
        start = (y * image.height // height) * row_bytes
        row = image.pixels[start : start + row_bytes]
        for sx in columns:
            out += row[sx : sx + c]
    return Image(width, height, c, bytes(out))
