"""User datasets: image-folder zips, CSV tables, text,label CSVs and plain text — checked, converted to
tensors and stored as safetensors + JSON under the data folder. Files are read in memory and never
extracted, executed or unpickled; images are decoded only by the checked decoder of
``dlcore.data.images`` (Pillow's plain raster decoders, no EPS/PDF); every problem is a ``DataError`` that
says what to fix, and a failed import leaves nothing behind. The limits come from ``dlcore.config.LIMITS``.

Each cost is bounded before the work that incurs it, with the number in the message: a zip's entry count
from its central directory's end record (before ``zipfile`` parses the directory), its declared unpacked
size, every image's size from its header, the pixels of all images together (``DLE_MAX_ZIP_PIXELS``), and
the memory of the result (``DLE_MAX_DATASET_MB``). Stored tensors are compact: images as bytes (0..255),
token ids as 8- or 16-bit integers; :func:`load_user` widens them to what models read.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
import shutil
import stat
import struct
import unicodedata
import uuid
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from dlcore.config import LIMITS, data_dir
from dlcore.data.base import DataError, Dataset, DatasetInfo, n_train_after
from dlcore.data.images import IMAGE_EXT, IMAGE_FORMATS, decode_image, peek_image
from dlcore.specs import DataSpec

if TYPE_CHECKING:
    from dlcore.access import Viewer

_ACCESS = "access.json"  # {"owner": identity, "shared": bool}: who may list and train on it (dlcore.access)
MAX_CLASS_NAME = 128  # characters of a class folder's name
MAX_VOCAB = 5000  # distinct characters a character-level model accepts
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def safe_name(name: str, fallback: str = "dataset") -> str:
    """A file-system-safe slug of a user-given name (no separators, no dots in front, ≤ 40 chars)."""
    slug = _SAFE.sub("-", name or "").strip("-.")[:40]
    return slug or fallback


def _mb(n: float) -> str:
    """Bytes as MB for a message (one decimal below 10 MB, so a small limit does not read '0 MB')."""
    return f"{n / 2**20:,.1f} MB" if n < 10 * 2**20 else f"{n / 2**20:,.0f} MB"


def datasets_dir() -> Path:
    path = data_dir() / "datasets"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _check_size(data: bytes, what: str) -> None:
    if len(data) == 0:
        raise DataError(f"the {what} is empty")
    if len(data) > LIMITS.upload_bytes:
        raise DataError(f"the {what} is {len(data) / 2**20:.1f} MB; the limit is {LIMITS.upload_bytes / 2**20:.0f} MB")


def _pixel_stats(x: torch.Tensor) -> tuple[float, float]:
    """Mean and (unbiased) std of image tensors in [0, 1] units (bytes are divided by 255), summed in
    chunks so that bytes are never widened to float all at once."""
    scale = 255.0 if x.dtype == torch.uint8 else 1.0
    flat = x.reshape(-1)
    n, total, squares = flat.numel(), 0.0, 0.0
    step = 1 << 20  # 8 MB of float64 at a time
    for i in range(0, n, step):
        chunk = flat[i: i + step].double()
        total += float(chunk.sum())
        squares += float((chunk * chunk).sum())
    if n == 0:
        return 0.0, 1.0
    mean = total / n
    var = max(0.0, (squares - n * mean * mean) / max(1, n - 1))
    return mean / scale, (var ** 0.5) / scale or 1.0


def _unshared(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Contiguous tensors, cloning only those that share memory with another (safetensors refuses shared
    storage, e.g. a corpus's inputs and targets are views of one tensor); others are written as they are."""
    out, seen = {}, set()
    for k, v in tensors.items():
        ptr = v.untyped_storage().data_ptr() if v.numel() else None
        if ptr in seen or not v.is_contiguous() or v.storage_offset() or v.untyped_storage().nbytes() != v.nbytes:
            v = v.clone(memory_format=torch.contiguous_format)
        seen.add(ptr)
        out[k] = v
    return out


