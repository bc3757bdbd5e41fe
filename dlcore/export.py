"""Export a trained model: ONNX (via ``torch.export``), TorchScript, or safetensors + its JSON spec.

Every export takes raw inputs as the model does in the app (pixels in [0, 1], token ids, feature
rows: normalisation is inside the model) and returns the model's output only (logits, forecasts),
with a dynamic batch dimension. Each export can be checked against the PyTorch model on a batch size
it was not traced with: ONNX with onnxruntime, TorchScript by reloading it, safetensors by rebuilding
the model with ``dlcore.import_checkpoint``.

Example:
    >>> report = export_run(run_id, "onnx", "model.onnx")
    >>> report["max_abs_diff"] < 1e-4
    True

Command line: ``python -m dlcore export RUN_ID --format onnx|torchscript|safetensors --out PATH``; the app's
Runs page downloads :func:`export_run_bytes`.
"""
from __future__ import annotations

import contextlib
import io
import json
import logging
import tempfile
import warnings
import zipfile
from pathlib import Path

import torch
from torch import nn

from dlcore.models import ModelConfig, example_input, family_of, model_to_dict

FORMATS = ("onnx", "torchscript", "safetensors")
SUFFIX = {"onnx": ".onnx", "torchscript": ".pt", "safetensors": ".safetensors"}


class ExportError(ValueError):
    """The model cannot be exported in this format (a missing package, an unsupported layer, a bad path)."""


class OutputOnly(nn.Module):
    """``x -> output``: the model without its loss, for formats that want plain tensors out."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)[0]


def example_batch(config: ModelConfig, batch: int = 2, seed: int = 0) -> torch.Tensor:
    """A seeded batch of valid inputs for a model config: token ids below the vocabulary, else values in [0, 1)."""
    x = example_input(config, batch)
    g = torch.Generator().manual_seed(seed)
    if x.dtype == torch.long:
        return torch.randint(0, max(1, config.vocab_size), x.shape, generator=g)
    return torch.rand(x.shape, generator=g)


@contextlib.contextmanager
def _quiet():
    """torch.export / onnxscript print progress lines and warnings meant for their developers."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _prepare(model: nn.Module) -> OutputOnly:
    model = model.float().cpu().eval()
    return OutputOnly(model).eval()


def to_onnx(model: nn.Module, config: ModelConfig, path: str | Path, metadata: dict | None = None) -> Path:
    """Write an ONNX file (``torch.onnx.export(..., dynamo=True)``) with a dynamic batch dimension.

    Args:
        model: the trained module (``forward(x) -> (output, loss)``).
        config: its config, stored with ``metadata`` in the file's metadata_props.
        path: the .onnx file; weights go in the file itself up to 1.5 GB, else to ``path.data`` next to it.
    """
    try:
        import onnxscript  # noqa: F401  (the dynamo exporter's translation library)
    except ImportError as e:
        raise ExportError("ONNX export needs the onnx and onnxscript packages: pip install onnx onnxscript") from e
    path = Path(path)
    wrapper = _prepare(model)
    x = example_batch(config, 2)
    batch = torch.export.Dim("batch", min=1, max=65_536)
    try:
        with _quiet():
            program = torch.onnx.export(wrapper, (x,), dynamo=True, dynamic_shapes=({0: batch},), verbose=False,
                                        input_names=["input"], output_names=["output"])
    except Exception as e:
        raise ExportError(f"ONNX export of this {family_of(config)} failed: {type(e).__name__}: "
                          f"{str(e).strip().splitlines()[0][:300]}") from e
    program.model.metadata_props.update({"dlcore.model": json.dumps(model_to_dict(config)),
                                         **{f"dlcore.{k}": json.dumps(v) for k, v in (metadata or {}).items()}})
    big = sum(p.numel() * 4 for p in wrapper.parameters()) > 1.5 * 2**30  # protobuf files stop at 2 GB
    with _quiet():
        program.save(str(path), external_data=big)
    return path


def to_torchscript(model: nn.Module, config: ModelConfig, path: str | Path) -> Path:
    """Write a traced TorchScript module (``torch.jit.load(path)(x) -> output``)."""
    path = Path(path)
    wrapper = _prepare(model)
    try:
        with _quiet(), torch.no_grad():
            traced = torch.jit.trace(wrapper, example_batch(config, 2), check_trace=False)
        traced.save(str(path), _extra_files={"dlcore_model.json": json.dumps(model_to_dict(config))})
    except Exception as e:
        raise ExportError(f"TorchScript export of this {family_of(config)} failed: {type(e).__name__}: "
                          f"{str(e).strip().splitlines()[0][:300]}") from e
    return path


