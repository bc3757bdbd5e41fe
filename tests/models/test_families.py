"""The family registry: a family registered in one module works everywhere; families own their behaviour;
fields set from the data are marked; configs say what differs from the defaults; runs name their preset."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest
import torch
from torch import nn

import dlcore
from dlcore import (PRESETS, CNNConfig, MLPConfig, RNNConfig, SpecError, TrainSpec, TransformerConfig, build_model,
                    for_data, get_preset, model_from_dict, model_to_dict, preset_of, summarize)
from dlcore.models import FAMILIES, VIEWS, ModelConfig, count_params, register_family, unregister_family
from dlcore.models._common import compute_loss
from dlcore.specs import data_fields, field_specs, spec_field


# ---------------------------------------------------------------- a toy family, registered here only
class Bag(nn.Module):
    """Averages the steps (or pixels) of its input, then one linear layer: the smallest sequence model."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.head = nn.Linear(config.width, config.num_outputs)

    def forward(self, x, targets=None):
        h = x.reshape(len(x), -1, self.config.width).mean(1)  # (B, width)
        out = self.head(h)
        return out, compute_loss(out, targets, self.config.loss)


@pytest.fixture
def toy():
    @register_family("bag", label="Bag of steps", module=Bag)
    @dataclass(frozen=True)
    class BagConfig(ModelConfig):
        width: int = spec_field(4, range=(1, 4096), from_data=True, help="features per step")
        num_outputs: int = spec_field(2, range=(1, 1000), from_data=True, help="classes")
        loss: str = spec_field("ce", choices=("ce", "mse"), from_data=True, help="loss")
        steps: int = spec_field(8, range=(1, 4096), from_data=True, help="steps read")

        def adapt(self, info):
            if info.input_kind != "sequence":
                raise SpecError("family", f"a bag of steps reads sequences; {info.name!r} holds {info.input_kind}")
            steps, width = info.input_shape
            return self.replace(width=width, steps=steps, **self._outputs(info))

        def example_input(self, batch=1, device="cpu", seq_len=None):
            return torch.zeros(batch, seq_len or self.steps, self.width, device=device)

        def sequence_length(self, info):
            return info.input_shape[0]

        def views(self):
            return frozenset({"explain"})

    try:
        yield BagConfig
    finally:
        unregister_family("bag")


def test_a_family_registered_in_its_own_module_works_end_to_end(toy, make_info):
    assert FAMILIES["bag"].label == "Bag of steps" and FAMILIES["bag"].module is Bag
    assert "bag" in [f.name for f in dlcore.list_families()] and toy.family == "bag"
    info = make_info("sequence", (6, 3), 4)
    cfg = for_data(toy(), info)
    assert (cfg.width, cfg.steps, cfg.num_outputs) == (3, 6, 4)
    model = build_model(cfg)
    assert isinstance(model, Bag) and model.config == cfg
    s = summarize(cfg)
    assert s.params == count_params(model) == 3 * 4 + 4
    assert s.flops_per_sample == cfg.flops_per_sample() == 2 * 3 * 4
    assert cfg.sequence_length(info) == 6
    out, loss = model(torch.randn(5, 6, 3), torch.randint(0, 4, (5,)))
    assert out.shape == (5, 4) and torch.isfinite(loss)
    assert model_from_dict(model_to_dict(cfg)) == cfg  # what the run store and checkpoints do
    assert preset_of(cfg) == "custom" and dlcore.presets_of("bag") == []
    assert cfg.view_unavailable("explain") is None
    assert cfg.view_unavailable("embeddings") == f"this view needs {VIEWS['embeddings']}"
    assert [f.name for f in field_specs(toy) if not f.from_data] == []
    with pytest.raises(SpecError, match="bag of steps reads sequences") as err:
        for_data(cfg, make_info("image", (1, 8, 8)))
    assert err.value.field == "family"


def test_an_unregistered_family_is_gone_and_a_taken_name_is_refused(toy):
    with pytest.raises(ValueError, match="'cnn' is already registered"):
        register_family("cnn", label="Other", module=Bag)(toy)
    unregister_family("bag")
    assert "bag" not in FAMILIES
    with pytest.raises(SpecError, match="family must be one of cnn, rnn, transformer, mlp, got 'bag'"):
        model_from_dict({"family": "bag", "config": {}})


