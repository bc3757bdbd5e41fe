"""The one checked decoder for every image a user hands us: uploaded zips, the Explain page's upload,
anything else that arrives as bytes.

Decoding untrusted bytes goes through two steps, so that no pixel is decoded before its cost is known:

1. :func:`peek_image` reads only the header (Pillow's ``Image.open`` is lazy): the format (only the plain
   raster decoders in :data:`IMAGE_FORMATS`, never EPS/PDF, which would call Ghostscript), width, height
   and mode, refused past ``DLE_MAX_IMAGE_PIXELS``. A caller adds up these sizes (a zip's total pixel
   budget, the memory of the result) before decoding anything.
2. :func:`decode_image` decodes one image into mode ``L``, ``RGB`` or ``RGBA``. 16-bit, 32-bit and float
   images are scaled into 0..255 from their own range (a float TIFF with negative values does not wrap
   around); JPEGs are decoded at a reduced scale when only a small image is wanted (``size_hint``).

Every failure — a file that is not an image, a truncated stream, a decompression bomb, any other
exception Pillow raises on hostile input — is a ``DataError`` naming the file, never a Python repr such as
``<_io.BytesIO object at 0x…>``.

Example:
    >>> head = peek_image(blob, "cat/1.png")
    >>> head.width, head.height, head.pixels
    (640, 480, 307200)
    >>> decode_image(blob, "cat/1.png", size_hint=28).mode
    'RGB'
"""
from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass

import numpy as np

from dlcore.config import LIMITS
from dlcore.data.base import DataError

IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF")  # the only decoders an upload may reach
IMAGE_EXT = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
_WIDE = ("I", "F")  # mode prefixes of 16/32-bit integer and float images (I, I;16, I;16B, ..., F)
_REPR = re.compile(r"<[^<>]*? at 0x[0-9a-fA-F]+>")  # a Python object repr inside a library's message


@dataclass(frozen=True)
class ImageHeader:
    """What an image's header says, read without decoding its pixels."""
    name: str
    format: str
    mode: str
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def gray(self) -> bool:
        """One channel of information (grayscale, 1-bit, 16-bit or float data)."""
        return self.mode in ("1", "L", "LA", "La") or self.mode.startswith(_WIDE)

    def decode_bytes(self) -> int:
        """Peak bytes that decoding and converting this image takes (Pillow's buffer, the converted copy
        and, for 16/32-bit and float images, the float32 array they are scaled through)."""
        per_pixel = 4 + 4 + (12 if self.mode.startswith(_WIDE) else 0)
        return self.pixels * per_pixel


def _clean(e: BaseException) -> str:
    """A library's message without object reprs or file paths, at most 120 characters."""
    text = _REPR.sub("the file", str(e)).strip() or type(e).__name__
    return text[:120]