def _save(info: DatasetInfo, xtr, ytr, xte, yte, owner: str = "") -> DatasetInfo:
    """Write tensors and info atomically into a fresh folder named by the dataset id. Any failure (a full
    disk raises OSError or safetensors' SafetensorError) removes the temporary folder: nothing stays behind.

    The saved ``n_train`` counts the stored training part; :func:`user_info` cuts it for a DataSpec as
    :func:`load_user` cuts the tensors. ``owner`` goes into access.json with the rest, so the dataset is
    never seen without its owner.
    """
    from safetensors import SafetensorError

    info = dataclasses.replace(info, n_train=len(xtr))
    if info.input_kind == "image":  # the statistics load_user computes, known before loading (for_data, fit check)
        mean, std = _pixel_stats(xtr)
        info = dataclasses.replace(info, pixel_mean=mean, pixel_std=std)
    folder = datasets_dir() / info.name
    tmp = datasets_dir() / f".tmp-{info.name}"
    try:
        tmp.mkdir(parents=True, exist_ok=False)
        tensors = {"x_train": xtr, "y_train": ytr, "x_test": xte, "y_test": yte}
        save_file(_unshared(tensors), str(tmp / "data.safetensors"))
        meta = {k: (list(v) if isinstance(v, tuple) else v) for k, v in info.__dict__.items()}
        (tmp / "info.json").write_text(json.dumps(meta))
        (tmp / _ACCESS).write_text(json.dumps({"owner": owner or "", "shared": False}))
        tmp.rename(folder)
    except (OSError, SafetensorError) as e:  # a full disk: no half-written dataset stays behind
        shutil.rmtree(tmp, ignore_errors=True)
        full = getattr(e, "errno", None) == 28 or "no space left" in str(e).lower() or "os error 28" in str(e)
        detail = "No space left on device" if full else (getattr(e, "strerror", None) or str(e)[:120])
        raise DataError(f"the dataset could not be saved{': the disk is full' if full else ''} ({detail}); free some "
                        "disk space and try again") from e
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return info


def _new_id(name: str) -> str:
    # "user-" + slug + "-" + 6 hex within safe_name's 40 characters: a longer id would not be found again
    return f"user-{safe_name(safe_name(name)[:28])}-{uuid.uuid4().hex[:6]}"


def _split(n: int, seed: int = 0, test_fraction: float = 0.2):
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_test = max(1, int(n * test_fraction))
    return perm[n_test:], perm[:n_test]


def _class_name(folder: str) -> str:
    """A folder name as a class label: the name itself, stripped of surrounding spaces. A name that
    could not be shown as it is (control characters) or is very long is refused rather than altered, so
    two folders are never merged into one class by a cleaning step."""
    bad = _CONTROL.search(folder)
    if bad:
        raise DataError(f"the class folder {folder[:80]!r} has a control character ({bad.group()!r}) in its name; "
                        "rename it")
    name = folder.strip()
    if len(name) > MAX_CLASS_NAME:
        raise DataError(f"the class folder {name[:40] + '…'!r} has a name of {len(name)} characters; at most "
                        f"{MAX_CLASS_NAME} are allowed: rename it")
    return name or "?"


def _distinct_classes(folders) -> None:
    """Refuse folders whose class names would look the same (trailing spaces, or one Unicode spelling of
    'é' composed and the other decomposed): they are different folders, but no one could tell their
    classes apart."""
    seen: dict[str, str] = {}
    for folder in sorted(set(folders)):
        key = unicodedata.normalize("NFC", _class_name(folder))
        if key in seen:
            raise DataError(f"the class folders {seen[key]!r} and {folder!r} have names that look the same; rename "
                            "one of them")
        seen[key] = folder


def _central_directory_entries(data: bytes, limit: int) -> tuple[int, bool] | None:
    """(entries, exact) of a zip, read from its end records before ``zipfile`` parses its directory: the
    count the (zip64) end-of-central-directory record declares, or — walking at most ``limit + 1`` records
    from where the directory starts — how many records are actually there, whichever is larger (a forged
    count cannot hide millions of records). ``exact`` is False when the walk stopped past the limit (there
    are at least that many). None when there is no end record (zipfile then says what is wrong)."""
    tail_start = max(0, len(data) - (22 + 65535))
    pos = data.rfind(b"PK\x05\x06", tail_start)
    if pos < 0 or len(data) - pos < 22:
        return None
    _, _, _, _, declared, cd_size, _, _ = struct.unpack("<4s4H2IH", data[pos: pos + 22])
    start = pos - cd_size
    loc = pos - 20
    if loc >= 0 and data[loc: loc + 4] == b"PK\x06\x07":  # zip64: the real counts are in the zip64 end record
        rec = loc - 56
        if rec >= 0 and data[rec: rec + 4] == b"PK\x06\x06":
            fields = struct.unpack("<4sQ2H2I4Q", data[rec: rec + 56])
            declared, cd_size = fields[7], fields[8]
            start = rec - cd_size
    saturated = declared == 0xFFFF and loc >= 0 and data[loc: loc + 4] != b"PK\x06\x07"  # 65,535 or more
    if declared > limit:
        return declared, not saturated
    count, at = 0, start
    while count <= limit and 0 <= at and data[at: at + 4] == b"PK\x01\x02":
        n, m, k = struct.unpack("<3H", data[at + 28: at + 34])
        at += 46 + n + m + k
        count += 1
    return (count, False) if count > limit else (max(declared, count), True)


