"""Transfer learning: start a model from a finished run's weights, freeze layer groups, cut a dataset
down to some classes and a few labels per class.

Three pieces the trainer and the CLI combine (``TrainSpec.init_from`` / ``freeze``, ``DataSpec.classes`` /
``per_class``):

* :func:`init_weights` copies a run's weights into a freshly built model by name. The output layer is
  made new when the class count differs; any other weight that does not fit raises
  :class:`TransferError` naming the layer and both shapes.
* :func:`freeze` turns ``requires_grad`` off for layer groups (``"body"`` = all but the output layer,
  or layer names such as ``features.0``) and keeps their batch-norm statistics fixed, so frozen weights
  and buffers come out of training bit-identical.
* :func:`select_classes` / :func:`restrict_dataset` keep some classes (relabelled 0..k-1) and at most
  ``per_class`` labelled examples of each.

Example:
    >>> pre = restrict_dataset(load_dataset(DataSpec(name="mnist5k")), classes=(0, 1, 2, 3, 4))
    >>> few = restrict_dataset(load_dataset(DataSpec(name="mnist5k")), classes=(5, 6, 7, 8, 9), per_class=20)
    >>> t = Trainer(get_preset("seed-cnn"), few, TrainSpec(epochs=20))
    >>> init_weights(t.raw_model, parent_tensors)   # new 5-way head, every other layer from the parent
    >>> freeze(t.raw_model, ("body",))              # train the output layer only
    >>> t.fit()
"""
from __future__ import annotations

import dataclasses
import types
from typing import Iterable, Sequence

import torch
from torch import nn

from dlcore.specs import SpecError

BODY = "body"  # freeze group: every layer except the output layer
ALL = "all"  # freeze group: every layer (a model that only evaluates)


class TransferError(SpecError):
    """A run's weights cannot start this model, a freeze group names no layer, or a class does not exist.

    A SpecError of the field to change ('init_from', 'freeze', 'classes'), so forms and the CLI show it
    like any other invalid field.
    """

    def __init__(self, message: str, field: str = "init_from"):
        super().__init__(field, message)


# ---------------------------------------------------------------------------------------------- layers
def layers(model: nn.Module) -> list[str]:
    """Names of the parameterised leaf modules, in the order the model registers them.

    Example: seed-cnn -> ['features.0.0', 'features.1.0', 'features.2.0', 'head.1', 'head.3'].
    """
    return [name for name, mod in model.named_modules()
            if name and not list(mod.children()) and any(True for _ in mod.parameters(recurse=False))]


def output_layer(model: nn.Module) -> str:
    """The layer that produces the model's outputs: the last linear layer with ``num_outputs`` features.

    Every family ends in such a layer (CNN ``head.3``, RNN/Transformer ``head``, MLP ``layers.N``).
    """
    n_out = getattr(getattr(model, "config", None), "num_outputs", None)
    linear = [name for name, mod in model.named_modules() if isinstance(mod, nn.Linear)]
    fitting = [name for name in linear if n_out is None or model.get_submodule(name).out_features == n_out]
    if not fitting:
        raise TransferError("this model has no linear output layer to replace")
    return fitting[-1]


def _owner(param_name: str, names: Sequence[str]) -> str | None:
    """The layer (module name) a parameter or buffer belongs to."""
    mod = param_name.rsplit(".", 1)[0] if "." in param_name else ""
    return mod if mod in names else None


