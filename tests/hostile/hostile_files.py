"""Builders of hostile files, made in memory with PIL, zipfile and struct (no binary fixtures)."""
from __future__ import annotations

import io
import struct
import zipfile


def png(size=(8, 8), color=0, mode="L", fmt="PNG") -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, fmt)
    return buf.getvalue()


def good_images() -> dict[str, bytes]:
    return {"cat/1.png": png(color=0), "cat/2.png": png(color=20), "dog/1.png": png(color=200),
            "dog/2.png": png(color=255)}


def make_zip(entries, compression=zipfile.ZIP_DEFLATED) -> bytes:
    """A zip from {name: bytes} or [(name or ZipInfo, bytes)]."""
    items = entries.items() if isinstance(entries, dict) else entries
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, blob in items:
            zf.writestr(name, blob)
    return buf.getvalue()


def patch_headers(data: bytes, local_offset: int, central_offset: int, fmt: str, value: int) -> bytes:
    """Overwrite a field in every local and central-directory header of a zip (forged archives)."""
    out = bytearray(data)
    for sig, off in ((b"PK\x03\x04", local_offset), (b"PK\x01\x02", central_offset)):
        pos = out.find(sig)
        while pos != -1:
            struct.pack_into(fmt, out, pos + off, value)
            pos = out.find(sig, pos + 4)
    return bytes(out)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG signature and IHDR claiming width × height, with one tiny IDAT: a decompression bomb header."""
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