def _zip_members(data: bytes) -> list[tuple[str, str, bytes]]:
    """(class, file name, bytes) for every image in a zip of class folders, refusing anything hostile.

    Sizes are checked twice: the declared sizes before anything is decompressed, and the bytes actually
    produced while reading (a forged header cannot make an entry larger than it declares).
    """
    limit = LIMITS.zip_files
    counted = _central_directory_entries(data, limit)
    if counted is not None and counted[0] > limit:  # refused before zipfile spends time and memory on each record
        count = f"{counted[0]:,}" if counted[1] else f"more than {limit:,}"
        raise DataError(f"the zip holds {count} entries; the limit is {limit:,} (DLE_MAX_ZIP_FILES)")
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except (zipfile.BadZipFile, EOFError, ValueError, NotImplementedError, OSError, struct.error) as e:
        raise DataError(f"the file is not a readable zip archive ({e}); re-create it with your system's "
                        "'compress' / 'send to zip' command") from e
    files = [i for i in infos if not i.is_dir()]
    if len(infos) > limit:
        raise DataError(f"the zip holds {len(infos):,} entries; the limit is {limit:,} (DLE_MAX_ZIP_FILES)")
    total = sum(i.file_size for i in files)
    if total > LIMITS.unzipped_bytes:
        raise DataError(f"the zip would unpack to {total / 2**20:,.0f} MB; the limit is "
                        f"{LIMITS.unzipped_bytes / 2**20:,.0f} MB (DLE_MAX_UNZIPPED_MB): a zip bomb or too many images")
    entries, other = [], []
    for i in infos:
        name = i.filename.replace("\\", "/")
        path = PurePosixPath(name)
        if name.startswith("/") or re.match(r"^[A-Za-z]:", name) or ".." in path.parts or "\x00" in name:
            raise DataError(f"the zip entry {name!r} points outside its folder; such archives are refused")
        if stat.S_ISLNK(i.external_attr >> 16):
            raise DataError(f"the zip entry {name!r} is a symbolic link; such archives are refused")
        parts = [p for p in path.parts if p]
        if not parts or any(p.startswith(".") or p == "__MACOSX" for p in parts):
            continue
        if not i.is_dir() and path.suffix.lower() in IMAGE_EXT:
            entries.append((parts, i))
        else:
            other.append((parts, i.is_dir()))
    if not entries:
        raise DataError("the zip holds no images (.png, .jpg, .bmp, .gif, .webp, .tif); expected folders of images, "
                        "one folder per class (cat/1.png, dog/2.png)")
    # one wrapping folder (my_data/cat/1.png) is allowed: drop it when every entry shares it
    prefix: list[str] = []
    while all(len(p) > len(prefix) + 2 for p, _ in entries) and len({p[len(prefix)] for p, _ in entries}) == 1:
        prefix.append(entries[0][0][len(prefix)])
    entries = [(p[len(prefix):], i) for p, i in entries]
    folders = {p[len(prefix)] for p, is_dir in other
               if p[:len(prefix)] == prefix and (len(p) > len(prefix) + 1 or (is_dir and len(p) > len(prefix)))}
    out, read = [], 0
    for parts, i in entries:
        if len(parts) < 2:
            raise DataError(f"the image {'/'.join(prefix + parts)!r} is not inside a class folder; put each image in a "
                            "folder named after its class")
        try:
            with zf.open(i) as fh:
                blob = fh.read(i.file_size + 1)
        except NotImplementedError as e:
            raise DataError(f"the zip entry {i.filename!r} uses a compression method we cannot read ({e}); "
                            "re-create the zip with the standard 'deflate' compression") from e
        except RuntimeError as e:  # encrypted entries
            raise DataError(f"the zip entry {i.filename!r} is password-protected; upload an unencrypted zip") from e
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as e:
            raise DataError(f"the zip entry {i.filename!r} is damaged ({e}); the archive is truncated or corrupt") from e
        read += len(blob)
        if len(blob) > i.file_size or read > LIMITS.unzipped_bytes:
            raise DataError(f"the zip entry {i.filename!r} is larger than it declares: a zip bomb; the archive is refused")
        out.append((parts[0], "/".join(parts), blob))
    _distinct_classes(p[0] for p, _ in entries)
    out = [(_class_name(folder), fname, blob) for folder, fname, blob in out]
    empty = sorted(folders - {p[0] for p, _ in entries})
    if empty:
        raise DataError(f"class folder(s) {', '.join(map(repr, empty[:5]))} hold no images; every class needs at "
                        "least 2 (remove empty folders or add images)")
    return out


