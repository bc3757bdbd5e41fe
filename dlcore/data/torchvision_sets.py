"""Optional torchvision datasets (MNIST, Fashion-MNIST, CIFAR-10): used only when torchvision imports and
the files are cached or can be downloaded; otherwise a DataError that says so."""
from __future__ import annotations

import numpy as np
import torch

from dlcore.config import data_dir
from dlcore.data.base import DataError, Dataset, DatasetInfo

TV_SETS = {
    "tv-mnist": ("MNIST", "MNIST (torchvision)", "The full 70,000-digit MNIST, downloaded by torchvision",
                 tuple(str(i) for i in range(10))),
    "tv-fashion": ("FashionMNIST", "Fashion-MNIST (torchvision)", "70,000 28×28 clothing images, downloaded by torchvision",
                   ("T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")),
    "tv-cifar10": ("CIFAR10", "CIFAR-10 (torchvision)", "60,000 32×32 colour images in 10 classes, downloaded by torchvision",
                   ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")),
}


def load_torchvision(name: str, spec) -> Dataset:
    from dlcore.data.builtin import _finish

    cls_name, title, desc, classes = TV_SETS[name]
    try:
        import torchvision  # noqa: F401
        from torchvision import datasets as tvd
    except Exception as e:  # ImportError, or a torchvision built for another torch
        raise DataError(f"{title} needs torchvision, which is not usable here ({type(e).__name__}). "
                        "Install it with `pip install torchvision`, or use the offline 'mnist5k' set.") from e
    root = data_dir() / "torchvision"
    sets = []
    for train in (True, False):
        try:
            sets.append(getattr(tvd, cls_name)(str(root), train=train, download=True))
        except Exception as e:  # network errors take many forms (URLError, OSError, RuntimeError)
            raise DataError(f"could not download {title} ({type(e).__name__}): this machine may be offline. "
                            "Use the offline 'mnist5k' or 'digits' sets instead.") from e
    arrays = []
    for s in sets:
        x = np.asarray(s.data, dtype=np.float32) / 255.0
        x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
        arrays.append((torch.from_numpy(x.copy()), torch.as_tensor(np.asarray(s.targets), dtype=torch.long)))
    info = DatasetInfo(name, title, desc, "image-classification", "image", tuple(arrays[0][0].shape[1:]), 10, classes,
                       source="torchvision")
    return _finish(info, *arrays[0], *arrays[1], spec)
