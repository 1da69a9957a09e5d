"""Tasks: data loading and splits, fingerprints, models, and bad data."""

from __future__ import annotations

import itertools
import os
import pickle
import sysconfig
from pathlib import Path

import numpy as np
import pytest
import torch
from data_fixtures import write_cifar, write_text_folder, write_tokens

from ademix_sweep.sweepfile.sections import CustomTask, LmTask, RosenbrockTask, VisionTask
from ademix_sweep.tasks import TaskError, build_task
from ademix_sweep.tasks.corpus import Split, load_corpus
from ademix_sweep.tasks.lm import GPT, GPTConfig

LM_TINY = {"layers": 1, "heads": 2, "dim": 16}


def lm(data: str, seq_len: int = 16, **extra) -> LmTask:
    return LmTask(kind="lm", data=data, seq_len=seq_len, model=LM_TINY, **extra)


def text(n: int, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    return bytes(rng.integers(32, 127, n, dtype=np.uint8))


def test_split_windows_map_numbers_to_starts_across_ranges():
    tokens = np.arange(100, dtype=np.uint16)
    split = Split(tokens, ((0, 10), (50, 60)), 4)
    assert split.count == 12  # 6 windows of 5 tokens in each range
    x, y = split.windows(torch.tensor([0, 5, 6, 11]))
    assert x[:, 0].tolist() == [0, 5, 50, 55]
    assert torch.equal(y[:, :-1], x[:, 1:])  # targets are the inputs shifted by one
    assert y[3].tolist() == [56, 57, 58, 59]  # the last window ends at the range's end


def test_text_folder_is_read_in_sorted_order_without_hidden_or_binary_files(tmp_path):
    files = {"b/2.txt": text(3000, 2), "a.txt": text(3000, 1), ".hidden": b"x" * 5000, "blob.bin2": b"\x00" * 4000}
    folder = write_text_folder(tmp_path / "corpus", files)
    corpus = load_corpus(str(folder), 16, None, tmp_path)
    assert corpus.vocab_size == 256
    joined = files["a.txt"] + b"\n" + files["b/2.txt"]
    assert corpus.train.tokens.tobytes() == joined
    # every tenth shard is validation; together the splits cover the data with no overlap
    covered = sorted(corpus.train.ranges + corpus.val.ranges)
    assert covered[0][0] == 0 and covered[-1][1] == len(joined)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(covered))
    shards = len(covered)
    assert len(corpus.val.ranges) == shards // 10 and corpus.val.ranges[0] == covered[9]


def test_relative_data_paths_resolve_against_the_sweep_files_folder(tmp_path):
    write_text_folder(tmp_path / "data", {"t.txt": text(5000)})
    task = build_task(lm("data/t.txt"), tmp_path)
    assert task.corpus.train.tokens.tobytes() == (tmp_path / "data" / "t.txt").read_bytes()


def test_fingerprint_follows_the_data_and_the_split(tmp_path):
    a = write_text_folder(tmp_path, {"a.txt": text(5000, 1), "b.txt": text(5000, 2)})
    fp1 = load_corpus(str(a / "a.txt"), 16, None, tmp_path).fingerprint
    assert fp1 == load_corpus(str(a / "a.txt"), 16, None, tmp_path).fingerprint
    assert fp1 != load_corpus(str(a / "b.txt"), 16, None, tmp_path).fingerprint
    assert fp1 != load_corpus(str(a / "a.txt"), 16, 300, tmp_path).fingerprint


def test_bin_token_file_is_memory_mapped_with_the_vocabulary_inferred(tmp_path):
    tokens = np.random.default_rng(0).integers(0, 1000, 20_000)
    path = write_tokens(tmp_path / "toks.bin", tokens)
    task = build_task(lm(str(path)), tmp_path)
    assert isinstance(task.corpus.train.tokens, np.memmap)
    assert task.corpus.vocab_size == tokens.max() + 1
    x, y = task.train_batch(torch.Generator().manual_seed(0), 4)
    assert x.shape == (4, 16) and x.dtype == torch.int64
    start = int(np.flatnonzero((np.lib.stride_tricks.sliding_window_view(tokens, 16) == x[0].numpy()).all(1))[0])
    assert y[0].tolist() == tokens[start + 1 : start + 17].tolist()
    model = task.make_model()
    assert model.tok.num_embeddings == tokens.max() + 1


def test_nanogpt_folder_keeps_its_own_train_and_val_split(tmp_path):
    write_tokens(tmp_path / "train.bin", np.full(500, 7))
    write_tokens(tmp_path / "val.bin", np.full(300, 9))
    task = build_task(lm(str(tmp_path), vocab_size=50304), tmp_path)
    assert task.corpus.vocab_size == 50304
    assert set(task.train_batch(torch.Generator(), 8)[0].unique().tolist()) == {7}
    assert {int(t) for b in task.val_batches(4, 2) for t in b[0].unique()} == {9}


def test_token_above_vocab_size_is_refused(tmp_path):
    path = write_tokens(tmp_path / "t.bin", np.arange(5000) % 600)
    with pytest.raises(TaskError, match=r"vocab_size.*holds token 599"):
        build_task(lm(str(path), vocab_size=512), tmp_path)


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ("missing.txt", "missing.txt does not exist"),
        ("tiny.txt", r"has 100 tokens, too few for seq_len 16"),
        ("odd.bin", r"odd.bin is 3 bytes \(expected"),
        ("empty", "holds no text files"),
    ],
)
def test_bad_lm_data_names_the_path(tmp_path, data, match):
    (tmp_path / "tiny.txt").write_bytes(b"x" * 100)
    (tmp_path / "odd.bin").write_bytes(b"abc")
    (tmp_path / "empty").mkdir()
    with pytest.raises(TaskError, match=match) as info:
        build_task(lm(data), tmp_path)
    assert info.value.field == "data"


