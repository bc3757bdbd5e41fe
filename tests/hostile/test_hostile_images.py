"""One checked image decoder for every path (zip uploads, the Explain page's upload via dlcore.inspect):
hostile bytes are a DataError with a readable message naming the file — never a Python repr, never a
traceback, never a decode of more pixels than DLE_MAX_IMAGE_PIXELS — and unusual but legitimate images
(16-bit, float with negative values, palette, transparency) convert without wrapping around."""
from __future__ import annotations

import ast
import io
import resource
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from hostile_files import good_images, make_zip, png, png_header_only
from PIL import Image

import dlcore
from dlcore import DataError
from dlcore.data.images import decode_image, peek_image
from dlcore.inspect import image_from_bytes

ROOT = Path(__file__).resolve().parents[2]
INFO = dlcore.DatasetInfo("digits", "Digits", "", "image-classification", "image", (1, 8, 8), 10)
RGB_INFO = dlcore.DatasetInfo("rgb", "RGB", "", "image-classification", "image", (3, 16, 16), 2)


def save(im: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _bad_crc_png() -> bytes:
    data = bytearray(png((16, 16), 90))
    data[30] ^= 0xFF  # inside IHDR: its CRC no longer matches
    return bytes(data)


def _jpeg_truncated() -> bytes:
    return save(Image.new("RGB", (64, 64), (10, 200, 30)), "JPEG")[:200]


def _gif_garbage() -> bytes:
    return b"GIF89a" + struct.pack("<HH", 10, 10) + b"\xf7\x00\x00" + bytes(range(256)) * 3


def _tiff_bad_ifd() -> bytes:
    return b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 0xFFFF) + b"\x00" * 64


def _bmp_absurd() -> bytes:
    header = b"BM" + struct.pack("<IHHI", 1000, 0, 0, 54)
    info = struct.pack("<IiiHHIIiiII", 40, 2**30, 2**30, 1, 24, 0, 0, 0, 0, 0, 0)
    return header + info + b"\x00" * 32