# ---------------------------------------------------------------------------------------------- weights
def init_weights(model: nn.Module, tensors: dict[str, torch.Tensor], *, new_head: bool | None = None) -> dict:
    """Copy a run's weights into ``model`` (in place, keeping the parameter objects an optimizer holds).

    Args:
        model: a freshly built model (its own init is kept for a new output layer).
        tensors: the parent's state dict, or a checkpoint's tensors (``model.`` prefixes and optimizer
            entries are handled).
        new_head: True forces a fresh output layer; None (default) makes one only when the parent's output
            layer has another shape (a different number of classes); False refuses that case.

    Returns:
        {'loaded': [names], 'new_head': the output layer's name or None}.

    Raises:
        TransferError: a weight is missing, left over, or has another shape — named with both shapes.
    """
    sd = {k[6:] if k.startswith("model.") else k: v for k, v in tensors.items() if not k.startswith("optim.")}
    own = model.state_dict()
    head = output_layer(model)
    head_keys = [k for k in own if k.rsplit(".", 1)[0] == head]
    head_differs = any(k in sd and tuple(sd[k].shape) != tuple(own[k].shape) for k in head_keys)
    fresh = head_differs if new_head is None else new_head
    if head_differs and new_head is False:
        k = head_keys[0]
        raise TransferError(f"the output layer {head} does not fit: the run's {k} is {tuple(sd[k].shape)}, this "
                            f"model's is {tuple(own[k].shape)} (another number of classes); allow a new head")
    keep = set(head_keys) if fresh else set()
    missing = [k for k in own if k not in sd and k not in keep]
    extra = [k for k in sd if k not in own]
    if missing or extra:
        what = []
        if missing:
            what.append(f"this model has {_layer_list(missing)} that the run lacks")
        if extra:
            what.append(f"the run has {_layer_list(extra)} that this model lacks")
        raise TransferError("the run's weights come from another architecture: " + "; ".join(what) +
                            ". Start from a run of the same model (or pick that run's model)")
    for k in own:
        if k in keep:
            continue
        if tuple(sd[k].shape) != tuple(own[k].shape):
            layer = k.rsplit(".", 1)[0]
            raise TransferError(f"layer {layer} does not fit: the run's {k} is {tuple(sd[k].shape)}, this model's is "
                                f"{tuple(own[k].shape)}. Use the run's model settings for every layer but the output")
        if sd[k].dtype.is_floating_point != own[k].dtype.is_floating_point:
            raise TransferError(f"layer {k.rsplit('.', 1)[0]}: the run's {k} is {sd[k].dtype}, "
                                f"this model's {own[k].dtype}")
    with torch.no_grad():
        for k, v in own.items():
            if k not in keep:
                v.copy_(sd[k])  # in place: the optimizer's parameter objects and their memory layout stay
    return {"loaded": [k for k in own if k not in keep], "new_head": head if fresh else None}


def _layer_list(keys: list[str]) -> str:
    layer_names = sorted({k.rsplit(".", 1)[0] for k in keys})
    shown = ", ".join(layer_names[:4]) + (f" and {len(layer_names) - 4} more" if len(layer_names) > 4 else "")
    return f"layer{'s' if len(layer_names) > 1 else ''} {shown}"


# ---------------------------------------------------------------------------------------------- freezing
def freeze_groups(model: nn.Module) -> list[str]:
    """The names :func:`freeze` accepts for this model: 'body', 'all', then every layer and its prefixes."""
    names = layers(model)
    prefixes = []
    for n in names:
        parts = n.split(".")
        for i in range(1, len(parts) + 1):
            p = ".".join(parts[:i])
            if p not in prefixes:
                prefixes.append(p)
    return [BODY, ALL, *prefixes]


def _resolve(model: nn.Module, groups: Iterable[str]) -> list[str]:
    names, head = layers(model), output_layer(model)
    chosen: list[str] = []
    for g in groups:
        g = g.strip()
        if not g:
            continue
        if g == BODY:
            hit = [n for n in names if n != head]
        elif g == ALL:
            hit = list(names)
        else:
            hit = [n for n in names if n == g or n.startswith(g + ".")]
        if not hit:
            raise TransferError(f"freeze group {g!r} names no layer of this model; groups: "
                                f"{', '.join(freeze_groups(model))}", "freeze")
        chosen += [n for n in hit if n not in chosen]
    return chosen


