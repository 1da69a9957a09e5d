"""Token corpora for the lm task: built-in Python texts, text files and folders, uint16 token files.

Nothing is downloaded. ``builtin:python-stdlib`` is the standard library's ``.py`` sources without
its tests, in sorted path order (about 12 MB); ``builtin:python-docs`` is the text of the bundled
``pydoc_data`` topics (about 465 KB). Both differ between Python versions; the fingerprint tells.

The split is deterministic: the token stream is cut into (up to) 100 equal shards and every tenth
shard (9, 19, ...) is held out for validation, so both sets sample the whole corpus. A folder with
nanoGPT's ``train.bin`` and ``val.bin`` keeps its own split. Training windows are drawn with the
caller's generator; validation windows are evenly spaced, the same for every trial.
"""

from __future__ import annotations

import functools
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .base import data_path
from .errors import TaskError, fingerprint

SHARDS, VAL_EVERY = 100, 10
SKIP_DIRS = {"test", "tests", "idle_test", "site-packages", "__pycache__"}


class Split:
    """Windows of ``seq_len + 1`` tokens from the (start, end) ranges of one token array."""

    def __init__(self, tokens: np.ndarray, ranges: tuple[tuple[int, int], ...], seq_len: int) -> None:
        self.tokens, self.ranges, self.seq_len = tokens, ranges, seq_len  # tokens: uint8 or uint16, maybe mmapped
        sizes = np.array([max(0, end - start - seq_len) for start, end in ranges], dtype=np.int64)
        self._cum = np.cumsum(sizes)  # windows in ranges[: i + 1]
        self._first = np.array([start for start, _ in ranges], dtype=np.int64)
        self.count = int(self._cum[-1]) if len(ranges) else 0  # how many windows there are

    def windows(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets, (B, seq_len) int64, for window numbers ``u`` in [0, count)."""
        u_np = u.numpy().astype(np.int64)
        which = np.searchsorted(self._cum, u_np, side="right")
        before = np.where(which > 0, self._cum[which - 1], 0)
        starts = self._first[which] + (u_np - before)
        chunk = torch.from_numpy(self.tokens[starts[:, None] + np.arange(self.seq_len + 1)].astype(np.int64))
        return chunk[:, :-1], chunk[:, 1:]


@dataclass(frozen=True)
class Corpus:
    train: Split
    val: Split
    vocab_size: int
    fingerprint: str


def load_corpus(data: str, seq_len: int, vocab_size: int | None, base_dir: Path) -> Corpus:
    """Load and split ``data`` (a builtin name or a path, relative to ``base_dir``)."""
    if data.startswith("builtin:"):
        tokens = _builtin_bytes(data)
        return _split(tokens, seq_len, _check_vocab(tokens, 256, vocab_size), data)
    path = data_path(data, base_dir)
    if not path.exists():
        raise TaskError(
            "data",
            f"{path} does not exist (expected a text file, a folder, a .bin token file or "
            "builtin:python-stdlib / builtin:python-docs)",
        )
    if path.is_dir() and (path / "train.bin").is_file() and (path / "val.bin").is_file():
        return _bin_pair(path, seq_len, vocab_size)
    if path.is_file() and path.suffix == ".bin":
        tokens = _memmap(path)
        return _split(tokens, seq_len, _check_vocab(tokens, None, vocab_size, path), str(path))
    tokens = np.frombuffer(_text_bytes(path), dtype=np.uint8)
    return _split(tokens, seq_len, _check_vocab(tokens, 256, vocab_size), str(path))


@functools.lru_cache(maxsize=2)
def _builtin_bytes(name: str) -> np.ndarray:
    if name == "builtin:python-docs":
        from pydoc_data.topics import topics

        text = "".join(topics[key] for key in sorted(topics))
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(
        (p for p in root.rglob("*.py") if not SKIP_DIRS & set(p.relative_to(root).parts)),
        key=lambda p: p.relative_to(root).as_posix(),
    )
    return np.frombuffer(b"".join(p.read_bytes() for p in files), dtype=np.uint8)


def _text_bytes(path: Path) -> bytes:
    """A file's bytes, or a folder's non-hidden, non-binary files joined in sorted path order."""
    if path.is_file():
        return _read(path)
    files = sorted(
        (p for p in path.rglob("*") if p.is_file() and not any(s.startswith(".") for s in p.relative_to(path).parts)),
        key=lambda p: p.relative_to(path).as_posix(),
    )
    parts = [raw for raw in map(_read, files) if b"\x00" not in raw[:8192]]
    if not parts:
        raise TaskError("data", f"{path} holds no text files (expected a folder of text files)")
    return b"\n".join(parts)


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise TaskError("data", f"{path}: cannot read it ({exc.strerror})") from None


def _memmap(path: Path) -> np.ndarray:
    size = path.stat().st_size
    if size % 2 or size == 0:
        raise TaskError("data", f"{path} is {size} bytes (expected a non-empty file of uint16 tokens)")
    return np.memmap(path, dtype=np.uint16, mode="r")


def _max_token(tokens: np.ndarray) -> int:
    step = 1 << 24
    return max(int(tokens[i : i + step].max()) for i in range(0, len(tokens), step))


def _check_vocab(tokens: np.ndarray, natural: int | None, vocab_size: int | None, path: Path | None = None) -> int:
    """The vocabulary size: given, else 256 for bytes, else the largest token + 1."""
    if vocab_size is None:
        return natural if natural is not None else _max_token(tokens) + 1
    if tokens.dtype == np.uint8 and vocab_size < 256:
        raise TaskError("vocab_size", f"{vocab_size} is below 256 (expected at least 256 for byte-level text)")
    if tokens.dtype != np.uint8 and (top := _max_token(tokens)) >= vocab_size:
        raise TaskError("vocab_size", f"{vocab_size}, but {path} holds token {top} (expected vocab_size > {top})")
    return vocab_size


def _split(tokens: np.ndarray, seq_len: int, vocab: int, label: str) -> Corpus:
    n = len(tokens)
    shard = max(n // SHARDS, 4 * (seq_len + 1))
    count = n // shard
    if count < VAL_EVERY:
        raise TaskError(
            "data",
            f"{label} has {n} tokens, too few for seq_len {seq_len} "
            f"(expected at least {VAL_EVERY * 4 * (seq_len + 1)})",
        )
    bounds = [(i * shard, (i + 1) * shard if i < count - 1 else n) for i in range(count)]
    val = tuple(b for i, b in enumerate(bounds) if i % VAL_EVERY == VAL_EVERY - 1)
    train = tuple(b for i, b in enumerate(bounds) if i % VAL_EVERY != VAL_EVERY - 1)
    fp = fingerprint(memoryview(tokens), f"shards={count},val_every={VAL_EVERY},vocab={vocab}")
    return Corpus(Split(tokens, train, seq_len), Split(tokens, val, seq_len), vocab, fp)


def _bin_pair(path: Path, seq_len: int, vocab_size: int | None) -> Corpus:
    """nanoGPT's layout: a folder with train.bin and val.bin (uint16 tokens)."""
    train, val = _memmap(path / "train.bin"), _memmap(path / "val.bin")
    for part, arr in (("train.bin", train), ("val.bin", val)):
        if len(arr) <= seq_len:
            raise TaskError("data", f"{path / part} has {len(arr)} tokens (expected more than seq_len {seq_len})")
    vocab = max(_check_vocab(train, None, vocab_size, path), _check_vocab(val, None, vocab_size, path))
    fp = fingerprint(memoryview(train), memoryview(val), f"vocab={vocab}")
    return Corpus(Split(train, ((0, len(train)),), seq_len), Split(val, ((0, len(val)),), seq_len), vocab, fp)