def test_the_four_families_register_themselves_in_order():
    assert [(f.name, f.label) for f in dlcore.list_families()][:4] == [
        ("cnn", "CNN"), ("rnn", "RNN"), ("transformer", "Transformer"), ("mlp", "MLP")]
    for fam in dlcore.list_families():
        assert fam.config.family == fam.name and issubclass(fam.module, nn.Module)


# ---------------------------------------------------------------- families own their behaviour
def test_views_follow_the_family():
    def ok(cfg):
        return {v for v in VIEWS if cfg.view_unavailable(v) is None}

    assert ok(CNNConfig()) == {"filters", "embeddings", "explain"}
    assert ok(RNNConfig()) == {"rnn", "embeddings", "explain"}
    assert ok(RNNConfig(per_step=True)) == {"rnn", "explain"}
    assert ok(TransformerConfig()) == {"attention", "embeddings", "explain"}
    assert ok(TransformerConfig(kind="vit")) == {"attention", "filters", "embeddings", "explain"}
    assert ok(MLPConfig(loss="mse")) == {"explain"}
    assert CNNConfig().view_unavailable("attention") == "this view needs a Transformer (encoder, ViT or decoder)"
    with pytest.raises(ValueError, match="unknown view 'x'"):
        CNNConfig().view_unavailable("x")


def test_sequence_length_is_what_the_model_reads(make_info):
    rows, tokens, table = make_info("image", (1, 12, 12)), make_info("tokens", (9,), 3, None, 5), make_info("tabular", (4,))
    assert RNNConfig().sequence_length(rows) == 12 and RNNConfig().sequence_length(tokens) == 9
    assert TransformerConfig().sequence_length(tokens) == 9
    vit = TransformerConfig(kind="vit", image_size=25, patch_size=5)  # 12 is cut into 3×3 patches of 4 (the largest divisor ≤ 5)
    assert vit.sequence_length(rows) == for_data(vit, rows).seq_len == 3 * 3 + 1
    assert CNNConfig().sequence_length(rows) is None and MLPConfig().sequence_length(table) is None


def test_recurrent_flops_are_extrapolated_exactly(make_info):
    cfg = for_data(get_preset("rnn-tiny"), make_info("sequence", (30, 5)))
    assert cfg.flops_per_sample(30) == summarize(cfg, seq_len=30).flops_per_sample
    assert cfg.flops_per_sample(30) > cfg.flops_per_sample(10) > 0


def test_example_inputs_are_what_each_model_reads(make_info):
    for template, args in [(CNNConfig(channels=(4,), pools=(1,), hidden=()), ("image", (3, 8, 8))),
                           (RNNConfig(hidden_size=4, num_layers=1), ("tokens", (7,), 3, None, 5)),
                           (TransformerConfig(d_model=16, n_heads=2, n_layers=1, d_ff=16), ("sequence", (7, 2))),
                           (MLPConfig(hidden=(4,)), ("tabular", (6,)))]:
        info = make_info(*args)
        cfg = for_data(template, info)
        x = cfg.example_input(2, seq_len=cfg.sequence_length(info))
        assert tuple(x.shape) == (2, *info.input_shape)
        assert build_model(cfg)(x)[0].shape[0] == 2


# ---------------------------------------------------------------- fields set from the data are marked
FAMILY_INFOS = [("image", (3, 32, 32), 4), ("sequence", (7, 5), 3), ("tokens", (6,), 10, "seq2seq", 10),
                ("tokens", (9,), 7, "char-lm", 7), ("sequence", (12, 1), 2, "forecasting"), ("tabular", (5,), 3)]
TEMPLATES = {"cnn": [CNNConfig()], "rnn": [RNNConfig()], "mlp": [MLPConfig()],
             "transformer": [TransformerConfig(), TransformerConfig(kind="vit"),
                             TransformerConfig(kind="decoder", vocab_size=2)]}


def _others(f, value):
    """Other valid values of a field, to try in turn."""
    if f.kind == "bool":
        return [not value]
    if f.choices:
        return [c for c in f.choices if c != value]
    lo, hi = f.range
    if f.kind == "float":
        return [(value + hi) / 2 if value < hi else (lo + value) / 2]
    return [v for v in (value + 1, value * 2, value - 1) if lo <= v <= hi and v != value]


