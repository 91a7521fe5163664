"""Where a command writes: a missing folder is made, a path it cannot write to is refused before any work, and a
disk that fills up is said in one line, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import REPO
from covid_core.outputs import output_file, output_folder
from covid_core.errors import ConfigError


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "covid_core", *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=cwd or REPO)


def _film(tmp_path) -> Path:
    path = tmp_path / "film.png"
    yy, xx = np.mgrid[:128, :128]
    Image.fromarray((60 + 120 * np.exp(-((yy - 64) ** 2 + (xx - 50) ** 2) / 800)).astype(np.uint8)).save(path)
    return path


def _under_a_file(tmp_path) -> Path:
    """A "folder" that is a file: nothing can be made inside it."""
    (tmp_path / "file").write_text("x")
    return tmp_path / "file"


def test_a_missing_folder_is_made_and_the_path_returned(tmp_path):
    out = output_file(tmp_path / "a" / "b" / "p.csv")
    assert out == tmp_path / "a" / "b" / "p.csv" and out.parent.is_dir() and not out.exists()


@pytest.mark.parametrize("make, suffix, words", [
    (lambda t: t, None, "is a folder; give a file name"),
    (lambda t: t / "p.txt", ".csv", "--out {} must end in .csv"),
    (lambda t: _under_a_file(t) / "p.csv", None, "cannot make the folder"),
])
def test_a_path_that_cannot_be_written_is_refused_with_the_reason(tmp_path, make, suffix, words):
    path = make(tmp_path)
    with pytest.raises(ConfigError, match=words.format(path).replace(".", r"\.")):
        output_file(path, suffix)


def test_an_output_folder_is_made_and_a_file_in_its_place_refused(tmp_path):
    assert output_folder(tmp_path / "a" / "b").is_dir()
    with pytest.raises(ConfigError, match="is a file; give a folder"):
        output_folder(_under_a_file(tmp_path))


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere: the permission check cannot fail")
def test_a_folder_without_write_permission_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    with pytest.raises(ConfigError, match="permission denied"):
        output_file(locked / "p.csv")


def test_predict_makes_the_folder_of_its_csv_and_refuses_a_folder_it_cannot_make_before_any_work(tmp_path,
                                                                                                 tiny_checkpoint):
    film = _film(tmp_path)
    made = _cli("predict", "--model", tiny_checkpoint, film, "--out", tmp_path / "new" / "p.csv")
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "new" / "p.csv").read_text().startswith("filename,label,")
    (tmp_path / "plain").write_text("a file, not a folder")
    refused = _cli("predict", "--model", tiny_checkpoint, film, "--out", tmp_path / "plain" / "p.csv")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert f"cannot make the folder {tmp_path / 'plain'} for --out" in refused.stderr
    assert "classified" not in refused.stderr  # refused before a film was read


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full, a file every write to fails as a full "
                                                           "disk does (Linux)")
def test_a_full_disk_is_said_in_one_line(tmp_path, tiny_checkpoint):
    film = _film(tmp_path)
    predicted = _cli("predict", "--model", tiny_checkpoint, film, "--out", "/dev/full")
    assert predicted.returncode == 2 and "Traceback" not in predicted.stderr
    assert "error: could not write /dev/full: No space left on device; what was written is incomplete" \
        in predicted.stderr
    # any other command's write that fails is said too, not shown as a traceback
    card = _cli("model-card", tiny_checkpoint, "--out", "/dev/full")
    assert card.returncode == 1 and "Traceback" not in card.stderr and "No space left on device" in card.stderr


@pytest.mark.parametrize("task", ["classify", "denoise"])
def test_a_run_whose_checkpoint_copy_could_not_be_written_is_refused_before_it_trains(tmp_path, folder_dataset,
                                                                                      task):
    runs = tmp_path / "runs"
    result = subprocess.run(
        [sys.executable, "-m", "covid_core", "train", "--task", task, "--data", str(folder_dataset), "--epochs", "1",
         "--out", str(_under_a_file(tmp_path) / "model.pt")], capture_output=True, text=True, timeout=300,
        cwd=REPO, env={**os.environ, "COVID_CORE_RUNS": str(runs)})
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"cannot make the folder {tmp_path / 'file'} for --out" in result.stderr
    assert not runs.exists()  # no run folder, no training
