"""Tiny configs and specs shared by the compression and transfer tests."""
from __future__ import annotations

import dlcore

# digits are 8×8: 'same' padding keeps them from vanishing in two conv blocks
TEACHER = dlcore.CNNConfig(channels=(16, 32), pools=(2, 2), padding="same", hidden=(64,))
STUDENT = dlcore.CNNConfig(channels=(4, 8), pools=(2, 2), padding="same", hidden=(16,))


def tiny_train(epochs: int = 2, seed: int = 0, **changes) -> dlcore.TrainSpec:
    return dlcore.TrainSpec(epochs=epochs, batch_size=64, lr=3e-3, seed=seed, device="cpu", precision="fp32",
                            **changes)
