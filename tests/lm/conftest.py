"""Fixtures: a random tiny decoder and a trained reverse model (see tests/lm/tiny_lm.py)."""
from tests.lm.tiny_lm import lm, reverse_model  # noqa: F401  (pytest fixtures)