HOSTILE = {
    "empty": (b"", r"empty, not an image"),
    "text": (b"I am not an image at all", r"is not an image"),
    "eps": (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n(pwned) print showpage\n", r"is not an image"),
    "pdf": (b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF", r"is not an image"),
    "svg": (b"<svg xmlns='http://www.w3.org/2000/svg'><image href='http://evil/'/></svg>", r"is not an image"),
    "truncated-png": (png((64, 64), 7)[:60], r"not a readable image|is not an image"),
    "bad-crc-png": (_bad_crc_png(), r"not a readable image|is not an image"),
    "truncated-jpeg": (_jpeg_truncated(), r"not a readable image"),
    "garbage-gif": (_gif_garbage(), r"not a readable image|is not an image"),
    "tiff-bad-ifd": (_tiff_bad_ifd(), r"not a readable image|is not an image"),
    "bmp-2^30-pixels-square": (_bmp_absurd(), r"pixels|not a readable image|is not an image"),
    "png-13000x13000-header": (png_header_only(13_000, 13_000), r"13000×13000 pixels; the limit is 16,777,216"),
    "png-bomb-100000-square": (png_header_only(100_000, 100_000), r"100000×100000 pixels|decompression bomb"),
    "png-zero-width": (png_header_only(0, 10), r"no pixels|not a readable image|is not an image"),
}


def _clean(msg: str) -> None:
    assert "object at 0x" not in msg and "<_io." not in msg and "Traceback" not in msg, msg
    assert str(ROOT) not in msg and "site-packages" not in msg, msg


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_image_on_the_explain_path(case):
    data, pattern = HOSTILE[case]
    with pytest.raises(DataError, match=pattern) as info:
        image_from_bytes(data, INFO, name="upload.png")
    _clean(str(info.value))
    assert "upload.png" in str(info.value)


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_image_in_a_zip_is_named(case, refuses):
    data, pattern = HOSTILE[case]
    msg = refuses(DataError, lambda: dlcore.import_image_zip(make_zip({**good_images(), "dog/evil.png": data})),
                  r"dog/evil\.png", pattern)
    _clean(msg)


def test_a_real_decompression_bomb_error_is_a_data_error(monkeypatch):
    """With our own limit raised past Pillow's, Pillow's DecompressionBombError is what fires: still a DataError."""
    monkeypatch.setenv("DLE_MAX_IMAGE_PIXELS", str(10**12))
    with pytest.raises(DataError, match="decompression bomb") as info:
        image_from_bytes(png_header_only(100_000, 100_000), INFO)
    _clean(str(info.value))


def test_an_image_over_the_pixel_limit_costs_nothing():
    """The probe's 13000×13000 PNG cost +5.2 GB and 8.9 s; refused from its header it costs neither."""
    data = png_header_only(13_000, 13_000)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    for _ in range(20):
        with pytest.raises(DataError, match="13000×13000"):
            image_from_bytes(data, INFO)
    assert time.perf_counter() - t0 < 1.0
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < 64 * 1024  # KiB


def test_the_pixel_limit_follows_its_variable_on_every_path(monkeypatch, refuses):
    monkeypatch.setenv("DLE_MAX_IMAGE_PIXELS", "100")
    big = png((16, 16))
    with pytest.raises(DataError, match=r"16×16 pixels; the limit is 100"):
        image_from_bytes(big, INFO)
    with pytest.raises(DataError, match=r"16×16 pixels; the limit is 100"):
        peek_image(big)
    refuses(DataError, lambda: dlcore.import_image_zip(make_zip({**good_images(), "cat/big.png": big})),
            r"cat/big\.png.*16×16 pixels; the limit is 100")
    with pytest.raises(DataError, match=r"the limit is 100"):  # a drawn canvas array is bounded too
        dlcore.inspect.image_input(np.zeros((16, 16, 4), np.uint8), INFO)


def test_every_image_is_decoded_by_the_one_checked_decoder():
    """No other module opens image bytes with Pillow: dlcore/data/images.py is the only Image.open."""
    found = []
    for path in [*(ROOT / "dlcore").rglob("*.py"), *(ROOT / "app_pages").rglob("*.py"), ROOT / "app.py"]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "open" \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "Image":
                found.append(path.relative_to(ROOT).as_posix())
    assert set(found) == {"dlcore/data/images.py"}, found


# ------------------------------------------------------------------ legitimate images that once went wrong
def _float_tiff(values) -> bytes:
    return save(Image.fromarray(np.asarray(values, dtype=np.float32), mode="F"), "TIFF")


def test_float_tiff_with_negative_values_does_not_wrap():
    ramp = np.linspace(-1.0, 1.0, 64, dtype=np.float32).reshape(8, 8)
    out = np.asarray(decode_image(_float_tiff(ramp)), dtype=np.int32).reshape(-1)
    assert out[0] == 0 and out[-1] == 255
    assert np.all(np.diff(out) >= 0), "a brighter value decoded darker: the cast wrapped around"


def test_int32_tiff_with_negative_values_and_nan_floats_do_not_wrap():
    ints = (np.arange(64).reshape(8, 8) * 1000 - 30000).astype(np.int32)
    out = np.asarray(decode_image(save(Image.fromarray(ints, mode="I"), "TIFF")), dtype=np.int32).reshape(-1)
    assert np.all(np.diff(out) >= 0) and out[0] == 0 and out[-1] == 255
    weird = np.array([[np.nan, np.inf, -np.inf, 0.5]] * 4, dtype=np.float32)
    assert np.asarray(decode_image(_float_tiff(weird))).shape == (4, 4)


def test_negative_float_tiffs_import_in_order_through_a_zip(sandbox):
    dark, light = _float_tiff(np.full((8, 8), -5.0)), _float_tiff(np.full((8, 8), 5.0))
    mid = _float_tiff(np.linspace(-5, 5, 64).reshape(8, 8))
    info = dlcore.import_image_zip(make_zip({"a/1.tif": dark, "a/2.tif": mid, "b/1.tif": light, "b/2.tif": mid}),
                                   image_size=8)
    ds = dlcore.load_dataset(dlcore.DataSpec(name=info.name, val_fraction=0.0))
    x = torch_cat(ds)
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    # a constant image of -5 is its own range's bottom: black; +5 is white, never the other way round
    means = sorted(float(v) for v in x.mean(dim=(1, 2, 3)))
    assert means[0] < 0.05 and means[-1] > 0.95


def torch_cat(ds):
    import torch

    return torch.cat([ds.train[0], ds.test[0]])


def test_explain_upload_of_transparent_and_palette_images():
    drawing = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    drawing.paste((255, 255, 255, 255), (15, 5, 25, 35))  # a white stroke on a transparent canvas
    x = image_from_bytes(save(drawing), INFO)
    assert x.shape == (1, 8, 8) and x.max() > 0.5 and x[0, 0, 0] < 0.1
    pal = Image.new("P", (20, 20), 3)
    assert image_from_bytes(save(pal), RGB_INFO).shape == (3, 16, 16)
    sixteen = Image.fromarray((np.arange(400).reshape(20, 20) * 150).astype(np.uint16))
    assert image_from_bytes(save(sixteen), RGB_INFO).shape == (3, 16, 16)


def test_big_jpeg_is_decoded_at_a_reduced_scale():
    """A 4000×3000 photo resized to 28 px is decoded at 1/8 scale: what the zip's pixel budget counts."""
    photo = save(Image.new("RGB", (4000, 3000), (120, 30, 200)), "JPEG", quality=50)
    head = peek_image(photo, "photo.jpg", size_hint=28)
    assert (head.width, head.height) == (500, 375)
    assert decode_image(photo, "photo.jpg", size_hint=28).size == (500, 375)
    assert peek_image(photo, "photo.jpg").pixels == 12_000_000


# ------------------------------------------------------------------ fake images: 'not an image', named
FAKES = {
    "all-fake-one-each": {"cat/1.png": b"fake", "dog/1.png": b"fake"},
    "all-fake-two-each": {"cat/1.png": b"fake", "cat/2.png": b"fake", "dog/1.png": b"\x89PNG\r\n\x1a\n", "dog/2.png": b"x"},
    "html-named-jpg": {**good_images(), "dog/3.jpg": b"<html><body>404 Not Found</body></html>"},
    "zip-named-png": {**good_images(), "cat/3.png": make_zip({"a.txt": b"hi"})},
}


@pytest.mark.parametrize("case", list(FAKES))
def test_fake_images_are_not_an_image_not_a_class_count(case, refuses):
    msg = refuses(DataError, lambda: dlcore.import_image_zip(make_zip(FAKES[case])), r"'\w+/\d\.(png|jpg)' is not")
    assert "needs at least" not in msg and "image(s)" not in msg