def freeze(model: nn.Module, groups: Iterable[str]) -> list[str]:
    """Stop training the layers of some groups; returns the names of the frozen parameters and buffers.

    Parameters get ``requires_grad=False``, so they get no gradient and optimizers (which skip parameters
    without a gradient, weight decay included) leave them exactly as they are, whether the optimizer was
    built before or after. Normalisation layers in a frozen group stay in eval mode through
    ``model.train()``, so their running statistics do not move either (the usual fine-tuning practice).

    Args:
        model: the model to change in place.
        groups: 'body' (all but the output layer), 'all', or layer names/prefixes (see :func:`freeze_groups`).

    Raises:
        TransferError: a group that names no layer (the message lists the groups).
    """
    chosen = _resolve(model, groups)
    frozen: list[str] = []
    for name in chosen:
        mod = model.get_submodule(name)
        for pname, p in mod.named_parameters(recurse=False):
            p.requires_grad_(False)
            frozen.append(f"{name}.{pname}")
        if isinstance(mod, nn.modules.batchnorm._NormBase):
            _pin_eval(mod)
            frozen += [f"{name}.{b}" for b, _ in mod.named_buffers(recurse=False)]
    return frozen


def _eval_only(self: nn.Module, mode: bool = True) -> nn.Module:
    return nn.Module.train(self, False)


def _pin_eval(mod: nn.Module) -> None:
    """Keep a module in eval mode whatever ``model.train()`` asks (its running statistics stay put).

    A bound method in the instance's dict: the parent's ``train(mode)`` calls ``child.train(mode)``, and
    ``copy.deepcopy`` re-binds it to the copy.
    """
    mod.train = types.MethodType(_eval_only, mod)
    mod.eval()


def trainable_share(model: nn.Module) -> tuple[int, int]:
    """(trainable parameters, all parameters)."""
    total = sum(p.numel() for p in model.parameters())
    return sum(p.numel() for p in model.parameters() if p.requires_grad), total


