"""One way in: the checks every run passes before anything is written, whoever starts it.

``start_run`` (the app), ``start_distributed_run`` and the CLI's ``train`` (also under ``torchrun``, on
every rank) all call :func:`prepare_run`, so a run refused in one place is refused in all of them.

Example:
    >>> prepared = prepare_run(DataSpec(name="reverse"), get_preset("transformer-tiny"), TrainSpec(), nproc=2)
    >>> prepared.fit.fits, prepared.config.max_len
    (True, 8)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from dlcore.config import LIMITS
from dlcore.data import DatasetInfo, dataset_info
from dlcore.errors import ResourceError, TrainingError
from dlcore.models import ModelConfig, for_data
from dlcore.resources import FitReport, check_fit
from dlcore.specs import DataSpec, SpecError, TrainSpec, expect_spec, validate

# the DataSpec field that sets the sequence length of a task's examples (what to lower past the limit)
_LENGTH_FIELD = {"seq2seq": "seq_len", "forecasting": "window", "char-lm": "window"}


@dataclass(frozen=True)
class PreparedRun:
    """A run that passed every check, ready to be recorded and trained.

    Attributes:
        data, model, train: the validated specs (``model`` as given: the run store records it, and the
            trainer adapts it again to the data it loads).
        config: ``model`` adapted to the data (``for_data``).
        info: the dataset's description.
        fit: the fit check of one process's share of the batch.
        nproc: processes the run trains on.
    """
    data: DataSpec
    model: ModelConfig
    train: TrainSpec
    config: ModelConfig
    info: DatasetInfo
    fit: FitReport
    nproc: int = 1

    @property
    def default_name(self) -> str:
        """'cnn on digits', or 'cnn on digits × 2' for a distributed run; an upload by the name its owner gave
        it ('cnn on people', not 'cnn on user-people-2fe292')."""
        data = self.info.title if self.data.name.startswith("user-") and self.info.title else self.data.name
        name = f"{self.model.family} on {data}"
        return f"{name} × {self.nproc}" if self.nproc > 1 else name


def prepare_run(data: DataSpec, model: ModelConfig, train: TrainSpec, nproc: int = 1, store=None) -> PreparedRun:
    """Validate a run and decide whether this machine may train it, before anything is written.

    In order: every field of the three specs (types, ranges, choices); the number of processes against
    the batch; the model against the data (``for_data``); the sequence length against ``DLE_MAX_SEQ_LEN``;
    memory and time of one process's share of the batch against the device (``check_fit``).

    Args:
        data, model, train: the run's specs; ``train.batch_size`` is the global batch.
        nproc: processes that share each batch (``torchrun``'s world size); 1 for a single worker.
        store: the RunStore holding ``train.init_from`` (default: the data folder's).

    Raises:
        SpecError: a field out of range, a model that cannot read the data, or sequences past the limit
            (the message names the field to lower and the limit).
        TrainingError: fewer examples per batch than processes.
        ResourceError: the run would not fit the device or would take too long there.

    Example:
        >>> prepare_run(DataSpec(name="reverse"), get_preset("transformer-tiny"), TrainSpec())  # DLE_MAX_SEQ_LEN=4
        SpecError: the sequence length is 8; this server allows at most 4 (DLE_MAX_SEQ_LEN): lower seq_len
    """
    hint = "a model config: get_preset(name) or model_from_dict(d)"
    data = validate(expect_spec(data, DataSpec, "data"))
    model = validate(expect_spec(model, ModelConfig, "model", hint))
    train = validate(expect_spec(train, TrainSpec, "train"))
    if nproc < 1:
        raise TrainingError(f"nproc must be at least 1, got {nproc}")
    if train.batch_size < nproc:
        raise TrainingError(f"batch size {train.batch_size} is split across {nproc} processes; it must be at least "
                            f"{nproc}")
    info = dataset_info(data)
    config = for_data(model, info)
    _check_sequence_length(config, info)
    if (train.augment_shift > 0 or train.augment_degrees > 0) and info.input_kind != "image":
        raise SpecError("train.augment_shift", f"shifts and rotations are for images; {info.name}'s inputs are "
                        f"{info.input_kind}: set augment_shift and augment_degrees to 0")
    if train.init_from or train.freeze:  # transfer learning: the parent's weights fit, the freeze groups exist
        from dlcore.transfer import check_freeze, check_init

        if train.init_from:
            check_init(config, train.init_from, train.freeze, store=store)
        if train.freeze:
            check_freeze(config, train.freeze)
    # the largest share of a global batch split across nproc processes (tensor_split: sizes differ by one)
    per_process = train.replace(batch_size=math.ceil(train.batch_size / nproc))
    report = check_fit(model, info, per_process)
    if not report.fits:
        raise ResourceError(f"{report.message}. Try: {'; '.join(report.suggestions)}.")
    return PreparedRun(data, model, train, config, info, report, nproc)


def _check_sequence_length(config: ModelConfig, info: DatasetInfo) -> None:
    """Refuse sequences longer than LIMITS.seq_len (attention memory grows with its square)."""
    length, limit = config.sequence_length(info) or 0, LIMITS.seq_len
    if length > limit:
        field = _LENGTH_FIELD.get(info.task, "data")
        fix = f"lower {field}" if field != "data" else "use shorter sequences or a larger patch size"
        raise SpecError(field, f"the sequence length is {length}; this server allows at most {limit} "
                               f"(DLE_MAX_SEQ_LEN): {fix}")
