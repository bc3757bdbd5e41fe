"""Tiny seeded runs for the compression and transfer tests (captum-style seed 1234)."""
from __future__ import annotations

import pytest
import torch

import dlcore
from tests.compress.tiny import TEACHER, tiny_train


@pytest.fixture(scope="session")
def store(tmp_path_factory):
    return dlcore.RunStore(tmp_path_factory.mktemp("compress-store"))


@pytest.fixture(scope="session")
def teacher_run(store):
    """A TEACHER run on digits (3 epochs), recorded in ``store``: (run id, result)."""
    from dlcore.transfer import fine_tune

    torch.manual_seed(1234)
    res = fine_tune(None, tiny_train(3), data=dlcore.DataSpec(name="digits"), model=TEACHER, store=store,
                    name="tiny teacher on digits")
    return res["run_id"], res
