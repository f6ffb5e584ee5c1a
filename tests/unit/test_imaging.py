"""The image pipeline's pure step: real PNG and JPEG in and out, and what it refuses."""

from __future__ import annotations

import io
import os
import struct
import zlib

import pytest
from PIL import ExifTags, Image

from celeryref.domain import imaging
from celeryref.errors import InvalidArguments


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def gradient(width: int, height: int, mode: str = "RGB") -> Image.Image:
    """A smooth picture (so JPEG keeps it close) of ``width x height``."""
    image = Image.linear_gradient("L").resize((width, height))
    return Image.merge("RGB", (image, image.transpose(Image.Transpose.FLIP_LEFT_RIGHT), image))


def noise(width: int, height: int) -> Image.Image:
    """Random pixels: nothing compresses them."""
    return Image.frombytes("RGB", (width, height), os.urandom(width * height * 3))


def decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def png_claiming(width: int, height: int) -> bytes:
    """A 1x1 PNG whose header says ``width x height`` (valid CRC): a decompression bomb
    as far as the header goes, a few bytes on the wire."""
    data = bytearray(encode(Image.new("L", (1, 1)), "PNG"))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def test_fit_keeps_the_aspect_ratio_and_never_enlarges() -> None:
    """40x20 into 10x10 is 10x5; into 100x100 it stays 40x20."""
    assert imaging.fit(40, 20, 10, 10) == (10, 5)
    assert imaging.fit(20, 40, 10, 10) == (5, 10)
    assert imaging.fit(40, 20, 100, 100) == (40, 20)
    assert imaging.fit(1000, 1, 10, 10) == (10, 1)


def test_a_png_is_resized_into_a_png_with_its_aspect_ratio() -> None:
    """A 64x32 PNG fitted into 16x16 is a 16x8 PNG; a solid colour stays that colour."""
    resized = imaging.resize(encode(gradient(64, 32), "PNG"), 16, 16)
    assert (resized.format, resized.suffix, resized.width, resized.height) == (
        "PNG",
        "png",
        16,
        8,
    )
    assert resized.original == (64, 32)
    out = decoded(resized.data)
    assert (out.format, out.size, out.mode) == ("PNG", (16, 8), "RGB")

    solid = imaging.resize(encode(Image.new("RGB", (30, 90), (200, 40, 10)), "PNG"), 10, 10)
    assert (solid.width, solid.height) == (3, 10)
    assert decoded(solid.data).getcolors() == [(3 * 10, (200, 40, 10))]


def test_a_jpeg_is_resized_into_a_jpeg_and_large_ones_are_drafted() -> None:
    """A 2000x1000 JPEG (decoded at a reduced scale) fitted into 100x100 is a 100x50
    JPEG whose colours are still the original's."""
    source = Image.new("RGB", (2000, 1000), (30, 120, 220))
    resized = imaging.resize(encode(source, "JPEG", quality=95), 100, 100)
    assert (resized.format, resized.suffix, resized.width, resized.height) == (
        "JPEG",
        "jpg",
        100,
        50,
    )
    out = decoded(resized.data)
    assert (out.format, out.size) == ("JPEG", (100, 50))
    pixel = out.getpixel((50, 25))
    assert isinstance(pixel, tuple)
    assert all(abs(a - b) <= 4 for a, b in zip(pixel, (30, 120, 220), strict=True))


def test_a_small_image_is_not_enlarged_and_greyscale_stays_greyscale() -> None:
    """An 8x8 greyscale JPEG in a 100x100 box stays 8x8 and greyscale."""
    resized = imaging.resize(encode(Image.new("L", (8, 8), 90), "JPEG"), 100, 100)
    assert (resized.width, resized.height) == (8, 8)
    assert decoded(resized.data).mode == "L"


def test_transparency_survives_and_palettes_are_expanded() -> None:
    """An RGBA PNG keeps its alpha; a palette PNG with a transparent colour becomes RGBA."""
    rgba = Image.new("RGBA", (20, 20), (255, 0, 0, 0))
    assert decoded(imaging.resize(encode(rgba, "PNG"), 10, 10).data).mode == "RGBA"

    palette = Image.new("P", (20, 20), 0)
    palette.putpalette([0, 0, 0, 255, 255, 255])
    palette.info["transparency"] = 0
    out = decoded(imaging.resize(encode(palette, "PNG", transparency=0), 10, 10).data)
    assert out.mode == "RGBA" and out.getpixel((5, 5)) == (0, 0, 0, 0)