# ---------------------------------------------------------------------------------------------- data
def select_classes(x: torch.Tensor, y: torch.Tensor, classes: Sequence[int], per_class: int = 0,
                   seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The examples of some classes, relabelled to their position in ``classes``, at most ``per_class`` each.

    Which examples are kept depends only on (seed, class), not on the other classes chosen.

    Args:
        x, y: inputs and integer labels.
        classes: the original labels to keep, in the order that gives the new labels 0..k-1.
        per_class: cap per class (0 = all).
        seed: which examples a cap keeps.
    """
    classes = [int(c) for c in classes]
    if len(set(classes)) != len(classes):
        raise TransferError(f"classes must not repeat, got {classes}", "classes")
    keep = []
    for c in classes:
        idx = (y == c).nonzero().flatten()
        if per_class and len(idx) > per_class:
            g = torch.Generator().manual_seed(seed * 1_000_003 + c)
            idx = idx[torch.randperm(len(idx), generator=g)[:per_class]].sort().values
        keep.append(idx)
    idx = torch.cat(keep).sort().values if keep else torch.zeros(0, dtype=torch.long)
    size = max([int(y.max()) if len(y) else 0, *classes]) + 1
    remap = torch.full((size,), -1, dtype=torch.long)
    remap[torch.tensor(classes, dtype=torch.long)] = torch.arange(len(classes))
    return x[idx], remap[y[idx]].to(y.dtype)


def restrict_dataset(dataset, classes: Sequence[int], per_class: int = 0, seed: int = 0,
                     val_fraction: float | None = None):
    """A loaded classification Dataset cut to some classes and at most ``per_class`` labels of each.

    The cap applies to the labelled pool (training + validation); the validation share is split off
    that pool again, so "20 per class" means 20 labelled images in all. The test set keeps every example
    of the chosen classes. Class names and ``num_outputs`` follow the subset.

    Args:
        dataset: a ``dlcore.Dataset`` of an image/sequence/table classification task.
        classes: original labels to keep (new labels follow their order).
        per_class: labelled examples per class (0 = all).
        seed: which examples the cap keeps and how validation is split.
        val_fraction: validation share of the pool (default: the share the dataset had).
    """
    from dlcore.data.base import Dataset, split

    info = dataset.info
    if info.loss != "ce" or info.per_step:
        raise TransferError(f"a class subset needs a classification task; {info.name!r} is {info.task}", "classes")
    new_info = subset_info(info, classes)
    (xt, yt), (xv, yv) = dataset.train, dataset.val
    if val_fraction is None:
        val_fraction = len(xv) / max(len(xt) + len(xv), 1)
    x, y = select_classes(torch.cat([xt, xv]), torch.cat([yt, yv]), classes, per_class, seed)
    train, val = split(x, y, val_fraction, seed)
    test = select_classes(*dataset.test, classes, 0, seed)
    fields = {f.name for f in dataclasses.fields(info)}
    if "n_train" in fields:  # typed DatasetInfo (issue 9)
        new_info = dataclasses.replace(new_info, n_train=len(train[0]))
    if "extra" in fields:  # the dict DatasetInfo of before: a copy, not the cached dataset's own
        new_info = dataclasses.replace(new_info, extra={**info.extra, "n_train": len(train[0])})
    return Dataset(new_info, train, val, test)


def subset_info(info, classes: Sequence[int]):
    """A DatasetInfo cut to some classes: ``num_outputs`` and class names follow ``classes``' order.

    Raises:
        TransferError: a class the dataset does not have (field 'classes').
    """
    bad = [c for c in classes if not 0 <= int(c) < info.num_outputs]
    if bad:
        raise TransferError(f"class {bad[0]} is not a class of {info.name!r} (0..{info.num_outputs - 1})", "classes")
    names = tuple(info.class_names[int(c)] for c in classes) if info.class_names else ()
    return dataclasses.replace(info, num_outputs=len(classes), class_names=names)


# ---------------------------------------------------------------------------------------------- runs
def start_from(trainer, tensors: dict[str, torch.Tensor], groups: Sequence[str] = (),
               new_head: bool | None = None) -> dict:
    """Give a constructed Trainer a run's weights and freeze some groups, before its first step.

    The weights are copied into the trainer's model in place, so the optimizer it built holds them; frozen
    parameters get no gradient, so that optimizer leaves them as they are. Returns
    :func:`init_weights`' report plus 'frozen' (names) and 'trainable' (parameter count).
    """
    if getattr(trainer, "world_size", 1) > 1 and groups:  # DDP registers its gradient hooks at wrap time
        raise TransferError("freezing layers of a distributed run must happen before DistributedDataParallel "
                            "wraps the model (in the Trainer)", "freeze")
    model = getattr(trainer, "raw_model", trainer.model)
    report = init_weights(model, tensors, new_head=new_head)
    report["frozen"] = freeze(model, groups) if groups else []
    report["trainable"] = trainable_share(model)[0]
    return report


def check_init(config, run_id: str, groups: Sequence[str] = (), info=None, store=None) -> dict:
    """Refuse, before anything trains, a start from a run whose weights do not fit ``config``.

    The parent's checkpoint is matched against ``config`` built on the meta device (no memory), and the
    freeze groups are resolved, so the error names the layer (or group) before a worker starts.

    Args:
        config: the new run's model config (adapted to its data: its output layer has the new class count).
        run_id: the run to start from (completed, with a checkpoint).
        groups: the freeze groups.
        info: the new run's DatasetInfo, to adapt ``config`` with ``for_data`` first (optional).

    Raises:
        TransferError: an unknown or unfinished run, weights that do not fit, an unknown freeze group.
    """
    from dlcore.models import for_data
    from dlcore.models.summary import build_meta_model
    from dlcore.runs import RunStore
    from dlcore.runs.checkpoint import load_checkpoint

    store = store or RunStore()
    try:
        run = store.get(run_id)
    except KeyError:
        raise TransferError(f"init_from: no run with id {run_id!r}") from None
    if run.status != "completed":
        raise TransferError(f"init_from: run {run_id} is {run.status}; start from a completed run")
    tensors, _ = load_checkpoint(store.run_dir(run_id))
    if info is not None:
        config = for_data(config, info)
    model = build_meta_model(config)
    with torch.device("meta"):
        report = init_weights(model, tensors)  # copy_ onto meta tensors checks shapes and moves nothing
        report["frozen"] = freeze(model, groups) if groups else []
    return report


def parent_tensors(run_id: str, store) -> dict[str, torch.Tensor]:
    """The weights a run with ``TrainSpec.init_from = run_id`` starts from (the parent's checkpoint tensors).

    Used by the worker and the distributed followers when the run does not resume from its own checkpoint.

    Raises:
        TransferError: the parent is gone or its checkpoint cannot be read.
    """
    from dlcore.runs.checkpoint import CheckpointError, load_checkpoint

    try:
        tensors, _ = load_checkpoint(store.run_dir(run_id))
    except (CheckpointError, OSError, KeyError) as e:
        raise TransferError(f"init_from: the weights of run {run_id} cannot be read ({e})") from e
    return tensors


def check_freeze(config, groups: Sequence[str], info=None) -> list[str]:
    """Refuse freeze groups that name no layer of ``config``'s model, or that leave nothing to train.

    The model is built on the meta device (no memory). Returns the frozen parameter and buffer names.

    Raises:
        TransferError: field 'freeze'.
    """
    from dlcore.models import for_data
    from dlcore.models.summary import build_meta_model

    if info is not None:
        config = for_data(config, info)
    model = build_meta_model(config)
    frozen = freeze(model, groups)
    if not any(p.requires_grad for p in model.parameters()):
        raise TransferError(f"freeze {', '.join(groups)} leaves no layer to train", "freeze")
    return frozen


def fine_tune(parent_id: str | None, train, *, classes: Sequence[int] = (), per_class: int = 0,
              groups: Sequence[str] = (), data=None, model=None, store=None, name: str | None = None) -> dict:
    """Train a new run that starts from a finished run's weights; returns its facts.

    The new run has the parent's model (a new output layer when the class count differs), ``data``
    (default: the parent's data spec) cut to ``classes`` with at most ``per_class`` labels each, and
    ``train``; its lineage names the parent. Without a parent (``parent_id=None``) it trains the same
    model from scratch on the same data: the comparison the transfer demonstration shows.

    Args:
        parent_id: the run to start from, or None for from-scratch.
        train: the TrainSpec of the new run.
        classes, per_class: the class subset (original labels) and the labels per class (0 = all).
        groups: freeze groups (see :func:`freeze`); 'body' trains the output layer only.
        data: a DataSpec (default: the parent's; required without a parent).
        model: the model config to train from scratch (without a parent; default: none).
        store: the RunStore.

    Raises:
        TransferError: weights that do not fit (named), a freeze group or class that does not exist.
    """
    from dlcore.compress._core import _to_contiguous, save_run
    from dlcore.data import load_dataset
    from dlcore.runs import RunStore, load_run_model
    from dlcore.train import Trainer

    store = store or RunStore()
    if parent_id is None:
        if model is None or data is None:
            raise TransferError("training from scratch needs a model config and a data spec")
        parent, config, tensors = None, model, None
    else:
        parent, pmodel = load_run_model(parent_id, store)
        config, tensors = pmodel.config, pmodel.state_dict()
    data = data or parent.data
    dataset = load_dataset(data)
    if classes:
        dataset = restrict_dataset(dataset, classes, per_class, seed=data.seed, val_fraction=data.val_fraction)
    trainer = Trainer(config, dataset, train)
    report = start_from(trainer, tensors, groups) if tensors is not None else {"frozen": [], "new_head": None}
    fit = trainer.fit()
    trained = _to_contiguous(getattr(trainer, "raw_model", trainer.model)).eval()
    options = {"classes": list(classes), "per_class": per_class, "freeze": list(groups)}
    lineage = {"parent": parent.id, "method": "fine-tune", "options": options} if parent else None
    what = f"{', '.join(map(str, classes))}" if classes else data.name
    label = name or (f"fine-tune of {parent.name} on {what}" if parent else f"from scratch on {what}") + \
        (f", {per_class}/class" if per_class else "") + (f", frozen: {', '.join(groups)}" if groups else "")
    test = {k: v for k, v in fit.items() if k.startswith("test_")}
    run_id = save_run(store, data, trainer.config, train, trained, {**fit, "new_head": report["new_head"],
                      "frozen": len(report["frozen"])}, trainer.history, label, lineage)
    return {"run_id": run_id, "parent": parent.id if parent else None, **test, "history": trainer.history,
            "frozen": report["frozen"], "new_head": report["new_head"]}


# ---------------------------------------------------------------------------------------------- the demonstration
DEMO_PREFIX = "Transfer demo: "
DEMO_OLD, DEMO_NEW = (0, 1, 2, 3, 4), (5, 6, 7, 8, 9)


@dataclasses.dataclass(frozen=True)
class TransferDemo:
    """The three runs of the built-in transfer demonstration (ids, or "" while not started) and where it is.

    ``pretrain`` learns digits 0–4 of mnist5k with all their labels; ``finetune`` starts from it and learns
    5–9 from ``per_class`` labels each; ``scratch`` learns the same 5–9 labels from random weights with the
    same recipe, epochs and seed. ``stage`` says in words what happens now.
    """
    pretrain: str
    finetune: str
    scratch: str
    per_class: int
    stage: str


def _demo_specs(per_class: int, epochs: int, seed: int):
    from dlcore.models import PRESETS
    from dlcore.specs import DataSpec, TrainSpec

    preset = PRESETS["seed-cnn"]
    train = TrainSpec(seed=seed).replace(**preset.train)
    return (preset.config, DataSpec(name="mnist5k", classes=DEMO_OLD), train.replace(epochs=5),
            DataSpec(name="mnist5k", classes=DEMO_NEW, per_class=per_class), train.replace(epochs=epochs))


def demo_names(per_class: int) -> tuple[str, str, str]:
    """The names of the demonstration's runs (how :func:`transfer_demo` finds them again)."""
    return (f"{DEMO_PREFIX}pretrain on digits 0–4", f"{DEMO_PREFIX}fine-tune on 5–9, {per_class}/class",
            f"{DEMO_PREFIX}from scratch on 5–9, {per_class}/class")


def transfer_demo(start: bool = False, per_class: int = 10, epochs: int = 30, seed: int = 0, owner: str = "",
                  store=None) -> TransferDemo:
    """Find, start or advance the one-click transfer demonstration of ``owner``; safe to call on every rerun.

    With ``start``, the pretraining and the from-scratch runs start (unless this owner already has them). Once
    the pretraining has completed, the fine-tuning run starts from it (at the next call). Defaults measured
    with ``python bench/bench_compress.py transfer`` (seed-cnn, its recipe, 30 epochs, seeds 0–2): at 10
    labels per class fine-tuning everything reaches 0.857 test accuracy against 0.811 from scratch.

    Raises:
        SpecError, ResourceError: a run cannot start (``start_run``'s errors).
    """
    from dlcore.runs import RunStore
    from dlcore.train.jobs import list_runs, start_run

    store = store or RunStore()
    model, pre_data, pre_train, new_data, new_train = _demo_specs(per_class, epochs, seed)
    pre_name, ft_name, scratch_name = demo_names(per_class)
    mine = [r for r in list_runs(store, owner=owner) if r.name.startswith(DEMO_PREFIX)]
    usable = [r for r in mine if r.status not in ("failed", "cancelled")]

    def newest(name, parent=None):
        return next((r for r in usable if r.name == name and (parent is None or r.parent == parent)), None)

    pre, scratch = newest(pre_name), newest(scratch_name)
    if start and pre is None:
        pre = store.get(start_run(pre_data, model, pre_train, name=pre_name, store=store, owner=owner))
    if start and scratch is None:
        scratch = store.get(start_run(new_data, model, new_train, name=scratch_name, store=store, owner=owner))
    ft = newest(ft_name, parent=pre.id) if pre else None
    if pre is not None and pre.status == "completed" and ft is None and (start or scratch is not None):
        ft = store.get(start_run(new_data, model, new_train.replace(init_from=pre.id), name=ft_name, store=store,
                                 owner=owner))
    if pre is None:
        stage = "not started"
    elif pre.status != "completed":
        stage = f"pretraining on digits 0–4 ({pre.progress:.0%})"
    elif ft is not None and ft.status != "completed" or scratch is not None and scratch.status != "completed":
        stage = "fine-tuning and training from scratch on 5–9"
    else:
        stage = "done"
    return TransferDemo(pre.id if pre else "", ft.id if ft else "", scratch.id if scratch else "", per_class, stage)


__all__ = ["TransferError", "BODY", "ALL", "layers", "output_layer", "init_weights", "freeze", "freeze_groups",
           "trainable_share", "select_classes", "restrict_dataset", "subset_info", "start_from", "check_init",
           "check_freeze", "parent_tensors", "fine_tune", "TransferDemo", "transfer_demo", "demo_names"]
