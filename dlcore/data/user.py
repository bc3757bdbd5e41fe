"""User datasets: image-folder zips, CSV tables, text,label CSVs and plain text — checked, converted to
tensors and stored as safetensors + JSON under the data folder. Files are read in memory and never
extracted, executed or unpickled; every problem is a ``DataError`` that says what to fix."""
from __future__ import annotations

import io
import json
import re
import stat
import uuid
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from dlcore.config import LIMITS, data_dir
from dlcore.data.base import DataError, Dataset, DatasetInfo
from dlcore.specs import DataSpec

IMAGE_EXT = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(name: str, fallback: str = "dataset") -> str:
    """A file-system-safe slug of a user-given name (no separators, no dots in front, ≤ 40 chars)."""
    slug = _SAFE.sub("-", name or "").strip("-.")[:40]
    return slug or fallback


def datasets_dir() -> Path:
    path = data_dir() / "datasets"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _check_size(data: bytes, what: str) -> None:
    if len(data) == 0:
        raise DataError(f"the {what} is empty")
    if len(data) > LIMITS.upload_bytes:
        raise DataError(f"the {what} is {len(data) / 2**20:.1f} MB; the limit is {LIMITS.upload_bytes / 2**20:.0f} MB")


def _save(info: DatasetInfo, xtr, ytr, xte, yte) -> DatasetInfo:
    """Write tensors and info atomically into a fresh folder named by the dataset id."""
    folder = datasets_dir() / info.name
    tmp = datasets_dir() / f".tmp-{info.name}"
    tmp.mkdir(parents=True, exist_ok=False)
    save_file({"x_train": xtr.contiguous(), "y_train": ytr.contiguous(), "x_test": xte.contiguous(),
               "y_test": yte.contiguous()}, str(tmp / "data.safetensors"))
    meta = {k: (list(v) if isinstance(v, tuple) else v) for k, v in info.__dict__.items()}
    (tmp / "info.json").write_text(json.dumps(meta))
    tmp.rename(folder)
    return info


def _new_id(name: str) -> str:
    return f"user-{safe_name(name)}-{uuid.uuid4().hex[:6]}"


def _split(n: int, seed: int = 0, test_fraction: float = 0.2):
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_test = max(1, int(n * test_fraction))
    return perm[n_test:], perm[:n_test]


