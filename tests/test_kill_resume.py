"""Real SIGKILLs: training killed mid-run resumes; a kill mid-checkpoint-write never breaks a file;
two runs started at once get separate folders. Tiny data (42 PNGs, 32 px) keeps each run to seconds."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from covid_core.checkpoint import load_checkpoint_dict, load_classifier
from synthetic_files import encode

REPO = Path(__file__).resolve().parents[1]
CLASSES = ("normal", "pneumonia", "covid")


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    """train/<class>/ 11 images and test/<class>/ 3 images per class, 64x64, each class a bright
    blob in its own place (learnable in a few epochs)."""
    root = tmp_path_factory.mktemp("tiny_xrays")
    rng = np.random.default_rng(0)
    for split, n in (("train", 11), ("test", 3)):
        for c, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                img = rng.normal(60, 15, (64, 64))
                img[8 + 16 * c: 24 + 16 * c, 16:48] += 150
                folder.joinpath(f"{name}{i}.png").write_bytes(encode(np.clip(img, 0, 255).astype(np.uint8), "PNG"))
    return root


def _env(tmp_path: Path) -> dict:
    env = dict(os.environ, COVID_CORE_CACHE=str(tmp_path / "cache"), OMP_NUM_THREADS="1",
               PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("COVID_CORE_RUNS", None)
    return env


def _train(args: list[str], tmp_path: Path, **kwargs) -> subprocess.Popen:
    # An argument list, never a shell string.
    return subprocess.Popen([sys.executable, str(REPO / "train.py"), *args, "--quiet", "--workers", "0"],
                            cwd=tmp_path, env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            **kwargs)


def _wait_for(predicate, proc: subprocess.Popen, timeout: float = 90.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        if proc.poll() is not None:
            return predicate()
        time.sleep(0.005)
    return False


def _metric_epochs(run: Path) -> list[int]:
    return [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


def _run_folder_with(runs: Path, epochs: int) -> Path | None:
    for config in runs.glob("*/config.json"):
        try:
            if json.loads(config.read_text()).get("epochs") == epochs:
                return config.parent
        except ValueError:
            pass  # being written
    return None


def test_two_runs_at_once_then_sigkill_and_resume(tmp_path, tiny_data):
    """Two CLI runs start together (no --run-id): separate folders. The 4-epoch one is SIGKILLed once
    its first last.pt exists; what it leaves loads, and --resume finishes it with each epoch logged once."""
    runs = tmp_path / "runs"
    common = ["--data", str(tiny_data), "--model", "cnn", "--image-size", "32", "--batch-size", "8",
              "--patience", "99", "--runs-dir", str(runs)]
    victim = _train([*common, "--epochs", "4"], tmp_path)
    other = _train([*common, "--epochs", "1"], tmp_path)
    try:
        def victim_saved():
            run = _run_folder_with(runs, 4)
            return run is not None and (run / "last.pt").exists()

        assert _wait_for(victim_saved, victim, 240), victim.communicate()[0].decode()[-2000:]
        victim.send_signal(signal.SIGKILL)
        victim.wait(30)
        other_out = other.communicate(timeout=240)[0].decode()
    finally:
        for proc in (victim, other):
            if proc.poll() is None:
                proc.kill()
    assert victim.returncode == -signal.SIGKILL, "training finished before the kill; the test proved nothing"
    assert other.returncode == 0, other_out[-2000:]

    killed, finished = _run_folder_with(runs, 4), _run_folder_with(runs, 1)
    assert killed != finished and sorted(runs.iterdir()) == sorted([killed, finished])
    pids = {json.loads((f / "status.json").read_text())["pid"] for f in (killed, finished)}
    assert pids == {victim.pid, other.pid}, "each folder was written by its own process only"
    assert _metric_epochs(finished) == [1]
    assert load_classifier(finished / "best.pt").metadata["train_config"]["run_id"] == finished.name

    done = _metric_epochs(killed)
    assert 1 <= len(done) < 4
    # What a kill leaves behind is usable: the best model loads, last.pt holds the training state.
    assert load_classifier(killed / "best.pt").classes == ("normal", "pneumonia", "covid19")
    assert load_checkpoint_dict(killed / "last.pt")["epoch"] in (done[-1], done[-1] - 1)

    resumed = _train(["--resume", str(killed)], tmp_path)
    out = resumed.communicate(timeout=240)[0].decode()
    assert resumed.returncode == 0, out[-2000:]
    assert _metric_epochs(killed) == [1, 2, 3, 4], "every epoch is in metrics.jsonl exactly once"
    assert json.loads((killed / "status.json").read_text())["state"] == "finished"
    final = load_classifier(killed / "best.pt")
    assert final.temperature > 0 and "test" in final.metadata["metrics"]


def test_sigkill_during_checkpoint_writes_never_leaves_a_broken_file(tmp_path):
    """A forked process that does nothing but rewrite best.pt is killed at random moments; each time
    best.pt is one whole version, and a kill mid-write leaves at most a temp file under another name."""
    import torch

    from covid_core.checkpoint import atomic_save

    target = tmp_path / "best.pt"
    # Built before forking: the child must not run torch kernels (their thread pools do not survive a
    # fork); it only serialises. Each version's tensor is filled with its own step number.
    versions = [{"state_dict": {"w": torch.full((300_000,), float(i))}, "step": i} for i in range(4)]
    atomic_save(versions[0], target)
    rng = random.Random(7)
    steps, mid_write = [], 0
    for _ in range(8):
        pid = os.fork()
        if pid == 0:  # child: write forever until killed
            try:
                i = 0
                while True:
                    i += 1
                    atomic_save(versions[i % 4], target)
            finally:
                os._exit(1)
        time.sleep(rng.uniform(0.05, 0.4))
        os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        ckpt = load_checkpoint_dict(target)
        w = ckpt["state_dict"]["w"]
        assert w.shape == (300_000,) and bool((w == ckpt["step"]).all()), "checkpoint mixes two writes"
        steps.append(ckpt["step"])
        leftovers = list(tmp_path.glob(".best.pt.*.tmp"))
        mid_write += bool(leftovers)
        for tmp in leftovers:
            tmp.unlink()
    print(f"\n{len(steps)} kills, {mid_write} of them mid-write; best.pt loaded whole every time")
    assert len(set(steps)) > 1, f"the writer never replaced the file: steps {steps}"
    assert mid_write >= 1, "no kill landed during a write; the test proved nothing"
