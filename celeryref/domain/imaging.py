"""Images for the image pipeline: check, fit into a box, re-encode (Pillow). Bytes in, bytes out.

Why Pillow: the pipeline must take the images people have (JPEG, PNG), resample them
properly (Lanczos, not nearest-neighbour) and survive hostile input; Pillow's decoders
are maintained against exactly that, a hand-written parser is not. Nothing else in the
package imports Pillow: the tasks call :func:`probe` and :func:`resize` with bytes.

Limits. Every refusal is :class:`InvalidArguments` (permanent: never retried, dead-lettered)
and its message says which limit:

- input formats: :data:`FORMATS` only; Pillow never tries another decoder (of an
  animated PNG or a multi-picture JPEG, the first picture); input bytes are capped
  before this module by the download (``blobs.MAX_BLOB_BYTES``, 8 MiB);
- input size: at most :data:`MAX_PIXELS` pixels, judged from the header before any pixel
  is decoded (a small file that decodes to gigabytes is a decompression bomb).
  ``PIL.Image.MAX_IMAGE_PIXELS`` is set to the same number in every process that imports
  this module, so Pillow's own guard agrees: it warns (a log line) between one and two
  times the limit and raises ``DecompressionBombError`` above; both, and the warning when
  warnings are errors, are refused the same way;
- corrupt, truncated or unidentifiable data: refused with Pillow's reason;
- box: each side 1..:data:`MAX_SIDE`; the aspect ratio is kept and an image is never
  enlarged;
- output: the input's format (:data:`SUFFIXES`), EXIF orientation applied, EXIF and
  other metadata dropped (no GPS leaks into thumbnails), at most
  :data:`MAX_OUTPUT_BYTES`.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from celeryref.errors import InvalidArguments

#: Formats accepted (Pillow names); the output has the input's format.
FORMATS = ("JPEG", "PNG")
#: File suffix of each format.
SUFFIXES = {"JPEG": "jpg", "PNG": "png"}
#: Most pixels (width x height) of an input image: 25 MP, about 100 MB decoded as RGBA.
MAX_PIXELS = 25_000_000
#: Largest width or height of the box an image is fitted into (pixels).
MAX_SIDE = 4_096
#: Largest encoded output (bytes); a bigger result asks for a smaller box.
MAX_OUTPUT_BYTES = 4 * 1024 * 1024
#: JPEG output quality (Pillow's 1..95 scale).
JPEG_QUALITY = 85
#: ``Image.resize(reducing_gap=...)``: shrink by an integer factor first while the image
#: is over this many times the target, then Lanczos (fast, and indistinguishable from
#: Lanczos alone at 3.0). Also how much larger than the target a JPEG is drafted.
REDUCING_GAP = 3.0

Image.MAX_IMAGE_PIXELS = MAX_PIXELS

#: What Pillow raises on corrupt or truncated data (besides ``OSError``, which covers
#: ``UnidentifiedImageError`` and "image file is truncated").
_CORRUPT = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error)
#: EXIF orientations that swap width and height (rotations by 90 or 270 degrees).
_TRANSPOSED = {5, 6, 7, 8}


@dataclass(frozen=True)
class Probe:
    """What the header says: format and size, no pixel decoded."""

    format: str
    width: int
    height: int


@dataclass(frozen=True)
class Resized:
    data: bytes
    #: One of :data:`FORMATS`, the input's.
    format: str
    width: int
    height: int
    #: Width and height of the input, upright (after EXIF orientation).
    original: tuple[int, int]

    @property
    def suffix(self) -> str:
        return SUFFIXES[self.format]


@contextmanager
def _opened(data: bytes) -> Iterator[Image.Image]:
    """The image in ``data``, refused (``InvalidArguments``) when it is not one of
    :data:`FORMATS`, is a bomb or is corrupt, here or while the caller decodes it."""
    try:
        with Image.open(io.BytesIO(data), formats=FORMATS) as image:
            pixels = image.width * image.height
            if pixels > MAX_PIXELS:
                raise _too_many(pixels)
            yield image
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidArguments(f"image refused, over {MAX_PIXELS} pixels: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise InvalidArguments(f"not a {' or '.join(FORMATS)} image") from exc
    except _CORRUPT as exc:
        raise InvalidArguments(f"corrupt or truncated image: {exc}") from exc


def _too_many(pixels: int) -> InvalidArguments:
    return InvalidArguments(f"image refused, over {MAX_PIXELS} pixels: {pixels} pixels")


def probe(data: bytes) -> Probe:
    """Format and size from the header; ``InvalidArguments`` for anything refused."""
    with _opened(data) as image:
        return Probe(_format(image), image.width, image.height)


def fit(width: int, height: int, max_width: int, max_height: int) -> tuple[int, int]:
    """The largest size within ``max_width x max_height`` with the same aspect ratio
    (never larger than the original)."""
    scale = min(max_width / width, max_height / height, 1.0)
    return max(1, round(width * scale)), max(1, round(height * scale))


def check_side(value: object, name: str) -> int:
    """``value`` as a box side (1..:data:`MAX_SIDE`); ``InvalidArguments`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_SIDE:
        raise InvalidArguments(f"{name} must be an integer in 1..{MAX_SIDE}")
    return value


def resize(data: bytes, max_width: int, max_height: int) -> Resized:
    """Fit the JPEG or PNG ``data`` into ``max_width x max_height`` (Lanczos, aspect
    ratio kept, upright), re-encoded in its own format without metadata."""
    box = check_side(max_width, "max_width"), check_side(max_height, "max_height")
    with _opened(data) as image:
        fmt = _format(image)
        turned = image.getexif().get(ExifTags.Base.Orientation) in _TRANSPOSED
        stored = image.size
        upright = (stored[1], stored[0]) if turned else stored
        size = fit(*upright, *box)
        if fmt == "JPEG":  # decode at 1/2, 1/4 or 1/8 scale when that is still large enough
            draft = (size[1], size[0]) if turned else size
            image.draft(None, (int(draft[0] * REDUCING_GAP), int(draft[1] * REDUCING_GAP)))
        image.load()
        picture = ImageOps.exif_transpose(image)
        picture = _for_output(picture, fmt)
        if picture.size != size:
            picture = picture.resize(size, Image.Resampling.LANCZOS, reducing_gap=REDUCING_GAP)
        out = io.BytesIO()
        if fmt == "JPEG":
            picture.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)
        else:
            picture.save(out, "PNG", optimize=False)
    encoded = out.getvalue()
    if len(encoded) > MAX_OUTPUT_BYTES:
        raise InvalidArguments(
            f"resized image is {len(encoded)} bytes, over {MAX_OUTPUT_BYTES}: ask for a smaller box"
        )
    return Resized(encoded, fmt, picture.width, picture.height, upright)


def _format(image: Image.Image) -> str:
    """One of :data:`FORMATS`: Pillow calls a JPEG with a second picture (a camera's
    multi-picture JPEG) "MPO"; only its first picture is read."""
    return "JPEG" if image.format == "MPO" else str(image.format)


def _for_output(image: Image.Image, fmt: str) -> Image.Image:
    """``image`` in a mode Lanczos resamples and ``fmt`` stores: L or RGB for JPEG;
    L, LA, RGB or RGBA for PNG (palette and 1-bit images are expanded, alpha kept)."""
    if fmt == "JPEG":
        return image if image.mode in ("L", "RGB") else image.convert("RGB")
    if image.mode in ("L", "LA", "RGB", "RGBA"):
        return image
    return image.convert("RGBA" if image.has_transparency_data else "RGB")