def test_exif_orientation_is_applied_and_metadata_dropped() -> None:
    """A 40x20 JPEG tagged 'rotate 90' is 20x40 upright; fitted into 10x10 it is 5x10,
    and the output carries no EXIF (no GPS leaks into a thumbnail)."""
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    exif[ExifTags.Base.Make] = "Camera"
    resized = imaging.resize(encode(gradient(40, 20), "JPEG", exif=exif), 10, 10)
    assert resized.original == (20, 40)
    assert (resized.width, resized.height) == (5, 10)
    assert not decoded(resized.data).getexif()


def test_probe_reads_the_header_only() -> None:
    """Format and size of a PNG and a JPEG."""
    assert imaging.probe(encode(gradient(7, 3), "PNG")) == imaging.Probe("PNG", 7, 3)
    assert imaging.probe(encode(gradient(7, 3), "JPEG")) == imaging.Probe("JPEG", 7, 3)


def test_a_multi_picture_jpeg_is_a_jpeg() -> None:
    """A camera's multi-picture JPEG (Pillow: "MPO") is read and written as a JPEG."""
    picture = gradient(40, 20)
    data = encode(picture, "MPO", save_all=True, append_images=[picture])
    assert imaging.probe(data).format == "JPEG"
    resized = imaging.resize(data, 10, 10)
    assert (resized.format, resized.suffix, resized.width, resized.height) == ("JPEG", "jpg", 10, 5)


@pytest.mark.parametrize("check", [imaging.probe, lambda data: imaging.resize(data, 10, 10)])
def test_a_decompression_bomb_is_refused_before_decoding(check: object) -> None:
    """A 100-byte PNG claiming 20000x20000 pixels (Pillow's DecompressionBombError) or
    6000x6000 (over our limit, under Pillow's error) is refused, never decoded."""
    assert callable(check)
    assert Image.MAX_IMAGE_PIXELS == imaging.MAX_PIXELS
    with pytest.raises(InvalidArguments, match=f"over {imaging.MAX_PIXELS} pixels"):
        check(png_claiming(20_000, 20_000))
    with (
        pytest.warns(Image.DecompressionBombWarning),
        pytest.raises(InvalidArguments, match=f"over {imaging.MAX_PIXELS} pixels: 36000000"),
    ):
        check(png_claiming(6_000, 6_000))


@pytest.mark.filterwarnings("error::PIL.Image.DecompressionBombWarning")
def test_a_bomb_is_refused_when_warnings_are_errors() -> None:
    """Under ``-W error`` Pillow raises its warning; that is a refusal too."""
    with pytest.raises(InvalidArguments, match="could be decompression bomb"):
        imaging.probe(png_claiming(6_000, 6_000))


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "not a JPEG or PNG image"),
        (b"\x89PNG\r\n\x1a\n....", "not a JPEG or PNG image"),
        (os.urandom(512), "not a JPEG or PNG image"),
        (encode(gradient(8, 8), "GIF"), "not a JPEG or PNG image"),
        (encode(gradient(8, 8), "PPM"), "not a JPEG or PNG image"),
        (encode(noise(64, 64), "PNG")[:2000], "corrupt or truncated image"),
        (encode(noise(64, 64), "JPEG")[:2000], "corrupt or truncated image"),
    ],
    ids=["empty", "png-signature-only", "random", "gif", "ppm", "truncated-png", "cut-jpeg"],
)
def test_garbage_and_other_formats_are_refused(data: bytes, reason: str) -> None:
    """Anything but a whole JPEG or PNG is a permanent error that says why."""
    with pytest.raises(InvalidArguments, match=reason):
        imaging.resize(data, 10, 10)


def test_an_output_over_the_cap_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """Noise does not compress: a 64x64 noise PNG (12 KiB) is over a 4 KiB output cap."""
    monkeypatch.setattr(imaging, "MAX_OUTPUT_BYTES", 4096)
    with pytest.raises(InvalidArguments, match="over 4096: ask for a smaller box"):
        imaging.resize(encode(noise(64, 64), "PNG"), 64, 64)


@pytest.mark.parametrize("side", [0, -1, imaging.MAX_SIDE + 1, True, "10", 1.5])
def test_a_bad_box_is_refused(side: object) -> None:
    """Each side of the box is an integer in 1..MAX_SIDE."""
    data = encode(gradient(8, 8), "PNG")
    with pytest.raises(InvalidArguments, match="max_width must be an integer"):
        imaging.resize(data, side, 10)  # type: ignore[arg-type]
    with pytest.raises(InvalidArguments, match="max_height must be an integer"):
        imaging.resize(data, 10, side)  # type: ignore[arg-type]