def import_image_zip(data: bytes, name: str = "images", image_size: int = 28, owner: str = "") -> DatasetInfo:
    """Import a zip of class folders of images as an image-classification dataset (resized squares).

    Args:
        data: the zip file's bytes.
        name: a display name (sanitised).
        image_size: images are resized to image_size × image_size (4..512).
        owner: the identity it belongs to ("" = the whole class; see :func:`list_user`). The other
            importers take it too.

    Raises:
        DataError: corrupt zip, hostile entries, non-images, too few classes or images, limits exceeded.

    Example:
        >>> info = import_image_zip(Path("pets.zip").read_bytes(), name="pets")
        >>> info.class_names
        ('cat', 'dog')
    """
    from PIL import Image

    if isinstance(image_size, bool) or not isinstance(image_size, int) or not 4 <= image_size <= 512:
        raise DataError(f"image_size must be a whole number 4..512, got {image_size!r}")
    _check_size(data, "zip file")
    members = _zip_members(data)
    # every header first (format, size; no pixel decoded): a fake image is named here, before any count
    heads = [peek_image(blob, repr(fname), size_hint=image_size) for _, fname, blob in members]
    classes = sorted({c for c, _, _ in members})
    if len(classes) < 2:
        raise DataError(f"found only one class folder ({classes[0]!r}); a classifier needs at least two")
    counts = {c: 0 for c in classes}
    for c, _, _ in members:
        counts[c] += 1
    small = min(counts, key=counts.get)
    if counts[small] < 2:
        raise DataError(f"class {small!r} has {counts[small]} image(s); each class needs at least 2")
    _check_image_budget(heads, image_size)
    gray = all(h.gray for h in heads)
    channels = 1 if gray else 3
    x = torch.empty((len(members), channels, image_size, image_size), dtype=torch.uint8)  # (N, C, H, W), 0..255
    for k, ((cls, fname, blob), head) in enumerate(zip(members, heads)):
        im = decode_image(blob, head.name, size_hint=image_size)
        im = im.convert("L" if gray else "RGB").resize((image_size, image_size))
        a = np.array(im, dtype=np.uint8)  # (H, W) or (H, W, 3), a writable copy
        x[k] = torch.from_numpy(a[None] if gray else a.transpose(2, 0, 1))
    y = torch.tensor([classes.index(c) for c, _, _ in members], dtype=torch.long)
    tr, te = _split(len(x))
    info = DatasetInfo(_new_id(name), safe_name(name), f"Uploaded images: {len(x)} in {len(classes)} classes",
                       "image-classification", "image", tuple(x.shape[1:]), len(classes), tuple(classes), source="upload")
    xtr, xte = x[tr], x[te]
    del x  # the split copies replace it: the peak is the buffer plus one copy
    return _save(info, xtr, y[tr], xte, y[te], owner)


def _check_image_budget(heads, image_size: int) -> None:
    """Refuse, before decoding, a zip whose images would cost too much: the pixels decoded altogether
    (CPU time, ``DLE_MAX_ZIP_PIXELS``) or the memory of the import and of the dataset loaded for training
    (``DLE_MAX_DATASET_MB``): the image buffer, its train/test copies and the largest single decode; when
    loaded, the float32 copy a model reads."""
    pixels = sum(h.pixels for h in heads)
    if pixels > LIMITS.zip_pixels:
        raise DataError(f"the {len(heads):,} images hold {pixels:,} pixels together; the limit is "
                        f"{LIMITS.zip_pixels:,} (DLE_MAX_ZIP_PIXELS): shrink the images or upload fewer")
    channels = 1 if all(h.gray for h in heads) else 3
    stored = len(heads) * channels * image_size * image_size  # bytes
    peak = 2 * stored + max(h.decode_bytes() for h in heads)
    need = max(peak, 4 * stored)  # importing, or training on it (float32)
    if need > LIMITS.dataset_bytes:
        raise DataError(f"{len(heads):,} images at {image_size}×{image_size} would take {_mb(need)} in "
                        f"memory; the limit is {_mb(LIMITS.dataset_bytes)} (DLE_MAX_DATASET_MB): lower "
                        "image_size or upload fewer images")


