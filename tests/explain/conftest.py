"""Fixtures: tiny seeded models of every family and inputs for them (see tests/inspect/tiny.py)."""
from tests.inspect.tiny import cnn, decoder, encoder, images, tokens, vit  # noqa: F401  (pytest fixtures)