def _zip_members(data: bytes) -> list[tuple[str, str, bytes]]:
    """(class, file name, bytes) for every image in a zip of class folders, refusing anything hostile."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except (zipfile.BadZipFile, EOFError, ValueError) as e:
        raise DataError(f"the file is not a readable zip archive ({e})") from e
    files = [i for i in infos if not i.is_dir()]
    if len(files) > LIMITS.zip_files:
        raise DataError(f"the zip holds {len(files)} files; the limit is {LIMITS.zip_files}")
    total = sum(i.file_size for i in files)
    if total > LIMITS.unzipped_bytes:
        raise DataError(f"the zip would unpack to {total / 2**20:.0f} MB; the limit is {LIMITS.unzipped_bytes / 2**20:.0f} MB")
    entries = []
    for i in files:
        name = i.filename.replace("\\", "/")
        path = PurePosixPath(name)
        if name.startswith("/") or re.match(r"^[A-Za-z]:", name) or ".." in path.parts:
            raise DataError(f"the zip entry {name!r} points outside its folder; such archives are refused")
        if stat.S_ISLNK(i.external_attr >> 16):
            raise DataError(f"the zip entry {name!r} is a symbolic link; such archives are refused")
        parts = [p for p in path.parts if p]
        if any(p.startswith(".") or p == "__MACOSX" for p in parts):
            continue
        if path.suffix.lower() not in IMAGE_EXT:
            continue
        entries.append((parts, i))
    if not entries:
        raise DataError("the zip holds no images; expected folders of images, one folder per class (cat/1.png, dog/2.png)")
    # one wrapping folder (my_data/cat/1.png) is allowed: drop it when every entry shares it
    while all(len(p) > 2 for p, _ in entries) and len({p[0] for p, _ in entries}) == 1:
        entries = [(p[1:], i) for p, i in entries]
    out, read = [], 0
    for parts, i in entries:
        if len(parts) < 2:
            raise DataError(f"the image {'/'.join(parts)!r} is not inside a class folder; put each image in a folder named after its class")
        with zf.open(i) as fh:
            blob = fh.read(i.file_size + 1)
        read += len(blob)
        if len(blob) > i.file_size or read > LIMITS.unzipped_bytes:
            raise DataError("the zip's entries are larger than they declare; the archive is refused")
        out.append((parts[-2], "/".join(parts), blob))
    return out


def import_image_zip(data: bytes, name: str = "images", image_size: int = 28) -> DatasetInfo:
    """Import a zip of class folders of images as an image-classification dataset (resized squares).

    Args:
        data: the zip file's bytes.
        name: a display name (sanitised).
        image_size: images are resized to image_size × image_size.

    Raises:
        DataError: corrupt zip, hostile entries, non-images, too few classes or images.
    """
    from PIL import Image, UnidentifiedImageError

    _check_size(data, "zip file")
    members = _zip_members(data)
    images, labels, modes = [], [], set()
    classes = sorted({c for c, _, _ in members})
    if len(classes) < 2:
        raise DataError(f"found only one class folder ({classes[0]!r}); a classifier needs at least two")
    for cls, fname, blob in members:
        try:
            with Image.open(io.BytesIO(blob)) as im:
                if im.width * im.height > LIMITS.image_pixels:
                    raise DataError(f"{fname!r} is {im.width}×{im.height} pixels; the limit is {LIMITS.image_pixels:,} pixels")
                im.load()
                modes.add("L" if im.mode in ("1", "L", "LA", "I", "I;16", "F") else "RGB")
                images.append(im.convert("RGB").resize((image_size, image_size)))
        except DataError:
            raise
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
            raise DataError(f"{fname!r} is not a readable image ({type(e).__name__}); remove it or re-save it as PNG/JPEG") from e
        labels.append(classes.index(cls))
    counts = np.bincount(labels, minlength=len(classes))
    if counts.min() < 2:
        raise DataError(f"class {classes[int(counts.argmin())]!r} has {counts.min()} image(s); each class needs at least 2")
    gray = modes == {"L"}
    arr = np.stack([np.asarray(im.convert("L") if gray else im, dtype=np.float32) / 255.0 for im in images])
    x = torch.from_numpy(arr[:, None] if gray else arr.transpose(0, 3, 1, 2).copy())  # (N, C, H, W)
    y = torch.tensor(labels, dtype=torch.long)
    tr, te = _split(len(x))
    info = DatasetInfo(_new_id(name), safe_name(name), f"Uploaded images: {len(x)} in {len(classes)} classes",
                       "image-classification", "image", tuple(x.shape[1:]), len(classes), tuple(classes), source="upload")
    return _save(info, x[tr], y[tr], x[te], y[te])


def _read_csv(data: bytes):
    import pandas as pd

    _check_size(data, "CSV file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"the CSV is not UTF-8 text (byte {e.start} is {data[e.start]:#04x}); save it as UTF-8") from e
    if "\x00" in text:
        raise DataError("the CSV contains NUL bytes: it looks like a binary file, not text")
    first = text.split("\n", 1)[0]
    if first.count(",") + 1 > LIMITS.csv_columns:
        raise DataError(f"the CSV has {first.count(',') + 1:,} columns; the limit is {LIMITS.csv_columns:,}")
    try:
        df = pd.read_csv(io.StringIO(text), nrows=LIMITS.csv_rows + 1)
    except pd.errors.EmptyDataError as e:
        raise DataError("the CSV is empty") from e
    except pd.errors.ParserError as e:
        raise DataError(f"the CSV's rows are uneven: {str(e).strip()}") from e
    if len(df) > LIMITS.csv_rows:
        raise DataError(f"the CSV has more than {LIMITS.csv_rows:,} rows")
    if len(df) < 4:
        raise DataError(f"the CSV has {len(df)} data rows; at least 4 are needed")
    return df


def _labels(series, where: str):
    if series.isna().any():
        raise DataError(f"the label column {where!r} has {int(series.isna().sum())} empty cell(s)")
    classes = sorted(series.astype(str).unique())
    if len(classes) < 2:
        raise DataError(f"the label column {where!r} holds a single class ({classes[0]!r}); a classifier needs at least two")
    return classes, torch.tensor([classes.index(v) for v in series.astype(str)], dtype=torch.long)


def import_table_csv(data: bytes, name: str = "table", label_column: str | None = None) -> DatasetInfo:
    """Import a CSV of numeric feature columns plus one label column (default: the last, or 'label')."""
    df = _read_csv(data)
    if df.shape[1] < 2:
        raise DataError("the CSV needs at least one feature column and a label column")
    if label_column is None:
        label_column = "label" if "label" in df.columns else df.columns[-1]
    if label_column not in df.columns:
        raise DataError(f"no column named {label_column!r}; columns are: {', '.join(map(str, df.columns[:20]))}")
    feats = df.drop(columns=[label_column])
    bad = [c for c in feats.columns if not np.issubdtype(feats[c].dtype, np.number)]
    if bad:
        raise DataError(f"feature column {bad[0]!r} is not numeric (e.g. {feats[bad[0]].iloc[0]!r}); "
                        "convert it to numbers or drop it")
    values = feats.to_numpy(dtype=np.float64)
    if np.isnan(values).any():
        r, c = np.argwhere(np.isnan(values))[0]
        raise DataError(f"empty or NaN value in column {feats.columns[c]!r}, row {r + 2}; fill or drop such rows")
    if np.isinf(values).any():
        r, c = np.argwhere(np.isinf(values))[0]
        raise DataError(f"infinite value in column {feats.columns[c]!r}, row {r + 2}")
    classes, y = _labels(df[label_column], label_column)
    mean, std = values.mean(0), values.std(0)
    std[std == 0] = 1.0
    x = torch.tensor((values - mean) / std, dtype=torch.float32)
    tr, te = _split(len(x))
    info = DatasetInfo(_new_id(name), safe_name(name), f"Uploaded table: {len(x)} rows, {x.shape[1]} features, {len(classes)} classes",
                       "tabular-classification", "tabular", (x.shape[1],), len(classes), tuple(classes), source="upload",
                       extra={"features": [str(c) for c in feats.columns], "mean": mean.tolist(), "std": std.tolist()})
    return _save(info, x[tr], y[tr], x[te], y[te])


def import_text_csv(data: bytes, name: str = "texts") -> DatasetInfo:
    """Import a CSV with columns text,label as character-level sequence classification."""
    from dlcore.data.builtin import text_classification

    df = _read_csv(data)
    cols = {str(c).strip().lower(): c for c in df.columns}
    if "text" not in cols or "label" not in cols:
        raise DataError(f"the CSV needs columns named 'text' and 'label'; it has: {', '.join(map(str, df.columns[:20]))}")
    texts = df[cols["text"]].fillna("").astype(str).tolist()
    if not any(texts):
        raise DataError("every 'text' cell is empty")
    classes, y = _labels(df[cols["label"]], "label")
    ds = text_classification(texts, y.tolist(), classes, DataSpec(name="upload", val_fraction=0.0), _new_id(name),
                             safe_name(name), f"Uploaded texts: {len(texts)} rows, {len(classes)} classes", "upload")
    return _save(ds.info, *ds.train, *ds.test)


def import_text_corpus(data: bytes, name: str = "corpus", window: int = 64) -> DatasetInfo:
    """Import a plain UTF-8 text file for a character language model."""
    from dlcore.data.builtin import char_corpus

    _check_size(data, "text file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"the file is not UTF-8 text (byte {e.start} is {data[e.start]:#04x}); is it a binary file?") from e
    if "\x00" in text:
        raise DataError("the file contains NUL bytes: it looks like a binary file, not text")
    if len(text) > LIMITS.text_chars:
        raise DataError(f"the text has {len(text):,} characters; the limit is {LIMITS.text_chars:,}")
    if len(set(text)) > 5000:
        raise DataError(f"the text uses {len(set(text)):,} distinct characters; a character model allows at most 5,000")
    ds = char_corpus(text, DataSpec(name="upload", window=window, val_fraction=0.0), _new_id(name), safe_name(name),
                     f"Uploaded text: {len(text):,} characters", "upload")
    return _save(ds.info, *ds.train, *ds.test)


def load_user(spec: DataSpec) -> Dataset:
    """Load an uploaded dataset by id, splitting validation off its training part."""
    from dlcore.data.builtin import _finish

    folder = datasets_dir() / safe_name(spec.name)
    if not (folder / "info.json").exists():
        raise DataError(f"no uploaded dataset named {spec.name!r}")
    info = user_info(spec.name)
    t = load_file(str(folder / "data.safetensors"))
    return _finish(info, t["x_train"], t["y_train"], t["x_test"], t["y_test"], spec)


def user_info(name: str) -> DatasetInfo:
    meta = json.loads((datasets_dir() / safe_name(name) / "info.json").read_text())
    for k in ("input_shape", "class_names", "vocab"):
        meta[k] = tuple(meta.get(k) or ())
    return DatasetInfo(**meta)


def list_user() -> list[DatasetInfo]:
    out = []
    for folder in sorted(datasets_dir().iterdir()):
        if folder.name.startswith("user-") and (folder / "info.json").exists():
            try:
                out.append(user_info(folder.name))
            except (ValueError, TypeError, OSError):
                continue  # a damaged folder is skipped, not fatal
    return out


def delete_user(name: str) -> None:
    import shutil

    folder = datasets_dir() / safe_name(name)
    if folder.name.startswith("user-") and folder.exists():
        shutil.rmtree(folder)