def _decode_text(data: bytes, what: str) -> str:
    """UTF-8 text (a BOM is fine); binary files and other encodings are refused with the byte that failed."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        hint = " (it looks like UTF-16: save it as UTF-8)" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else \
            "; is it a binary file? Save it as UTF-8 text"
        raise DataError(f"the {what} is not UTF-8 text: byte {e.start} is {data[e.start]:#04x}{hint}") from e
    if "\x00" in text:
        raise DataError(f"the {what} contains NUL bytes: it looks like a binary file, not text")
    return text


def _read_csv(data: bytes):
    """A DataFrame of a CSV whose rows all have the header's number of fields, within the limits."""
    import pandas as pd

    _check_size(data, "CSV file")
    text = _decode_text(data, "CSV")
    first = text.split("\n", 1)[0]
    if first.count(",") + 1 > LIMITS.csv_columns:
        raise DataError(f"the CSV has {first.count(',') + 1:,} columns; the limit is {LIMITS.csv_columns:,} "
                        "(DLE_MAX_CSV_COLUMNS)")
    # pandas silently shifts or pads uneven rows; check every row against the header first
    width, rows = None, 0
    try:
        for i, row in enumerate(csv.reader(io.StringIO(text)), 1):
            if not row:
                continue  # blank line
            if width is None:
                width = len(row)
                _unique_header(row)
                continue
            rows += 1
            if len(row) != width:
                raise DataError(f"the CSV's rows are uneven: line {i} has {len(row)} values but the header has {width} "
                                "columns; fix or remove that line")
            if rows > LIMITS.csv_rows:
                raise DataError(f"the CSV has more than {LIMITS.csv_rows:,} rows (DLE_MAX_CSV_ROWS)")
    except csv.Error as e:
        raise DataError(f"the CSV cannot be parsed ({e}); check its quotes") from e
    if width is None:
        raise DataError("the CSV is empty")
    try:
        df = pd.read_csv(io.StringIO(text), index_col=False)
    except pd.errors.EmptyDataError as e:
        raise DataError("the CSV is empty") from e
    except (pd.errors.ParserError, ValueError) as e:
        raise DataError(f"the CSV cannot be parsed: {str(e).strip()[:200]}") from e
    if len(df) < 4:
        raise DataError(f"the CSV has {len(df)} data rows; at least 4 are needed")
    return df


def _unique_header(row: list[str]) -> None:
    """Refuse a header that names a column twice: pandas would rename the second ('label.1') and it would
    silently become a feature — a copy of the label among the inputs."""
    seen: dict[str, int] = {}
    for i, name in enumerate(row, 1):
        key = name.strip()
        if key in seen:
            raise DataError(f"the CSV names two columns {key!r} (columns {seen[key]} and {i}); column names must be "
                            "unique: rename or drop one")
        seen[key] = i


