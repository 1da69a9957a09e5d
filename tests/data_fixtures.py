"""Small generated datasets: text folders, uint16 token files and CIFAR-10 python batches."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np


def write_text_folder(root: Path, files: dict[str, bytes]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return root


def write_tokens(path: Path, tokens: np.ndarray) -> Path:
    tokens.astype(np.uint16).tofile(path)
    return path


def cifar_images(n: int, seed: int) -> tuple[np.ndarray, list[int]]:
    """Learnable images: each class has its own mean colour, plus noise."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    base = np.linspace(20, 230, 10)[labels][:, None]
    data = np.clip(base + rng.normal(0, 20, (n, 3072)), 0, 255).astype(np.uint8)
    return data, [int(v) for v in labels]


def write_cifar(root: Path, batches: int = 2, per_batch: int = 64, test: int = 48) -> Path:
    """CIFAR-10's python layout: data_batch_1..N and test_batch, dicts with bytes keys."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(1, batches + 1):
        data, labels = cifar_images(per_batch, i)
        _dump(root / f"data_batch_{i}", data, labels)
    data, labels = cifar_images(test, 99)
    _dump(root / "test_batch", data, labels)
    return root


def _dump(path: Path, data: np.ndarray, labels: list[int]) -> None:
    with open(path, "wb") as f:
        pickle.dump({b"batch_label": b"generated", b"labels": labels, b"data": data}, f, protocol=2)
