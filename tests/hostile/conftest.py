"""Fixtures for the hostile-input suite: a sandboxed data folder, a 'refuses' checker that also proves
nothing was left behind anywhere, and builders for images and zips made in memory (no binary fixtures)."""
from __future__ import annotations

import io
import re
import struct
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """A data folder of the test's own inside tmp_path, with the working directory next to it, so any
    file written outside the data folder shows up in tmp_path."""
    data, cwd = tmp_path / "data", tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.setenv("DLE_DATA_DIR", str(data))
    monkeypatch.chdir(cwd)
    return SimpleNamespace(root=tmp_path, data=data, cwd=cwd)


def tree(path: Path) -> set[str]:
    return {p.relative_to(path).as_posix() for p in path.rglob("*")}


@pytest.fixture
def refuses(sandbox):
    """``refuses(Error, fn, *patterns)``: fn raises exactly that error type with a message matching every
    pattern, and the sandbox holds no new file (no dataset folder, no temp folder, nothing outside)."""

    def check(exc: type, fn, *patterns: str) -> str:
        before = tree(sandbox.root)
        with pytest.raises(exc) as info:
            fn()
        msg = str(info.value)
        for pat in patterns:
            assert re.search(pat, msg, re.IGNORECASE), f"{pat!r} not in message: {msg}"
        assert "Traceback" not in msg
        new = tree(sandbox.root) - before - {"data", "data/datasets"}
        assert not new, f"left behind: {sorted(new)}"
        return msg

    return check


# ------------------------------------------------------------------ builders
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


@pytest.fixture
def builders():
    return SimpleNamespace(png=png, good_images=good_images, make_zip=make_zip, patch_headers=patch_headers,
                           png_header_only=png_header_only)
