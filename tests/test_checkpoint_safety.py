"""Checkpoints: code-running pickles refused, broken files named, saves atomic under a full disk."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from covid_core import checkpoint
from covid_core.checkpoint import atomic_save, load_checkpoint_dict, load_classifier
from covid_core.errors import CheckpointError
from synthetic_files import tiny_classifier


class _WritesMarker:
    """Unpickling this calls Path.write_text(marker): the classic code-execution payload."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


def _saved_classifier(folder: Path) -> Path:
    tiny_classifier(folder, image_size=32)
    return folder / "tiny.pt"


def test_pickled_code_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "marker.txt"
    good = torch.load(_saved_classifier(tmp_path), weights_only=True)
    good["metadata_hook"] = _WritesMarker(marker)  # a plausible checkpoint carrying a payload
    evil = tmp_path / "evil.pt"
    torch.save(good, evil)
    # Sanity check that the payload is live: an unsafe load would run it.
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="refused: it holds Python objects that could run code"):
        load_classifier(evil)
    assert not marker.exists(), "loading ran code from the checkpoint"


def test_the_payload_really_runs_when_loaded_unsafely(tmp_path):
    """Guards the test above: the payload is not inert, so its refusal means something."""
    marker = tmp_path / "marker.txt"
    evil = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "x": _WritesMarker(marker)}, evil)
    torch.load(evil, weights_only=False)
    assert marker.read_text() == "pwned"


def test_plain_pickle_file_is_refused(tmp_path):
    marker = tmp_path / "marker.txt"
    evil = tmp_path / "plain.pt"
    evil.write_bytes(pickle.dumps({"state_dict": _WritesMarker(marker)}))
    with pytest.raises(CheckpointError):
        load_checkpoint_dict(evil)
    assert not marker.exists()


@pytest.mark.parametrize("damage, words", [
    ("truncated", ["not a readable checkpoint", "truncated or corrupt"]),
    ("zeros", ["not a readable checkpoint"]),
    ("text", ["Git LFS pointer", "git lfs pull"]),
    ("garbage pickle", ["not a readable checkpoint", "truncated or corrupt"]),
    ("empty", ["not a readable checkpoint"]),
    ("foreign dict", ["not a covid_core checkpoint"]),
    ("foreign tensor", ["not a covid_core checkpoint"]),
    ("other format", ["not a classifier checkpoint"]),
    ("wrong architecture", ["does not match its architecture"]),
    ("missing", ["does not exist"]),
])
def test_corrupt_or_foreign_checkpoint_is_named(tmp_path, damage, words):
    good = _saved_classifier(tmp_path)
    bad = tmp_path / "bad.pt"
    data = good.read_bytes()
    if damage == "truncated":
        bad.write_bytes(data[: len(data) // 2])
    elif damage == "zeros":
        bad.write_bytes(bytes(4096))
    elif damage == "text":
        bad.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n")
    elif damage == "garbage pickle":
        bad.write_bytes(b"\x80\x02vwhatever")
    elif damage == "empty":
        bad.write_bytes(b"")
    elif damage == "foreign dict":
        torch.save({"model": {"weight": torch.zeros(3)}}, bad)  # e.g. someone else's training script
    elif damage == "foreign tensor":
        torch.save(torch.zeros(3), bad)
    else:
        ckpt = torch.load(good, weights_only=True)
        if damage == "other format":
            ckpt["format"] = "covid_core.denoiser/1"
        elif damage == "wrong architecture":
            ckpt["model_name"] = "resnet18"
        atomic_save(ckpt, bad)
    if damage == "missing":
        bad = tmp_path / "nope.pt"
    with pytest.raises(CheckpointError) as info:
        load_classifier(bad)
    for w in words:
        assert w in str(info.value), str(info.value)
    assert "\n" not in str(info.value)


def _temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


@pytest.mark.parametrize("fail_in", ["torch.save", "fsync", "os.replace"])
def test_full_disk_during_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch, fail_in):
    path = _saved_classifier(tmp_path)
    before = path.read_bytes()

    def no_space(*args, **kwargs):
        raise OSError(28, "No space left on device")

    if fail_in == "torch.save":
        real_save = torch.save

        def half_then_full(obj, f, *a, **k):  # write a partial file, then the disk is full
            f.write(b"PK\x03\x04partial")
            no_space()
        monkeypatch.setattr(checkpoint.torch, "save", half_then_full)
        assert real_save is not None
    elif fail_in == "fsync":
        monkeypatch.setattr(checkpoint.os, "fsync", no_space)
    else:
        monkeypatch.setattr(checkpoint.os, "replace", no_space)

    new = torch.load(path, weights_only=True)
    new["epoch"] = 99
    with pytest.raises(CheckpointError, match="No space left on device.*previous checkpoint, if any, is unchanged"):
        atomic_save(new, path)
    monkeypatch.undo()
    assert path.read_bytes() == before, "the previous checkpoint was changed"
    assert load_classifier(path).classes == ("normal", "pneumonia", "covid19")
    assert _temp_files(tmp_path) == [], "a temp file was left behind"


def test_save_on_a_really_full_filesystem(tmp_path):
    """On a tiny tmpfs (when this machine lets us mount one) the real ENOSPC path is taken."""
    import shutil
    import subprocess

    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tiny tmpfs needs root")
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.decode().strip()}")
    try:
        path = mnt / "model.pt"
        atomic_save({"state_dict": {"w": torch.zeros(1000)}}, path)  # ~4 kB fits
        before = path.read_bytes()
        with pytest.raises(CheckpointError, match="disk may be full"):
            atomic_save({"state_dict": {"w": torch.zeros(1_000_000)}}, path)  # 4 MB does not
        assert path.read_bytes() == before
        assert load_checkpoint_dict(path)["state_dict"]["w"].shape == (1000,)
        assert _temp_files(mnt) == []
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def test_atomic_save_leaves_no_temp_files_when_it_succeeds(tmp_path):
    for epoch in range(3):
        atomic_save({"state_dict": {}, "epoch": epoch}, tmp_path / "last.pt")
    assert load_checkpoint_dict(tmp_path / "last.pt")["epoch"] == 2
    assert _temp_files(tmp_path) == [] and sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_numpy_values_and_keys_are_saved_so_that_the_safe_loader_accepts_them(tmp_path):
    import numpy as np

    from covid_core.checkpoint import atomic_save

    path = tmp_path / "np.pt"
    atomic_save({"state_dict": {"w": torch.zeros(2)}, "card": {np.str_("nih"): {"flagged": np.float64(0.35),
                                                                                "n": np.int64(117)}},
                 "list": [np.float32(1.5)]}, path)
    loaded = load_checkpoint_dict(path)
    assert loaded["card"] == {"nih": {"flagged": 0.35, "n": 117}} and type(loaded["card"]["nih"]["n"]) is int
    assert loaded["list"] == [1.5]
