"""The vision task: a small CNN classifier on scikit-learn's bundled digits or a CIFAR-10 folder.

``builtin:digits`` needs scikit-learn (``pip install "ademix-sweep[vision]"``): 1,797 8×8 images,
a fixed 80/20 split. A path names CIFAR-10's python-pickle folder (``data_batch_1``...``_5`` for
training, ``test_batch`` for validation); it is read with an unpickler that builds only plain
containers and NumPy arrays, so a tampered file cannot run code. No torchvision.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .base import data_path
from .errors import TaskError, fingerprint

if TYPE_CHECKING:
    from ademix_sweep.sweepfile.sections import VisionTask


@dataclass(frozen=True)
class Images:
    x: torch.Tensor  # (N, C, H, W) float32, normalised with training statistics
    y: torch.Tensor  # (N,) int64


class SmallCNN(nn.Module):
    """3×3 conv + ReLU blocks, each halving the image while it is at least 2 pixels, then an MLP head."""

    def __init__(self, in_channels: int, size: int, channels: list[int], hidden: int, classes: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for out in channels:
            layers += [nn.Conv2d(in_channels, out, 3, padding=1), nn.ReLU()]
            if size >= 2:
                layers.append(nn.MaxPool2d(2))
                size //= 2
            in_channels = out
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(in_channels * size * size, hidden), nn.ReLU(), nn.Linear(hidden, classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # (B, classes)


class VisionClassificationTask:
    """Image classification; loss is the mean cross entropy."""

    unit = "samples"

    def __init__(self, train: Images, val: Images, channels: list[int], hidden: int, label: str) -> None:
        self.train, self.val, self.channels, self.hidden = train, val, channels, hidden
        self.classes = int(max(train.y.max(), val.y.max())) + 1
        self.fingerprint = fingerprint(
            *(memoryview(t.contiguous().numpy()) for t in (train.x, train.y, val.x, val.y)), label
        )

    def make_model(self) -> nn.Module:
        _, c, h, _ = self.train.x.shape
        return SmallCNN(c, h, self.channels, self.hidden, self.classes)

    def train_batch(self, generator: torch.Generator, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        i = torch.randint(len(self.train.y), (batch_size,), generator=generator)
        return self.train.x[i], self.train.y[i]

    def val_batches(self, batch_size: int, count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The first ``batch_size * count`` validation images (all of them if fewer), in order."""
        n = min(len(self.val.y), batch_size * count)
        return list(zip(self.val.x[:n].split(batch_size), self.val.y[:n].split(batch_size), strict=True))

    def loss(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(model(x).float(), y)

    def batch_items(self, batch: tuple[torch.Tensor, torch.Tensor]) -> int:
        return len(batch[1])


def build(options: VisionTask, base_dir: Path) -> VisionClassificationTask:
    """The task a sweep file's ``task: {kind: vision, ...}`` describes."""
    m = options.model
    if options.data == "builtin:digits":
        train, val = _digits()
    else:
        train, val = _cifar(data_path(options.data, base_dir))
    return VisionClassificationTask(train, val, list(m.channels), m.hidden, options.data)


def _normalised(
    x_train: np.ndarray, x_val: np.ndarray, y_train: np.ndarray, y_val: np.ndarray
) -> tuple[Images, Images]:
    """Float images standardised per channel with the training split's mean and std."""
    mean = x_train.mean(axis=(0, 2, 3), keepdims=True)
    std = x_train.std(axis=(0, 2, 3), keepdims=True) + 1e-8

    def make(x: np.ndarray, y: np.ndarray) -> Images:
        return Images(torch.from_numpy(((x - mean) / std).astype(np.float32)), torch.from_numpy(y.astype(np.int64)))

    return make(x_train, y_train), make(x_val, y_val)


def _digits() -> tuple[Images, Images]:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise TaskError(
            "data", 'builtin:digits needs scikit-learn (expected: pip install "ademix-sweep[vision]")'
        ) from None
    digits = load_digits()
    x = digits.images.astype(np.float64)[:, None, :, :]  # (1797, 1, 8, 8)
    order = np.random.default_rng(0).permutation(len(x))
    cut = round(0.8 * len(x))
    tr, va = order[:cut], order[cut:]
    return _normalised(x[tr], x[va], digits.target[tr], digits.target[va])


class _SafeUnpickler(pickle.Unpickler):
    """Builds dicts, lists, strings, numbers and NumPy arrays; refuses every other global."""

    ALLOWED: ClassVar[set[tuple[str, str]]] = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"), ("_codecs", "encode"),
    }  # fmt: skip

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR batch")


def _cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise TaskError("data", f"{path} is missing (expected CIFAR-10's python folder: data_batch_1..5, test_batch)")
    try:
        batch = _SafeUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except Exception as exc:  # any malformed pickle is bad input
        raise TaskError("data", f"{path} is not a CIFAR-10 batch ({type(exc).__name__}: {exc})") from None
    if len(labels) != len(data):
        raise TaskError("data", f"{path} has {len(data)} images but {len(labels)} labels (expected as many)")
    return data, labels


def _cifar(path: Path) -> tuple[Images, Images]:
    if not path.is_dir():
        raise TaskError("data", f"{path} is not a folder (expected builtin:digits or a CIFAR-10 python folder)")
    parts = sorted(path.glob("data_batch_*"))
    if not parts:
        raise TaskError("data", f"{path} has no data_batch_* files (expected CIFAR-10's python folder layout)")
    train = [_cifar_batch(p) for p in parts]
    x_val, y_val = _cifar_batch(path / "test_batch")
    x_train = np.concatenate([x for x, _ in train]).astype(np.float64) / 255.0
    y_train = np.concatenate([y for _, y in train])
    return _normalised(x_train, x_val.astype(np.float64) / 255.0, y_train, y_val)
