"""Hostile image-zip uploads: every one is refused with a message that names the problem, nothing is
written (not even a half dataset), and nothing lands outside the data folder."""
from __future__ import annotations

import io
import os
import stat
import zipfile

import pytest
from hostile_files import good_images, make_zip, patch_headers, png, png_header_only

import dlcore
from dlcore import DataError
from dlcore.data.user import safe_name


def imp(data: bytes, **kw):
    return lambda: dlcore.import_image_zip(data, **kw)


def test_a_good_zip_imports(sandbox):
    """The control: the same builders make a zip that imports, so the refusals below are about the hostile part."""
    info = dlcore.import_image_zip(make_zip({"my_data/" + k: v for k, v in good_images().items()}), name="pets")
    assert info.class_names == ("cat", "dog") and info.input_shape == (1, 28, 28)
    assert (sandbox.data / "datasets" / info.name / "data.safetensors").exists()
    assert len(dlcore.load_dataset(dlcore.DataSpec(name=info.name, val_fraction=0.0)).train[0]) >= 2


def _truncated() -> bytes:
    data = make_zip(good_images())
    return data[: len(data) // 2]


def _corrupt_payload() -> bytes:
    blob = bytes(range(256)) * 64  # compressible, so the deflate stream is what gets damaged
    data = bytearray(make_zip({"cat/1.png": blob, "cat/2.png": png(), "dog/1.png": png(), "dog/2.png": png()}))
    start = data.find(b"cat/1.png") + len("cat/1.png")
    for i in range(start + 5, start + 40):
        data[i] ^= 0xFF
    return bytes(data)


def _symlink_zip() -> bytes:
    info = zipfile.ZipInfo("cat/link.png")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return make_zip([(info, b"/etc/passwd")] + list(good_images().items()))


def _encrypted_zip() -> bytes:
    return patch_headers(make_zip(good_images()), 6, 8, "<H", 0x1)  # the 'encrypted' flag bit on every entry


ZIP_CASES = {
    "empty-file": (b"", r"empty"),
    "not-a-zip": (b"hello, this is not a zip" * 10, r"not a readable zip"),
    "truncated-zip": (_truncated(), r"not a readable zip"),
    "corrupt-deflate-stream": (_corrupt_payload(), r"damaged|not a readable image"),
    "png-renamed-zip": (png(), r"not a readable zip"),
    "dotdot-entry": (make_zip({"../evil.png": png(), **good_images()}), r"outside its folder"),
    "nested-dotdot-entry": (make_zip({"cat/../../evil.png": png(), **good_images()}), r"outside its folder"),
    "absolute-entry": (make_zip({"/tmp/dle-evil.png": png(), **good_images()}), r"outside its folder"),
    "windows-drive-entry": (make_zip({"C:/evil.png": png(), **good_images()}), r"outside its folder"),
    "backslash-dotdot-entry": (make_zip({"..\\..\\evil.png": png(), **good_images()}), r"outside its folder"),
    "symlink-entry": (_symlink_zip(), r"symbolic link"),
    "password-protected": (_encrypted_zip(), r"password"),
    "unknown-compression": (patch_headers(make_zip(good_images(), zipfile.ZIP_STORED), 8, 10, "<H", 99),
                            r"compression method"),
    "no-images": (make_zip({"cat/a.txt": b"hi", "dog/b.csv": b"1,2"}), r"no images"),
    "text-named-png": (make_zip({**good_images(), "cat/3.png": b"I am not an image"}), r"cat/3\.png.*is not an image"),
    "eps-named-png": (make_zip({**good_images(), "cat/3.png": b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 8 8\n"
                                                              b"(pwned) print showpage\n"}), r"cat/3\.png.*is not an image"),
    "pdf-named-jpg": (make_zip({**good_images(), "dog/3.jpg": b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF"}),
                      r"dog/3\.jpg.*is not an image"),
    "truncated-png": (make_zip({**good_images(), "dog/3.png": png((64, 64), 7)[:60]}), r"not a readable image"),
    "png-bomb-header": (make_zip({**good_images(), "dog/3.png": png_header_only(100_000, 100_000)}),
                        r"100000×100000 pixels|too many pixels"),
    "single-class": (make_zip({"cat/1.png": png(), "cat/2.png": png(color=9)}), r"only one class"),
    "empty-class-folder": (make_zip([(zipfile.ZipInfo("bird/"), b""), *good_images().items()]),
                           r"'bird'.*no images"),
    "class-of-non-images": (make_zip({**good_images(), "fish/readme.txt": b"no pictures here"}), r"'fish'.*no images"),
    "one-image-class": (make_zip({**good_images(), "bird/1.png": png()}), r"'bird' has 1 image"),
    "image-outside-folders": (make_zip({**good_images(), "stray.png": png()}), r"stray\.png.*not inside a class folder"),
}


@pytest.mark.parametrize("case", list(ZIP_CASES))
def test_hostile_zip_is_refused(case, refuses, sandbox):
    data, pattern = ZIP_CASES[case]
    refuses(DataError, imp(data), pattern)
    assert not (sandbox.root / "evil.png").exists() and not os.path.exists("/tmp/dle-evil.png")


def test_zip_bomb_by_declared_size(refuses, monkeypatch):
    monkeypatch.setenv("DLE_MAX_UNZIPPED_MB", "1")
    bomb = make_zip({**good_images(), "cat/zeros.png": b"\0" * (3 * 2**20)})
    assert len(bomb) < 20_000  # 3 MB of zeros squeezed to a few kB
    refuses(DataError, imp(bomb), r"unpack to 3 MB.*limit is 1 MB.*DLE_MAX_UNZIPPED_MB")


def test_zip_bomb_with_forged_sizes_never_inflates(refuses):
    """Headers claim 1 kB, the stream inflates to 3 MB: reading stops at the declared size and is refused."""
    real = make_zip({"cat/1.png": b"\0" * (3 * 2**20), "cat/2.png": png(), "dog/1.png": png(), "dog/2.png": png()})
    forged = patch_headers(real, 22, 24, "<I", 1000)  # uncompressed-size fields of every header
    refuses(DataError, imp(forged), r"cat/1\.png.*(damaged|larger than it declares)")


def test_too_many_zip_entries(refuses, monkeypatch):
    monkeypatch.setenv("DLE_MAX_ZIP_FILES", "5")
    many = make_zip({f"cat/{i}.png": png(color=i) for i in range(3)} | {f"dog/{i}.png": png(color=i) for i in range(3)})
    refuses(DataError, imp(many), r"6 entries.*limit is 5.*DLE_MAX_ZIP_FILES")


def test_upload_size_limit(refuses, monkeypatch):
    monkeypatch.setenv("DLE_MAX_UPLOAD_MB", "0.0002")  # ~200 bytes
    refuses(DataError, imp(make_zip(good_images())), r"zip file is .* MB; the limit")


def test_image_pixel_limit(refuses, monkeypatch):
    monkeypatch.setenv("DLE_MAX_IMAGE_PIXELS", "100")
    refuses(DataError, imp(make_zip({**good_images(), "dog/3.png": png((16, 16))})), r"16×16 pixels.*limit is 100")


def test_tensor_memory_limit(refuses, monkeypatch):
    """Many images at a large resize would not fit: refused before any image is decoded."""
    monkeypatch.setenv("DLE_MAX_DATASET_MB", "0.5")
    refuses(DataError, imp(make_zip(good_images()), image_size=256),
            r"4 images at 256×256 would take 1.0 MB in memory; the limit is 0.5 MB \(DLE_MAX_DATASET_MB\).*lower "
            r"image_size")


@pytest.mark.parametrize("size", [0, 3, 100_000, "28", 28.0, True, None])
def test_image_size_out_of_range(size, refuses):
    refuses(DataError, imp(make_zip(good_images()), image_size=size), r"image_size must be a whole number 4\.\.512")


def test_hostile_names_are_sanitised(sandbox):
    for name in ("../../etc/passwd", "/abs/path", "..", "a\x00b", "con\nsole", "ü" * 80, ""):
        slug = safe_name(name)
        assert "/" not in slug and "\\" not in slug and not slug.startswith(".") and len(slug) <= 40 and slug
    info = dlcore.import_image_zip(make_zip(good_images()), name="../../../etc/passwd")
    folder = sandbox.data / "datasets" / info.name
    assert info.name.startswith("user-etc-passwd-") and folder.is_dir()
    assert folder.resolve().parent == (sandbox.data / "datasets").resolve()
    # a dataset id from a request can never point outside the datasets folder
    for bad in ("user-../../x", "../store.db", "/etc/passwd"):
        with pytest.raises(DataError, match="no uploaded dataset|unknown dataset"):
            dlcore.load_dataset(dlcore.DataSpec(name=bad))
    dlcore.delete_user("../../data")  # not a user- folder: nothing happens
    assert (sandbox.data / "datasets" / info.name).exists()


def test_inner_zip_and_hidden_files_are_ignored(sandbox):
    """A zip inside the zip is never opened; macOS metadata is skipped."""
    inner = make_zip({f"x/{i}.png": png() for i in range(3)})
    info = dlcore.import_image_zip(make_zip({**good_images(), "cat/inner.zip": inner, "__MACOSX/cat/._1.png": b"junk",
                                             "dog/.DS_Store": b"junk"}))
    assert info.class_names == ("cat", "dog")


def test_failed_save_leaves_no_partial_folder(refuses, monkeypatch):
    """A full disk while writing the dataset: a clear error and no half-written folder."""
    import errno

    import dlcore.data.user as user

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(user, "save_file", full)
    refuses(DataError, imp(make_zip(good_images())), r"could not be saved.*No space left.*free some disk space")


def test_damaged_dataset_folder_is_a_clear_error(sandbox):
    info = dlcore.import_image_zip(make_zip(good_images()))
    folder = sandbox.data / "datasets" / info.name
    (folder / "data.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(DataError, match="damaged"):
        dlcore.load_dataset(dlcore.DataSpec(name=info.name))
    (folder / "info.json").write_text("{not json")
    with pytest.raises(DataError, match="damaged"):
        dlcore.dataset_info(info.name)
    assert info.name not in [i.name for i in dlcore.list_user()]  # skipped, not fatal


def test_sixteen_bit_and_palette_images_are_read(sandbox):
    """Unusual but legitimate modes convert instead of failing."""
    import numpy as np
    from PIL import Image

    def save(im):
        buf = io.BytesIO()
        im.save(buf, "PNG")
        return buf.getvalue()

    deep = save(Image.fromarray((np.arange(64).reshape(8, 8) * 1000).astype(np.uint16)))
    pal = save(Image.new("P", (8, 8), 3))
    info = dlcore.import_image_zip(make_zip({"a/1.png": deep, "a/2.png": deep, "b/1.png": pal, "b/2.png": pal}))
    assert info.num_outputs == 2