@pytest.mark.parametrize("family", list(TEMPLATES))
def test_exactly_the_fields_marked_from_data_are_filled_in_from_it(family, make_info):
    """for_data overwrites every marked field (for some dataset: token inputs leave input_size alone) and keeps
    every other one (a ViT's patch size excepted: it is lowered to divide the image)."""
    specs = {f.name: f for f in field_specs(FAMILIES[family].config)}
    overwritten = set()
    for template in TEMPLATES[family]:
        for args in FAMILY_INFOS:
            info = make_info(*args)
            try:
                cfg = for_data(template, info)
            except SpecError:
                continue
            for name, f in specs.items():
                if name == "patch_size" or f.is_tuple or (name in ("vocab_size", "kind") and getattr(template, "kind", "") == "decoder"):
                    continue  # layer lists are never from the data; a decoder needs vocab_size ≥ 1 and its kind
                moved = None
                for value in _others(f, getattr(template, name)):
                    try:
                        moved = for_data(template.replace(**{name: value}), info)
                        break
                    except SpecError:
                        continue  # a cross-field rule (patch size must divide the image size)
                if moved is not None and getattr(moved, name) == getattr(cfg, name):
                    overwritten.add(name)  # whatever the user chose, the data decided
    assert overwritten == {n for n, f in specs.items() if f.from_data}


def test_the_data_mark_lives_in_the_metadata_not_the_help_text():
    for fam in dlcore.list_families():
        for f in field_specs(fam.config):
            assert "set from the data" not in f.help
    assert {"num_outputs", "loss", "in_channels", "image_size", "input_mean", "input_std"} == data_fields(CNNConfig)
    assert not any(f.from_data for f in field_specs(TrainSpec))


# ---------------------------------------------------------------- diff(): what differs from the defaults
def test_diff_lists_the_fields_that_differ_from_the_defaults():
    assert TrainSpec().diff() == {} and TrainSpec(epochs=3, lr=0.01).diff() == {"epochs": 3, "lr": 0.01}
    cfg = CNNConfig(channels=(8, 16), pools=(2, 2), in_channels=3)
    assert cfg.diff() == {"channels": [8, 16], "pools": [2, 2], "in_channels": 3}  # JSON-ready, like to_dict
    assert cfg.diff(include_data=False) == {"channels": [8, 16], "pools": [2, 2]}
    assert CNNConfig.from_dict(cfg.diff()) == cfg


def test_an_adapted_preset_differs_from_its_preset_only_in_data_fields(dataset):
    p = PRESETS["rnn-forecast"]
    cfg = for_data(p.config, dataset(p.data).info)
    assert cfg.diff().keys() - p.config.diff().keys() == {"input_size", "num_outputs", "loss"}
    assert cfg.diff(include_data=False) == p.config.diff(include_data=False)


# ---------------------------------------------------------------- preset_of
@pytest.mark.parametrize("name", [n for n in PRESETS if not n.endswith("-xl")])
def test_a_run_of_a_preset_is_named_after_it(name, dataset):
    p = PRESETS[name]
    assert preset_of(for_data(p.config, dataset(p.data).info)) == name
    assert preset_of(p.config) == name


def test_preset_of_sees_real_changes_and_ignores_the_adapted_patch(dataset):
    digits = dataset("digits").info
    vit = for_data(get_preset("vit-tiny"), digits)
    assert vit.patch_size == 4 and preset_of(vit) == "vit-tiny"  # 7 was lowered to divide 8
    assert preset_of(vit.replace(patch_size=2)) == "custom"
    mnist = dataset("mnist5k").info
    assert preset_of(for_data(get_preset("cnn-tiny"), mnist).replace(dropout=0.2)) == "custom"
    assert preset_of(get_preset("seed-lstm").replace(cell="gru")) == "custom"


@pytest.mark.parametrize("changes, length", [({}, 28), ({"cell": "gru", "bidirectional": True}, 40),
                                             ({"per_step": True, "num_layers": 3}, 33)])
def test_recurrent_summaries_extrapolated_from_two_short_lengths_are_exact(changes, length):
    from dlcore.models.summary import _measure, summarize

    info = dlcore.dataset_info("mnist-rows")
    config = dlcore.models.for_data(dlcore.get_preset("seed-lstm").replace(**changes), info)
    fast, exact = summarize(config, seq_len=length), _measure(config, length)
    assert fast == exact