def _labels(series, where: str):
    if series.isna().any():
        raise DataError(f"the label column {where!r} has {int(series.isna().sum())} empty cell(s)")
    values = series.astype(str)
    classes = sorted(values.unique())
    if len(classes) < 2:
        raise DataError(f"the label column {where!r} holds a single class ({classes[0]!r}); a classifier needs at least two")
    if len(classes) > 10_000 or (len(classes) > 20 and len(classes) > len(values) // 2):
        raise DataError(f"the label column {where!r} has {len(classes):,} different values in {len(values):,} rows: it "
                        "looks like a number to predict or an id, not a class label; pick the column of classes")
    counts = values.value_counts()
    if counts.min() < 2:
        raise DataError(f"class {counts.idxmin()!r} in column {where!r} has {counts.min()} row; each class needs at least 2")
    index = {c: i for i, c in enumerate(classes)}
    return classes, torch.tensor([index[v] for v in values], dtype=torch.long)


def import_table_csv(data: bytes, name: str = "table", label_column: str | None = None,
                     owner: str = "") -> DatasetInfo:
    """Import a CSV of numeric feature columns plus one label column (default: 'label', else the last).

    Raises:
        DataError: not UTF-8, uneven rows, too few rows or classes, non-numeric / empty / infinite features,
            a missing label column, or a limit exceeded; the message names the row or column.
    """
    import pandas as pd

    df = _read_csv(data)
    if df.shape[1] < 2:
        sep = next((c for c in ";\t|" if c in str(df.columns[0])), None)
        hint = f" It seems to be separated by {sep!r}: save it with commas." if sep else ""
        raise DataError(f"the CSV needs at least one feature column and a label column; it has one column.{hint}")
    if label_column is None:
        label_column = "label" if "label" in df.columns else df.columns[-1]
    if label_column not in df.columns:
        raise DataError(f"no column named {label_column!r}; columns are: {', '.join(map(str, df.columns[:20]))}")
    feats = df.drop(columns=[label_column])
    for c in feats.columns:
        if pd.api.types.is_bool_dtype(feats[c]):
            feats[c] = feats[c].astype(np.float64)
    bad = [c for c in feats.columns if not pd.api.types.is_numeric_dtype(feats[c])]
    if bad:
        col = feats[bad[0]]
        numeric = pd.to_numeric(col, errors="coerce")
        where = np.flatnonzero(numeric.isna().to_numpy() & col.notna().to_numpy())
        example = f"row {where[0] + 2} holds {col.iloc[where[0]]!r}" if len(where) else "it is not numbers"
        raise DataError(f"feature column {bad[0]!r} is not numeric ({example}); convert it to numbers or drop it")
    values = feats.to_numpy(dtype=np.float64)
    if np.isnan(values).any():
        r, c = np.argwhere(np.isnan(values))[0]
        raise DataError(f"empty or NaN value in column {feats.columns[c]!r}, row {r + 2}; fill or drop such rows")
    if np.isinf(values).any():
        r, c = np.argwhere(np.isinf(values))[0]
        raise DataError(f"infinite value in column {feats.columns[c]!r}, row {r + 2}; replace it with a finite number")
    classes, y = _labels(df[label_column], label_column)
    mean, std = values.mean(0), values.std(0)
    if not (np.isfinite(mean).all() and np.isfinite(std).all()):
        raise DataError("the feature values are too large to standardise (beyond ±1e308); rescale them")
    std[std == 0] = 1.0
    x = torch.tensor((values - mean) / std, dtype=torch.float32)
    tr, te = _split(len(x))
    info = DatasetInfo(_new_id(name), safe_name(name), f"Uploaded table: {len(x)} rows, {x.shape[1]} features, {len(classes)} classes",
                       "tabular-classification", "tabular", (x.shape[1],), len(classes), tuple(classes), source="upload",
                       features=tuple(str(c) for c in feats.columns), feature_mean=tuple(mean.tolist()),
                       feature_std=tuple(std.tolist()))
    return _save(info, x[tr], y[tr], x[te], y[te], owner)


def _check_vocab(text_chars: set[str]) -> None:
    if len(text_chars) > MAX_VOCAB:
        raise DataError(f"the text uses {len(text_chars):,} distinct characters; a character model allows at most "
                        f"{MAX_VOCAB:,}")


def import_text_csv(data: bytes, name: str = "texts", owner: str = "") -> DatasetInfo:
    """Import a CSV with columns text,label as character-level sequence classification (texts cut at 256)."""
    from dlcore.data.builtin import text_classification, text_length

    df = _read_csv(data)
    lower = [str(c).strip().lower() for c in df.columns]
    for key in ("text", "label"):
        if lower.count(key) > 1:
            raise DataError(f"the CSV has {lower.count(key)} columns named {key!r} (ignoring case); keep one")
    cols = dict(zip(lower, df.columns))
    if "text" not in cols or "label" not in cols:
        raise DataError(f"the CSV needs columns named 'text' and 'label'; it has: {', '.join(map(str, df.columns[:20]))}")
    texts = df[cols["text"]].fillna("").astype(str).tolist()
    if not any(texts):
        raise DataError("every 'text' cell is empty")
    length = text_length(texts)
    need = len(texts) * length * 8  # int64 token ids once loaded for training (stored in 1-2 bytes each)
    if need > LIMITS.dataset_bytes:
        raise DataError(f"{len(texts):,} texts padded to {length} characters would take {_mb(need)} in "
                        f"memory for training; the limit is {_mb(LIMITS.dataset_bytes)} "
                        "(DLE_MAX_DATASET_MB): upload fewer or shorter texts")
    _check_vocab(set("".join(t[:256] for t in texts)))
    classes, y = _labels(df[cols["label"]], "label")
    del df
    ds = text_classification(texts, y.tolist(), classes, DataSpec(name="upload", val_fraction=0.0), _new_id(name),
                             safe_name(name), f"Uploaded texts: {len(texts)} rows, {len(classes)} classes", "upload",
                             compact=True)
    return _save(ds.info, *ds.train, *ds.test, owner=owner)


def import_text_corpus(data: bytes, name: str = "corpus", window: int = 64, owner: str = "") -> DatasetInfo:
    """Import a plain UTF-8 text file for a character language model.

    Args:
        window: context length in characters (2..1024, and at most LIMITS.seq_len).
    """
    from dlcore.data.builtin import char_corpus

    top = min(1024, LIMITS.seq_len)
    if isinstance(window, bool) or not isinstance(window, int) or not 2 <= window <= top:
        raise DataError(f"window must be a whole number 2..{top} (DLE_MAX_SEQ_LEN), got {window!r}")
    _check_size(data, "text file")
    text = _decode_text(data, "file")
    if len(text) > LIMITS.text_chars:
        raise DataError(f"the text has {len(text):,} characters; the limit is {LIMITS.text_chars:,} (DLE_MAX_TEXT_CHARS)")
    _check_vocab(set(text))
    need = 2 * len(text) * 8  # inputs and targets as int64 once loaded for training (stored in 1-2 bytes each)
    if need > LIMITS.dataset_bytes:
        raise DataError(f"the text's {len(text):,} characters would take {_mb(need)} in memory for "
                        f"training; the limit is {_mb(LIMITS.dataset_bytes)} (DLE_MAX_DATASET_MB)")
    ds = char_corpus(text, DataSpec(name="upload", window=window, val_fraction=0.0), _new_id(name), safe_name(name),
                     f"Uploaded text: {len(text):,} characters", "upload", compact=True)
    return _save(ds.info, *ds.train, *ds.test, owner=owner)


def load_user(spec: DataSpec) -> Dataset:
    """Load an uploaded dataset by id, splitting validation off its training part."""
    from safetensors import SafetensorError

    from dlcore.data.builtin import _finish

    info = user_info(spec.name)
    try:
        t = load_file(str(datasets_dir() / safe_name(spec.name) / "data.safetensors"))
        x_train, x_test = _widen(info, t["x_train"]), _widen(info, t["x_test"])
        return _finish(info, x_train, t["y_train"], x_test, t["y_test"], spec)
    except (OSError, SafetensorError, KeyError, RuntimeError) as e:
        raise DataError(f"the uploaded dataset {spec.name!r} is damaged ({type(e).__name__}); delete it and "
                        "upload it again") from e


def _widen(info: DatasetInfo, x: torch.Tensor) -> torch.Tensor:
    """Stored compact tensors as models read them: image bytes as float32 in [0, 1], token ids as int64
    (uploads saved before compact storage are float32 / int64 already and pass unchanged)."""
    if x.dtype == torch.uint8 and info.input_kind == "image":
        return x.to(torch.float32).div_(255.0)
    if info.input_kind == "tokens" and x.dtype in (torch.uint8, torch.int16, torch.int32):
        return x.long()
    return x


# uploads saved before DatasetInfo had typed fields kept them in a dict "extra" under these names
_LEGACY_EXTRA = {"n_train": "n_train", "pixel_mean": "pixel_mean", "pixel_std": "pixel_std", "features": "features",
                 "mean": "feature_mean", "std": "feature_std"}
_TUPLES = tuple(f.name for f in dataclasses.fields(DatasetInfo) if isinstance(f.default, tuple)) + ("input_shape",)


def _info_from_meta(meta: dict) -> DatasetInfo:
    extra = meta.pop("extra", None) or {}
    meta.update({_LEGACY_EXTRA[k]: v for k, v in extra.items() if k in _LEGACY_EXTRA})
    for k in _TUPLES:
        meta[k] = tuple(meta.get(k) or ())
    return DatasetInfo(**meta)


def user_info(name: str, spec: DataSpec | None = None) -> DatasetInfo:
    """The info of an uploaded dataset; DataError when it does not exist or its info.json is damaged.

    Args:
        spec: the cut whose training examples ``n_train`` counts (default: the whole set, DataSpec's split).
    """
    path = datasets_dir() / safe_name(name) / "info.json"
    if not safe_name(name).startswith("user-") or not path.exists():
        raise DataError(f"no uploaded dataset named {name[:80]!r}")
    try:
        info = _info_from_meta(json.loads(path.read_text()))
        spec = spec or DataSpec(name=name)
        return dataclasses.replace(info, n_train=n_train_after(info.n_train, spec.max_train, spec.val_fraction))
    except (OSError, ValueError, TypeError, AttributeError) as e:
        raise DataError(f"the uploaded dataset {name!r} is damaged ({type(e).__name__}); delete it and upload it "
                        "again") from e


def list_user(viewer: Viewer | None = None) -> list[DatasetInfo]:
    """Every uploaded dataset (damaged or half-written folders are skipped), or with ``viewer`` the ones
    that viewer may see: their own, the shared ones and the class-wide ones (``dlcore.access``)."""
    out = []
    for folder in sorted(datasets_dir().iterdir()):
        if folder.name.startswith("user-") and (folder / "info.json").exists():
            if viewer is not None and not _may(folder.name, viewer, "view"):
                continue
            try:
                out.append(user_info(folder.name))
            except DataError:
                continue  # a damaged folder is skipped, not fatal
    return out


def dataset_access(name: str) -> tuple[str, bool]:
    """``(owner, shared)`` of an uploaded dataset: ("", False) for one uploaded before owners existed, which
    belongs to the whole class."""
    try:
        meta = json.loads((datasets_dir() / safe_name(name) / _ACCESS).read_text())
        return str(meta.get("owner") or ""), bool(meta.get("shared"))
    except (OSError, ValueError, AttributeError):
        return "", False


def _may(name: str, viewer: Viewer | None, action: str) -> bool:
    from dlcore.access import AccessDenied, check_dataset

    try:
        check_dataset(*dataset_access(name), name, viewer, action)
        return True
    except AccessDenied:
        return False


def share_user(name: str, shared: bool = True, viewer: Viewer | None = None) -> None:
    """Share an uploaded dataset with the class (everyone may train on it) or take it back.

    Raises:
        DataError: no such dataset. AccessDenied: ``viewer`` is neither its owner nor a teacher.
    """
    from dlcore.access import check_dataset

    user_info(name)  # DataError when it does not exist
    owner, _ = dataset_access(name)
    check_dataset(owner, shared, name, viewer, "share")
    path = datasets_dir() / safe_name(name) / _ACCESS
    tmp = path.with_name(f".{_ACCESS}.tmp")
    tmp.write_text(json.dumps({"owner": owner, "shared": bool(shared)}))
    tmp.replace(path)  # atomic: a reader sees the old flag or the new one


def transfer_user_owner(old: str, new: str) -> int:
    """Give every upload of ``old`` to ``new`` (see ``RunStore.transfer_owner``); returns how many."""
    if not old or not new:
        raise ValueError("both owners must be named")
    moved = 0
    for folder in sorted(datasets_dir().iterdir()):
        if folder.name.startswith("user-") and dataset_access(folder.name)[0] == old:
            path = folder / _ACCESS
            tmp = path.with_name(f".{_ACCESS}.tmp")
            tmp.write_text(json.dumps({"owner": new, "shared": dataset_access(folder.name)[1]}))
            tmp.replace(path)
            moved += 1
    return moved


def delete_user(name: str, viewer: Viewer | None = None) -> None:
    """Remove an uploaded dataset (only folders named user-…, inside the datasets folder).

    Raises:
        AccessDenied: ``viewer`` is neither its owner nor a teacher (None: no check).
    """
    from dlcore.access import check_dataset

    folder = datasets_dir() / safe_name(name)
    if folder.name.startswith("user-") and folder.is_dir() and not folder.is_symlink():
        if viewer is not None:
            check_dataset(*dataset_access(name), name, viewer, "delete")
        shutil.rmtree(folder)


def dataset_version(name: str) -> float:
    """A cache key that changes when a dataset's files do: an upload's folder mtime, 0.0 for built-in sets
    (their content depends only on their name and the code)."""
    if not name.startswith("user-"):
        return 0.0
    try:
        return (datasets_dir() / safe_name(name)).stat().st_mtime
    except OSError:
        return 0.0