def to_safetensors(model: nn.Module, config: ModelConfig, path: str | Path, metadata: dict | None = None) -> list[Path]:
    """Write the weights (``path``) and the JSON spec that rebuilds the model (``path`` with .json).

    The pair is what ``dlcore.import_checkpoint(weights, spec_json)`` and the app's import read back.
    """
    from safetensors.torch import save_file

    path = Path(path)
    spec = {"model": model_to_dict(config), **(metadata or {})}
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(tensors, str(path), metadata={"dlcore": json.dumps(spec)})
    spec_path = path.with_suffix(".json")
    spec_path.write_text(json.dumps(spec, indent=1))
    return [path, spec_path]


def check_export(fmt: str, files: list[Path], model: nn.Module, config: ModelConfig) -> tuple[float, str]:
    """(max |exported − PyTorch|, what ran the export) on a batch of 3, a size the export was not traced at."""
    x = example_batch(config, 3, seed=1)
    with torch.no_grad():
        ref = _prepare(model)(x).numpy()
    if fmt == "onnx":
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise ExportError("checking an ONNX export needs onnxruntime: pip install onnxruntime "
                              "(or skip the check)") from e
        sess = ort.InferenceSession(str(files[0]), providers=["CPUExecutionProvider"])
        out, runner = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0], f"onnxruntime {ort.__version__}"
    elif fmt == "torchscript":
        with torch.no_grad():
            out, runner = torch.jit.load(str(files[0]))(x).numpy(), "torch.jit.load"
    else:
        from dlcore.runs.checkpoint import import_checkpoint

        _, rebuilt = import_checkpoint(files[0].read_bytes(), files[1].read_text())
        with torch.no_grad():
            out, runner = rebuilt(x)[0].numpy(), "dlcore.import_checkpoint"
    return float(abs(out - ref).max()), runner


def export_model(model: nn.Module, config: ModelConfig, fmt: str, out: str | Path, metadata: dict | None = None,
                 check: bool = True) -> dict:
    """Export a model in one of FORMATS; returns {'format', 'files', 'max_abs_diff', 'checked_with'}.

    Args:
        model, config: the module and the config that built it.
        fmt: 'onnx', 'torchscript' or 'safetensors'.
        out: output file; its folder is created.
        metadata: JSON-able extras stored with the model (data spec, class names, ...).
        check: compare the exported model's outputs with PyTorch's (max_abs_diff is None without).

    Raises:
        ExportError: unknown format, missing package, or an export failure (with the cause).
    """
    if fmt not in FORMATS:
        raise ExportError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    out = Path(out)
    if out.is_dir():
        raise ExportError(f"--out must be a file name, {out} is a folder (e.g. {out / ('model' + SUFFIX[fmt])})")
    out.parent.mkdir(parents=True, exist_ok=True)
    model = model.cpu().eval()
    if fmt == "onnx":
        files = [to_onnx(model, config, out, metadata)]
        if (data := out.with_name(out.name + ".data")).exists():
            files.append(data)
    elif fmt == "torchscript":
        files = [to_torchscript(model, config, out)]
    else:
        files = to_safetensors(model, config, out, metadata)
    report = {"format": fmt, "files": [str(f) for f in files], "max_abs_diff": None, "checked_with": None}
    if check:
        report["max_abs_diff"], report["checked_with"] = check_export(fmt, files, model, config)
    return report


def export_run(run_id: str, fmt: str, out: str | Path, store=None, check: bool = True) -> dict:
    """Export the latest checkpoint of a stored run (see :func:`export_model`), with its data spec and labels.

    Raises:
        RunNotFound: no such run. CheckpointError: the run has no checkpoint yet. ExportError: see export_model.
    """
    from dlcore.runs import load_run_model

    run, model = load_run_model(run_id, store)
    metadata = {"run_id": run.id, "data": run.data.to_dict(), "train": run.train.to_dict()}
    from dlcore.data import DataError, dataset_info

    try:
        info = dataset_info(run.data)
        metadata.update(class_names=list(info.class_names), vocab=list(info.vocab), task=info.task)
    except DataError:  # an upload deleted since training: the export still works, without labels
        pass
    return export_model(model, model.config, fmt, out, metadata, check)


def export_run_bytes(run_id: str, fmt: str, store=None) -> tuple[bytes, str]:
    """A stored run's export as the bytes of one file, for a download: (data, file extension).

    ONNX and TorchScript are one file each; safetensors is a zip of the weights and the JSON spec that
    rebuilds the model (``model.safetensors``, ``model.json``). Not checked against PyTorch (a download
    should not wait for onnxruntime); ``export_run`` checks.

    Raises:
        RunNotFound, CheckpointError, ExportError: as :func:`export_run`.
    """
    if fmt not in FORMATS:
        raise ExportError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    with tempfile.TemporaryDirectory(prefix="dle-export-") as tmp:
        report = export_run(run_id, fmt, Path(tmp) / f"model{SUFFIX[fmt]}", store=store, check=False)
        files = [Path(f) for f in report["files"]]
        if len(files) == 1:
            return files[0].read_bytes(), SUFFIX[fmt]
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for f in files:
                z.write(f, f.name)
        return buf.getvalue(), ".zip"
