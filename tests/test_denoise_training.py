"""DAE training: run folder, atomic checkpoints, resume, and the train.py --task denoise entry point."""

from __future__ import annotations

import json

import numpy as np
import pytest

from covid_core.cli import main as cli_main
from covid_core.denoise import load_dae
from covid_core.denoise.training import DAETrainConfig, run_dae
from covid_core.errors import ConfigError
from test_denoise import one_thread  # noqa: F401  (autouse fixture: one OpenMP thread for tiny convolutions)


def tiny_config(data, tmp_path, epochs: int) -> DAETrainConfig:
    return DAETrainConfig(data=str(data), epochs=epochs, steps_per_epoch=3, batch_size=4, crop=32, image_size=64,
                          channels=(8, 12, 16), val_images=4, runs_dir=str(tmp_path / "runs"), run_id="dae-test",
                          out=str(tmp_path / "weights" / "dae.pt"))


def test_run_dae_writes_a_run_folder_and_resumes(folder_dataset, tmp_path):
    # Interrupt after epoch 1 (as a cancel or a kill would), then resume to the end.
    state = {"stop": False}
    best = run_dae(tiny_config(folder_dataset, tmp_path, epochs=3), progress=False,
                   on_epoch=lambda row: state.update(stop=True), should_stop=lambda: state["stop"])
    run = best.parent
    assert {"config.json", "metrics.jsonl", "status.json", "best.pt", "last.pt"} <= {p.name for p in run.iterdir()}
    assert json.loads((run / "status.json").read_text())["state"] == "cancelled"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1] and np.isfinite(rows[0]["val_psnr_mean"])
    run_dae(DAETrainConfig(), progress=False, resume=str(run))
    assert json.loads((run / "status.json").read_text())["state"] == "finished"
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    dae = load_dae(tmp_path / "weights" / "dae.pt")
    assert dae.metadata["train_config"]["channels"] == [8, 12, 16]
    assert dae.denoise(np.full((33, 47), 0.5, np.float32)).shape == (33, 47)


def test_run_dae_stops_when_asked(folder_dataset, tmp_path):
    best = run_dae(tiny_config(folder_dataset, tmp_path, epochs=5), progress=False, should_stop=lambda: True)
    assert json.loads((best.parent / "status.json").read_text())["state"] == "cancelled"
    assert not best.exists()


def test_the_denoiser_leaves_out_an_unreadable_film_only_when_asked_and_its_card_names_it(folder_dataset, tmp_path):
    from covid_core.cards.dae import dae_card_markdown
    from covid_core.checkpoint import load_checkpoint_dict
    from covid_core.errors import DatasetError

    (folder_dataset / "train" / "covid19" / "damaged.png").write_bytes(b"\x89PNG\r\n\x1a\n cut short")
    with pytest.raises(DatasetError, match=r"covid19/damaged\.png.*train on the rest with --skip-unreadable"):
        run_dae(tiny_config(folder_dataset, tmp_path, epochs=1), progress=False)
    config = tiny_config(folder_dataset, tmp_path, epochs=1)
    config.skip_unreadable, config.run_id = True, "dae-skips"
    ckpt = load_checkpoint_dict(run_dae(config, progress=False))
    assert ckpt["training_data"]["unreadable"] == ["covid19/damaged.png"]  # named below the TRAIN folder it was in
    card = dae_card_markdown(ckpt, "dae.pt")
    assert "- Left out: 1 film(s) that could not be read (`covid19/damaged.png`)" in card
    assert "--skip-unreadable" in card  # the command that reproduces it does not stop at the film


@pytest.mark.parametrize("change, message", [({"crop": 30}, "multiple of 8"), ({"epochs": 0}, "epochs"),
                                             ({"sigma_min": 70}, "sigma")])
def test_bad_training_settings_are_explained(change, message):
    cfg = DAETrainConfig(data="x", **change)
    with pytest.raises(ConfigError, match=message):
        cfg.validate()


def test_train_py_task_denoise_dispatches_to_the_dae(monkeypatch, tmp_path):
    import covid_core.denoise.training as training

    seen = {}

    def fake_run(config, **kwargs):
        seen["config"] = config
        return tmp_path / "best.pt"

    monkeypatch.setattr(training, "run_dae", fake_run)
    (tmp_path / "train" / "normal").mkdir(parents=True)  # a data set with training films: checked before training
    (tmp_path / "train" / "normal" / "a.png").write_bytes(b"not decoded by the check")
    assert cli_main(["train", "--task", "denoise", "--data", str(tmp_path), "--epochs", "2", "--quiet"]) == 0
    assert seen["config"].epochs == 2 and seen["config"].image_size == 512
    assert cli_main(["train-dae", "--data", str(tmp_path), "--crop", "48", "--quiet"]) == 0
    assert seen["config"].crop == 48