def _open(data: bytes, name: str):
    """Pillow's lazy open (header only) restricted to IMAGE_FORMATS; DataError for anything else."""
    from PIL import Image, UnidentifiedImageError

    if not isinstance(data, (bytes, bytearray, memoryview)) or len(data) == 0:
        raise DataError(f"{name} is empty, not an image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # our own pixel limit applies; a corrupt EXIF block is not news
            return Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
    except Image.DecompressionBombError as e:
        raise DataError(f"{name} has too many pixels to decode safely (a decompression bomb); the limit is "
                        f"{LIMITS.image_pixels:,} pixels (DLE_MAX_IMAGE_PIXELS)") from e
    except UnidentifiedImageError as e:
        raise DataError(f"{name} is not an image: its content is not one of {', '.join(IMAGE_FORMATS[:-1])} or "
                        f"{IMAGE_FORMATS[-1]}; remove it or re-save it as PNG or JPEG") from e
    except Exception as e:  # noqa: BLE001 - any decoder failure on hostile bytes is the file's fault
        raise DataError(f"{name} is not a readable image ({type(e).__name__}: {_clean(e)}); remove it or re-save "
                        "it as PNG or JPEG") from e


def _check_pixels(name: str, width: int, height: int, max_pixels: int | None) -> None:
    limit = LIMITS.image_pixels if max_pixels is None else max_pixels
    if width < 1 or height < 1:
        raise DataError(f"{name} has no pixels ({width}×{height})")
    if width * height > limit:
        raise DataError(f"{name} is {width}×{height} pixels; the limit is {limit:,} pixels "
                        "(DLE_MAX_IMAGE_PIXELS): shrink it before uploading")


def peek_image(data: bytes, name: str = "the file", max_pixels: int | None = None,
               size_hint: int | None = None) -> ImageHeader:
    """The header of an image (format, mode, size) without decoding its pixels.

    Args:
        data: the file's bytes.
        name: how messages name the file ("cat/1.png").
        max_pixels: width × height allowed (default ``LIMITS.image_pixels``).
        size_hint: the side of the image the caller will resize to; a JPEG is then reported at the reduced
            scale :func:`decode_image` decodes it at (what it costs).

    Raises:
        DataError: not an image of IMAGE_FORMATS, a damaged header, or more pixels than allowed.
    """
    with _open(data, name) as im:
        _check_pixels(name, im.width, im.height, max_pixels)
        if size_hint:
            _draft(im, size_hint)
        return ImageHeader(name, im.format or "?", im.mode, im.width, im.height)


def _draft(im, size_hint: int) -> None:
    """Let a JPEG decode at 1/2, 1/4 or 1/8 scale when that still covers ``size_hint`` (no-op otherwise)."""
    if im.format == "JPEG" and im.mode in ("L", "RGB", "YCbCr"):
        im.draft(im.mode if im.mode == "L" else "RGB", (size_hint, size_hint))


def _wide_to_8bit(im):
    """A 16/32-bit integer or float image as mode L, scaled from its own range: [min(0, lo), max(1, hi)] maps
    to 0..255, so negative values stay below positive ones instead of wrapping around, and non-finite values
    become 0."""
    from PIL import Image

    a = np.array(im, dtype=np.float32)  # a writable copy, scaled in place
    a[~np.isfinite(a)] = 0.0
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 1.0)
    lo, hi = min(lo, 0.0), max(hi, 1.0)
    a -= lo
    a *= 255.0 / (hi - lo)
    np.clip(a, 0.0, 255.0, out=a)
    return Image.fromarray(np.rint(a).astype(np.uint8), mode="L")


def decode_image(data: bytes, name: str = "the file", *, max_pixels: int | None = None,
                 size_hint: int | None = None, keep_alpha: bool = False):
    """Decode an image into a loaded PIL image of mode ``L`` (one channel of data), ``RGB``, or ``RGBA``
    (with ``keep_alpha``, for images that have transparency).

    Args:
        data: the file's bytes.
        name: how messages name the file.
        max_pixels: width × height allowed (default ``LIMITS.image_pixels``), checked before decoding.
        size_hint: the side the caller resizes to: a JPEG is decoded at the smallest scale that covers it.
        keep_alpha: keep transparency as mode RGBA (a drawing on a transparent canvas).

    Raises:
        DataError: not a readable image, too many pixels, or a decoder failure (the message names the file).
    """
    from PIL import Image

    try:
        with _open(data, name) as im:
            _check_pixels(name, im.width, im.height, max_pixels)
            if size_hint:
                _draft(im, size_hint)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                im.load()
            if im.mode.startswith(_WIDE):
                return _wide_to_8bit(im)
            has_alpha = im.mode in ("RGBA", "LA", "La", "PA", "RGBa") or "transparency" in im.info
            if keep_alpha and has_alpha:
                return im.convert("RGBA")
            if im.mode in ("1", "L", "LA", "La"):
                return im.convert("L")
            return im.convert("RGB")
    except DataError:
        raise
    except Image.DecompressionBombError as e:
        raise DataError(f"{name} has too many pixels to decode safely (a decompression bomb); the limit is "
                        f"{LIMITS.image_pixels:,} pixels (DLE_MAX_IMAGE_PIXELS)") from e
    except MemoryError as e:
        raise DataError(f"{name} is too large to decode in the memory available") from e
    except Exception as e:  # noqa: BLE001 - truncated streams, bad chunks, codec errors: the file's fault
        raise DataError(f"{name} is not a readable image ({type(e).__name__}: {_clean(e)}); remove it or re-save "
                        "it as PNG or JPEG") from e


__all__ = ["IMAGE_FORMATS", "IMAGE_EXT", "ImageHeader", "peek_image", "decode_image"]