def test_python_docs_corpus_is_the_pydoc_topics():
    from pydoc_data.topics import topics

    task = build_task(lm("builtin:python-docs"), ".")
    total = len(task.corpus.train.tokens)
    assert total == len("".join(topics[k] for k in sorted(topics)).encode())
    assert total > 200_000


def test_python_stdlib_corpus_leaves_tests_out():
    corpus = load_corpus("builtin:python-stdlib", 64, None, Path("."))
    data = corpus.train.tokens.tobytes()
    assert len(data) > 5_000_000
    root = Path(sysconfig.get_paths()["stdlib"])
    assert (root / "json" / "decoder.py").read_bytes() in data
    assert (root / "test" / "test_json" / "test_decode.py").read_bytes() not in data
    assert corpus.fingerprint == load_corpus("builtin:python-stdlib", 64, None, Path(".")).fingerprint


def test_val_batches_are_fixed_and_evenly_spread():
    task = build_task(lm("builtin:python-docs"), ".")
    a, b = task.val_batches(8, 3), task.val_batches(8, 3)
    assert len(a) == 3 and all(torch.equal(x[0], y[0]) for x, y in zip(a, b, strict=True))
    starts = {tuple(x.tolist()) for batch in a for x in batch[0]}
    assert len(starts) == 24


def test_gpt_is_causal_and_ties_its_embeddings():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=50, seq_len=12, layers=2, heads=2, dim=16))
    assert model.head.weight is model.tok.weight
    x = torch.randint(50, (2, 12))
    y = x.clone()
    y[:, 8:] = (y[:, 8:] + 1) % 50
    out_x, out_y = model(x), model(y)
    assert out_x.shape == (2, 12, 50)
    assert torch.allclose(out_x[:, :8], out_y[:, :8], atol=1e-6)  # positions before 8 do not see the change
    assert not torch.allclose(out_x[:, 8:], out_y[:, 8:])
    untied = GPT(GPTConfig(vocab_size=50, seq_len=12, tied=False))
    assert untied.head.weight is not untied.tok.weight


def test_cifar_folder_loads_normalised_per_channel(tmp_path):
    folder = write_cifar(tmp_path / "cifar-10-batches-py")
    task = build_task(VisionTask(kind="vision", data="cifar-10-batches-py"), tmp_path)
    assert task.train.x.shape == (128, 3, 32, 32) and task.val.x.shape == (48, 3, 32, 32)
    assert task.classes == 10
    means = task.train.x.mean(dim=(0, 2, 3))
    assert torch.allclose(means, torch.zeros(3), atol=1e-4)
    raw = pickle.loads((folder / "data_batch_1").read_bytes(), encoding="bytes")
    assert task.train.y[:64].tolist() == raw[b"labels"]
    assert task.make_model()(task.train.x[:5]).shape == (5, 10)


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_cifar_pickle_cannot_run_code(tmp_path):
    folder = write_cifar(tmp_path / "c")
    (folder / "data_batch_1").write_bytes(pickle.dumps({b"data": _Exploit(), b"labels": [1]}))
    with pytest.raises(TaskError, match=r"data_batch_1 is not a CIFAR-10 batch .*posix.system is not allowed"):
        build_task(VisionTask(kind="vision", data=str(folder)), tmp_path)


@pytest.mark.parametrize(
    ("make", "match"), [(lambda p: None, "is not a folder"), (lambda p: p.mkdir(), "no data_batch")]
)
def test_bad_cifar_folder_names_the_path(tmp_path, make, match):
    make(tmp_path / "cifar")
    with pytest.raises(TaskError, match=match):
        build_task(VisionTask(kind="vision", data="cifar"), tmp_path)


def test_digits_split_is_fixed():
    task = build_task(VisionTask(kind="vision"), ".")
    assert task.train.x.shape == (1438, 1, 8, 8) and task.val.x.shape == (359, 1, 8, 8)
    again = build_task(VisionTask(kind="vision"), ".")
    assert task.fingerprint == again.fingerprint


def test_rosenbrock_starts_at_the_papers_point():
    task = build_task(RosenbrockTask(kind="rosenbrock"), ".")
    model = task.make_model()
    assert task.loss(model, None).item() == pytest.approx(16 + 100 * (5 - 9) ** 2)
    model.xy.data = torch.tensor([1.0, 1.0])
    assert task.loss(model, None).item() == 0.0


def test_custom_entrypoint_problems_are_task_errors(tmp_path):
    (tmp_path / "mytask.py").write_text(
        "def make(options):\n    raise KeyError('size')\n\ndef half(o):\n    return 1\n"
    )

    def build(entrypoint: str):
        return build_task(CustomTask(kind="custom", entrypoint=entrypoint), tmp_path)

    with pytest.raises(TaskError, match=r"cannot import no_such_module \(ModuleNotFoundError"):
        build("no_such_module:make")
    with pytest.raises(TaskError, match="mytask has no function nothing"):
        build("mytask:nothing")
    with pytest.raises(TaskError, match=r"mytask:make raised KeyError: 'size'") as info:
        build("mytask:make")
    assert info.value.field == "options"
    with pytest.raises(TaskError, match=r"returned a int without make_model, train_batch, val_batches, loss"):
        build("mytask:half")
