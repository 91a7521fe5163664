"""Training end to end on tiny synthetic data: run folder, checkpoint metadata, resume, seeds, DDP, CLI."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from conftest import REPO
from covid_core.checkpoint import load_checkpoint_dict, load_classifier
from covid_core.errors import ConfigError
from covid_core.jobs import read_job
from covid_core.runs import RunDir
from covid_core.models import list_models
from covid_core.training import TrainConfig, run


def _config(data, tmp_path, **kw):
    # a toy recipe for a few dozen steps: no weight averaging, which over so few steps lags behind what was learnt
    base = dict(data=str(data), model="cnn", epochs=4, batch_size=4, lr=3e-3, image_size=32, seed=0, augment=False,
                val_fraction=0.2, patience=10, ema_decay=0.0, runs_dir=str(tmp_path / "runs"))
    base.update(kw)
    return TrainConfig(**base)


def _cli(*args, cwd=REPO, env=None):
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def test_training_learns_and_writes_a_self_describing_checkpoint(folder_dataset, tmp_path):
    rows = []
    best = run(_config(folder_dataset, tmp_path, epochs=5, run_id="learn"), on_epoch=rows.append, progress=False)
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4, 5]
    run_dir = RunDir(best.parent)
    assert [r["epoch"] for r in run_dir.metrics()] == [1, 2, 3, 4, 5]
    assert run_dir.read_json("status.json")["state"] == "finished"
    assert run_dir.read_json("config.json")["model"] == "cnn"
    ckpt = load_checkpoint_dict(best)
    test = ckpt["metrics"]["test"]
    assert test["n"] == 12 and test["accuracy"] >= 0.75, test  # the disc position is easy to learn
    assert set(test["per_class"]) == {"normal", "pneumonia", "covid19"}
    assert 0.01 < ckpt["temperature"] < 100
    assert ckpt["threshold"]["class"] == "covid19" and 0 <= ckpt["threshold"]["value"] <= 1
    assert ckpt["ood"]["threshold"] > 0 and ckpt["data_fingerprint"]
    assert ckpt["class_counts"]["test"] == {"normal": 4, "pneumonia": 4, "covid19": 4}
    assert ckpt["preprocess"]["image_size"] == 32
    timing = ckpt["timing"]  # what the model card reports as the training time, split into its parts
    assert [round(r["seconds"], 1) for r in rows] == timing["epoch_s"]
    assert timing["prepare_s"] >= 0 and timing["finalize_s"] > 0
    assert ckpt["training_time_s"] >= timing["prepare_s"] + sum(timing["epoch_s"]) + timing["finalize_s"] - 0.5
    from covid_core.cards.classifier import card_markdown

    assert "epoch 1 " in card_markdown(ckpt, "x.pt", "weights/x.pt")
    clf = load_classifier(best)
    assert clf.temperature == ckpt["temperature"] and clf.classes == ("normal", "pneumonia", "covid19")


@pytest.mark.parametrize("ema_decay", [0.0, 0.9])
def test_same_seed_repeats_and_resume_continues(folder_dataset, tmp_path, ema_decay):
    a, b = [], []
    run(_config(folder_dataset, tmp_path, epochs=2, run_id="a", ema_decay=ema_decay), on_epoch=a.append,
        progress=False)
    # Stop b after its first epoch (as an interruption would), then resume it: the result must equal a.
    # With EMA on, the validation figures come from the averaged weights, so resume must restore them too.
    best_b = run(_config(folder_dataset, tmp_path, epochs=2, run_id="b", ema_decay=ema_decay),
                 on_epoch=lambda r: b.append(r) or False, progress=False)
    assert len(b) == 1 and a[0]["train_loss"] == pytest.approx(b[0]["train_loss"], rel=1e-6)
    run(TrainConfig(), on_epoch=b.append, progress=False, resume=str(best_b.parent))
    assert [r["epoch"] for r in RunDir(best_b.parent).metrics()] == [1, 2]
    assert b[1]["train_loss"] == pytest.approx(a[1]["train_loss"], rel=1e-5)
    assert b[1]["val_macro_auc"] == pytest.approx(a[1]["val_macro_auc"], rel=1e-5)


def test_ema_weights_are_what_the_checkpoint_keeps(folder_dataset, tmp_path):
    import torch

    best = run(_config(folder_dataset, tmp_path, epochs=1, run_id="ema", ema_decay=0.9), progress=False)
    saved = load_checkpoint_dict(best)["state_dict"]
    last = torch.load(RunDir(best.parent).last_checkpoint, weights_only=True)
    ema = {k.removeprefix("module."): v for k, v in last["ema"].items() if k != "n_averaged"}
    assert last["ema"]["n_averaged"] > 1 and set(ema) == set(saved)
    assert all(torch.equal(saved[k], ema[k]) for k in saved)  # best.pt holds the averaged weights ...
    raw = last["state_dict"]
    assert any(not torch.equal(saved[k], raw[k]) for k in saved if raw[k].is_floating_point())  # ... not the raw
    from covid_core.cards.classifier import reproduce_command

    assert "--ema-decay 0.9 " in reproduce_command(load_checkpoint_dict(best)["train_config"], "out.pt")


@pytest.mark.parametrize("field,value,message", [
    ("epochs", 0, "epochs must be a whole number from 1 to 1000"),
    ("batch_size", 100000, "batch size must be from 1 to 1024"),
    ("lr", -1.0, "learning rate must be above 0"),
    ("model", "vgg", "unknown model 'vgg'; choose one of"),
    ("target", "flu", "unknown target 'flu'; choose one of: 3class, covid, pneumonia"),
    ("ema_decay", 1.0, "EMA decay must be 0 \\(off\\) or from 0.5 to below 1"),
    ("pretrained", "no/such/weights.pt", "pretrained must be none, imagenet, or the path of a weights file that "
                                         "exists"),
])
def test_absurd_settings_are_refused(field, value, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**{"data": "x", field: value}).validate()


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, True])
def test_a_seed_no_random_generator_takes_is_refused_before_the_run_starts(seed):
    from covid_core.denoise.training import DAETrainConfig

    for config in (TrainConfig(data="x", seed=seed), DAETrainConfig(data="x", seed=seed)):
        with pytest.raises(ConfigError, match="seed must be a whole number from 0 to 2147483647"):
            config.validate()
    TrainConfig(data="x", seed=2**31 - 1).validate()


@pytest.mark.parametrize("field", ["amplitude_mix", "random_conv", "source_mix", "patch_crop"])
def test_a_batch_mix_without_augmentation_is_refused_not_silently_dropped(field):
    with pytest.raises(ConfigError, match="part of augmentation: turn augmentation on, or set them to 0"):
        TrainConfig(data="x", augment=False, **{field: 0.5}).validate()
    TrainConfig(data="x", augment=True, **{field: 0.5}).validate()
    TrainConfig(data="x", augment=False).validate()


def test_train_evaluate_predict_cli(folder_dataset, tmp_path):
    out = tmp_path / "model.pt"
    r = _cli("train.py", "--data", str(folder_dataset), "--model", "cnn", "--epochs", "2", "--image-size", "32",
             "--batch-size", "12", "--runs-dir", str(tmp_path / "runs"), "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    assert out.is_file() and "epoch 2:" in r.stdout

    r = _cli("-m", "covid_core", "evaluate", "--model", str(out), "--data", str(folder_dataset),
             "--out", str(tmp_path / "eval"))
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result["n"] == 12 and result["classes"] == ["normal", "pneumonia", "covid19"]
    assert len(result["confusion_matrix"]) == 3 and sum(map(sum, result["confusion_matrix"])) == 12
    assert set(result["per_class"]["covid19"]) >= {"sensitivity", "specificity", "ppv", "auc"}
    assert (tmp_path / "eval" / "roc.json").is_file() and (tmp_path / "eval" / "confusion_matrix.csv").is_file()

    good = folder_dataset / "test" / "covid19" / "covid19_000.png"
    bad = tmp_path / "broken.png"
    bad.write_bytes(good.read_bytes()[:100])
    csv_path = tmp_path / "pred.csv"
    r = _cli("-m", "covid_core", "predict", "--model", str(out), str(good), str(bad), "--out", str(csv_path))
    assert r.returncode == 0, r.stderr
    lines = csv_path.read_text().splitlines()
    assert lines[0].startswith("filename,label,p_normal,p_pneumonia,p_covid19")
    assert lines[1].split(",")[1] in ("normal", "pneumonia", "covid19")
    assert lines[2].startswith("broken.png,,") and "truncated or corrupt" in lines[2]
    # no site file: the verdict is withheld, with the reason on standard error; the raw output stays
    header, row = lines[0].split(","), lines[1].split(",")
    assert row[header.index("covid_verdict")] == "withheld"
    assert "no --site file validates this model" in r.stderr and "44-91%" in r.stderr
    # and in the CSV itself, for whoever reads only the CSV: why each verdict is withheld
    assert header[-1] == "withheld_why" and row[-1] == "the model is not validated at this hospital"
    assert lines[2].endswith(",")  # a file that could not be read has its error, and no verdict to withhold
    r = _cli("-m", "covid_core", "predict", "--model", str(out), str(good), "--unvalidated")
    assert r.returncode == 0 and "no --site file" not in r.stderr
    header, row = (line.split(",") for line in r.stdout.splitlines()[:2])
    verdict = row[header.index("covid_verdict")]  # withheld now only for an unfamiliar film
    assert verdict in ("positive", "negative", "withheld")
    assert (verdict == "withheld") == (row[header.index("ood_flagged")] == "true")
    assert (verdict != "withheld") == ("covid_verdict unconfirmed: --unvalidated" in r.stderr)
    assert row[header.index("withheld_why")] == ("" if verdict != "withheld" else
                                                 "the image is unlike the training X-rays")

    r = _cli("-m", "covid_core", "predict", "--model", str(out), str(bad))
    assert r.returncode != 0  # every file failed

    r = _cli("-m", "covid_core", "predict", "--model", str(out), str(good), "--format", "submission")
    assert r.returncode == 2 and "--unvalidated" in r.stderr and "Traceback" not in r.stderr
    r = _cli("-m", "covid_core", "predict", "--model", str(out), str(good), "--format", "submission", "--unvalidated")
    assert r.returncode == 0 and r.stdout.splitlines()[0] == "filename,label"
    assert r.stdout.splitlines()[1].split(",")[1] in ("positive", "negative")


def test_predict_tells_files_that_share_a_name_apart(tiny_checkpoint, tmp_path):
    # A hospital's set in class folders often repeats file names: covid/1.png and normal/1.png must stay apart.
    # Other files keep the bare file name the CSV has always had.
    import csv

    from app_helpers import png_bytes, xray_array

    folder = tmp_path / "site"
    for i, sub in enumerate(("covid", "normal", "normal/deep")):
        (folder / sub).mkdir(parents=True)
        (folder / sub / "1.png").write_bytes(png_bytes(xray_array(64, seed=i)))
    (folder / "covid" / "2.png").write_bytes(png_bytes(xray_array(64, seed=5)))
    single = tmp_path / "alone.png"
    single.write_bytes(png_bytes(xray_array(64, seed=9)))
    out = tmp_path / "p.csv"
    r = _cli("-m", "covid_core", "predict", "--model", str(tiny_checkpoint), str(folder), str(single), "--out", str(out))
    assert r.returncode == 0, r.stderr
    names = [row["filename"] for row in csv.DictReader(out.open())]
    assert names == ["covid/1.png", "2.png", "normal/1.png", "normal/deep/1.png", "alone.png"]


def test_predict_reads_dicoms_without_an_extension_and_names_the_files_it_skips(tiny_checkpoint, tmp_path):
    import csv

    from synthetic_files import dicom_gradient

    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "IM000001").write_bytes(dicom_gradient(64))
    (folder / "film.gif").write_bytes(b"GIF89a" + bytes(32))
    (folder / "notes.txt").write_text("exported 2026-12-01")
    (folder / ".DS_Store").write_bytes(b"\0" * 8)
    out = tmp_path / "p.csv"
    r = _cli("-m", "covid_core", "predict", "--model", str(tiny_checkpoint), str(folder), "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert [row["filename"] for row in csv.DictReader(out.open())] == ["IM000001"]
    assert "skipped 2 file(s) in the given folders that are not images" in r.stderr
    assert "film.gif, notes.txt" in r.stderr and ".DS_Store" not in r.stderr


def test_evaluate_on_a_set_missing_a_class_gives_nulls(folder_dataset, tmp_path, tiny_checkpoint):
    import shutil

    shutil.rmtree(folder_dataset / "test" / "pneumonia")
    r = _cli("-m", "covid_core", "evaluate", "--model", str(tiny_checkpoint), "--data", str(folder_dataset))
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result["n"] == 8
    assert result["per_class"]["pneumonia"]["sensitivity"] is None
    assert result["per_class"]["pneumonia"]["auc"] is None



def test_evaluate_stops_at_an_unreadable_film_unless_asked_to_evaluate_the_rest(folder_dataset, tmp_path,
                                                                                 tiny_checkpoint):
    """A hospital's evaluation set with a damaged film: named, and no figure is given that leaves it out unnoticed;
    with --skip-unreadable the rest is evaluated and the film listed in the output and its JSON."""
    (folder_dataset / "test" / "normal" / "damaged.png").write_bytes(b"\x89PNG\r\n\x1a\n cut short")
    env = {"COVID_CORE_CACHE": str(tmp_path / "cache")}
    r = _cli("-m", "covid_core", "evaluate", "--model", str(tiny_checkpoint), "--data", str(folder_dataset), env=env)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "normal/damaged.png" in r.stderr and "evaluate the rest with --skip-unreadable" in r.stderr
    r = _cli("-m", "covid_core", "evaluate", "--model", str(tiny_checkpoint), "--data", str(folder_dataset),
             "--skip-unreadable", env=env)
    assert r.returncode == 0, r.stderr
    assert "skipped 1 unreadable film(s): normal/damaged.png; they are in no figure below" in r.stdout
    result = json.loads(r.stdout.strip().splitlines()[-1])
    assert result["skipped"] == ["normal/damaged.png"] and result["n"] == 12  # the fixture's 12 test films

def test_training_stops_at_an_unreadable_film_unless_asked_to_leave_it_out(folder_dataset, tmp_path):
    """A data set with a damaged film: the run names it and says how to go on; with skip_unreadable it trains on the
    rest, and the checkpoint and its card name the film left out."""
    from covid_core.cards.classifier import card_markdown
    from covid_core.errors import DatasetError

    (folder_dataset / "train" / "normal" / "damaged.png").write_bytes(b"\x89PNG\r\n\x1a\n cut short")
    with pytest.raises(DatasetError, match=r"train/normal/damaged\.png.*train on the rest with --skip-unreadable"):
        run(_config(folder_dataset, tmp_path, epochs=1, run_id="stops"), progress=False)
    best = run(_config(folder_dataset, tmp_path, epochs=1, run_id="skips", skip_unreadable=True), progress=False)
    ckpt = load_checkpoint_dict(best)
    assert ckpt["training_data"]["unreadable_n"] == 1
    assert ckpt["training_data"]["unreadable"] == ["train/normal/damaged.png"]  # not test/normal/, nor covid19/
    counts = ckpt["class_counts"]
    assert sum(counts["train"].values()) + sum(counts["val"].values()) == 36  # the fixture's TRAIN films, not 37
    card = card_markdown(ckpt, "x.pt", "weights/x.pt")
    assert "- Left out: 1 film(s) that could not be read (`train/normal/damaged.png`); no figure here counts them" \
        in card
    assert "--skip-unreadable --model cnn" in card  # the command that reproduces it does not stop there


def test_cli_bad_input_is_one_line(tmp_path):
    r = _cli("-m", "covid_core", "evaluate", "--model", str(tmp_path / "none.pt"), "--data", str(tmp_path))
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "does not exist" in r.stderr
    evaluation_set = tmp_path / "hospital"  # class folders alone: films to test on, none to train on
    (evaluation_set / "normal").mkdir(parents=True)
    (evaluation_set / "normal" / "a.png").write_bytes(b"not read: the layout alone has no training films")
    for task in ("classify", "denoise"):
        for data, message in ((tmp_path / "missing", "does not exist"), (evaluation_set, "no training films")):
            # from the command line: one line, and no run folder left behind for a run that never started
            r = _cli("train.py", "--task", task, "--data", str(data), "--model", "cnn",
                     "--runs-dir", str(tmp_path / "runs"), "--run-id", f"cli-{task}")
            assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr
            assert not (tmp_path / "runs" / f"cli-{task}").exists()
        # a folder the Train page made for the run says why it failed, instead of "stopped, resume it"
        (tmp_path / "runs" / f"page-{task}").mkdir(parents=True)
        r = _cli("train.py", "--task", task, "--data", str(tmp_path / "missing"), "--model", "cnn",
                 "--runs-dir", str(tmp_path / "runs"), "--run-id", f"page-{task}")
        assert r.returncode == 2 and "does not exist" in r.stderr
        job = read_job(tmp_path / "runs" / f"page-{task}")
        assert job.state == "failed" and "does not exist" in job.status["error"]


def test_ddp_with_two_processes(folder_dataset, tmp_path):
    # the default recipe: source-and-class weighted draws, shared by the two processes
    r = _cli("-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "train.py",
             "--data", str(folder_dataset), "--model", "cnn", "--epochs", "2", "--image-size", "32",
             "--batch-size", "6", "--runs-dir", str(tmp_path / "runs"), "--run-id", "ddp", "--quiet",
             env={"OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    run_dir = RunDir(tmp_path / "runs" / "ddp")
    assert [m["epoch"] for m in run_dir.metrics()] == [1, 2]
    assert run_dir.read_json("status.json")["state"] == "finished"
    assert load_classifier(run_dir.best_checkpoint).classes == ("normal", "pneumonia", "covid19")


def test_ddp_without_a_run_id_shares_the_one_rank_zero_drew(folder_dataset, tmp_path):
    r = _cli("-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "train.py",
             "--data", str(folder_dataset), "--model", "cnn", "--epochs", "1", "--image-size", "32",
             "--batch-size", "6", "--balance", "loss", "--runs-dir", str(tmp_path / "runs"),
             env={"OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    folders = list((tmp_path / "runs").iterdir())
    assert len(folders) == 1 and RunDir(folders[0]).read_json("status.json")["state"] == "finished"
    # the two processes print at once, so one's line can land inside the other's: read the paths, not the lines
    printed = re.findall(r"best checkpoint: (\S+?/best\.pt)", r.stdout)
    assert len(printed) == 2 and set(printed) == {str(folders[0] / "best.pt")}  # every rank names the same run


def test_batched_augmentation_is_small_random_and_never_flips():
    import torch

    from covid_core.training import augment_batch

    torch.manual_seed(0)
    x = torch.zeros(64, 1, 48, 48)
    x[:, :, 10:38, 4:18] = 1.0  # a bright block on the LEFT side
    out = augment_batch(x.clone())
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    left, right = out[..., :24].mean((1, 2, 3)), out[..., 24:].mean((1, 2, 3))
    assert (left > 3 * right).all()  # no image was mirrored
    assert (out - x).abs().mean() > 0.01  # it did change the images...
    assert not torch.allclose(out[0], out[1])  # ...each differently
    torch.manual_seed(0)
    assert torch.equal(augment_batch(x.clone()), out)  # and the seed reproduces it


def test_amplitude_mix_gives_a_film_another_films_texture_and_keeps_its_anatomy():
    import torch

    from covid_core.augment import mix_amplitude

    def high_frequency_energy(x):
        return torch.fft.rfft2(x).abs()[..., 20:].pow(2).sum((1, 2, 3))  # the finest columns

    smooth = torch.zeros(1, 1, 48, 48)
    smooth[:, :, 10:38, 4:18] = 0.8  # a smooth film with a bright block on the LEFT side
    striped = torch.full((1, 1, 48, 48), 0.5)
    striped[..., ::2] += 0.3  # a film of fine texture only
    x = torch.cat([smooth.repeat(8, 1, 1, 1), striped.repeat(8, 1, 1, 1)])
    torch.manual_seed(0)
    out = mix_amplitude(x.clone(), share=1.0)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    smooth_out = out[:8]
    # the smooth films that drew a striped partner took its fine texture...
    gained = high_frequency_energy(smooth_out) > 10 * high_frequency_energy(smooth).item() + 1e-3
    assert gained.any()
    # ...and kept their own anatomy: the block is still on the left
    left, right = smooth_out[..., :24].mean((1, 2, 3)), smooth_out[..., 24:].mean((1, 2, 3))
    assert (left - right > 0.03).all()
    assert torch.equal(mix_amplitude(x.clone(), share=0.0), x)  # off: unchanged
    assert torch.equal(mix_amplitude(x[:1].clone(), share=1.0), x[:1])  # a single film has no partner
    torch.manual_seed(0)
    assert torch.equal(mix_amplitude(x.clone(), share=1.0), out)  # the seed reproduces it


def test_amplitude_mix_share_is_checked():
    with pytest.raises(ConfigError, match="amplitude mix must be a share from 0"):
        TrainConfig(data="x", amplitude_mix=1.5).validate()


def test_random_convolution_changes_texture_keeps_the_anatomy_and_never_inverts():
    import torch

    from covid_core.augment import random_convolution

    x = torch.zeros(16, 1, 48, 48)
    x[:, :, 10:38, 4:18] = 0.8  # a bright block on the LEFT side
    x += 0.1 * torch.rand_like(x)  # and a fine texture
    torch.manual_seed(0)
    out = random_convolution(x.clone(), share=1.0)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
    changed = (out - x).abs().mean((1, 2, 3)) > 0.005
    assert changed.sum() >= 8  # most films got a new texture (alpha near 1 leaves a film almost as it was)
    # every film still correlates positively with itself (never inverted) and keeps its block on the left
    a, b = x - x.mean((1, 2, 3), keepdim=True), out - out.mean((1, 2, 3), keepdim=True)
    assert ((a * b).sum((1, 2, 3)) > 0).all()
    assert (out[..., :24].mean((1, 2, 3)) - out[..., 24:].mean((1, 2, 3)) > 0.1).all()
    assert torch.equal(random_convolution(x.clone(), share=0.0), x)  # off: unchanged
    torch.manual_seed(0)
    assert torch.equal(random_convolution(x.clone(), share=1.0), out)  # the seed reproduces it
    with pytest.raises(ConfigError, match="random convolution must be a share from 0"):
        TrainConfig(data="x", random_conv=-0.1).validate()


@pytest.mark.parametrize("model_name", list_models())
def test_the_smallest_run_the_train_form_allows_finishes_for_every_architecture(model_name, folder_dataset, tmp_path):
    """8 images per split, 1 epoch: the familiarity fit has fewer films than feature dimensions and must cope."""
    from covid_core.runs import RunDir

    best = run(TrainConfig(data=str(folder_dataset), model=model_name, epochs=1, batch_size=8, image_size=32, limit=8,
                           seed=0, runs_dir=str(tmp_path / "runs"), run_id=f"small-{model_name}"), progress=False)
    status = RunDir(best.parent).read_json("status.json")
    assert status["state"] == "finished", status
    assert best.is_file()


def test_weight_averaging_spans_at_most_half_a_short_run():
    from covid_core.training.classifier import ema_decay_for

    assert ema_decay_for(0.99, 720) == 0.99  # the shipped recipe's run: the decay asked for
    assert ema_decay_for(0.99, 224) == 0.99  # the shortest documented run
    assert ema_decay_for(0.99, 40) == pytest.approx(0.95)  # a short run averages its last 20 steps, not its start
    assert ema_decay_for(0.99, 1) == 0.0  # one step: the trained weights themselves


def test_a_run_from_a_weights_file_resumes_without_it_and_keeps_its_first_digest(folder_dataset, tmp_path):
    """Once an epoch is saved, the run's own weights hold the starting file's: resuming needs the file no longer, and
    the checkpoint names the file and digest the run started from, even if the file has since changed or gone. A
    run killed before its first epoch needs the file again, and refuses one that changed since it started."""
    import hashlib
    import shutil

    import torch

    from covid_core.models import build_model

    torch.manual_seed(7)
    weights = tmp_path / "start.pt"
    torch.save(build_model("cnn", 3).state_dict(), weights)
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    config = dict(epochs=2, lr=1e-7, pretrained=str(weights))
    best = run(_config(folder_dataset, tmp_path, run_id="stopped", **config), on_epoch=lambda r: False,
               progress=False)
    before_first = tmp_path / "runs" / "killed-early"
    shutil.copytree(best.parent, before_first)
    (before_first / "last.pt").unlink()  # as a kill before the first epoch ended leaves it

    torch.manual_seed(8)
    torch.save(build_model("cnn", 3).state_dict(), weights)  # the file changed after the run started
    with pytest.raises(ConfigError, match="changed since this run started"):
        run(TrainConfig(), progress=False, resume=str(before_first))
    weights.unlink()
    resumed = load_checkpoint_dict(run(TrainConfig(), progress=False, resume=str(best.parent)))
    assert resumed["epoch"] in (1, 2) and [r["epoch"] for r in RunDir(best.parent).metrics()] == [1, 2]
    assert resumed["starting_weights"] == {"file": str(weights), "sha256": digest}


def test_training_starts_from_a_weights_file_and_its_card_says_which(folder_dataset, tmp_path):
    """`--pretrained FILE` (e.g. self-supervised weights from bench/self_supervised.py): training starts from the
    file's backbone, and the card's command names the file."""
    import torch

    from covid_core.cards.classifier import reproduce_command
    from covid_core.models import build_model

    torch.manual_seed(7)
    start = build_model("cnn", 3).state_dict()
    weights = tmp_path / "start.pt"
    torch.save(start, weights)
    best = run(_config(folder_dataset, tmp_path, epochs=1, lr=1e-7, run_id="from-file", pretrained=str(weights)),
               progress=False)
    ckpt = load_checkpoint_dict(best)
    conv = [k for k, v in start.items() if v.ndim == 4]
    assert conv and all(torch.allclose(ckpt["state_dict"][k], start[k], atol=1e-4) for k in conv)
    scratch = load_checkpoint_dict(run(_config(folder_dataset, tmp_path, epochs=1, lr=1e-7, run_id="scratch"),
                                       progress=False))
    assert not any(torch.allclose(scratch["state_dict"][k], start[k], atol=1e-4) for k in conv)
    assert f"--pretrained {weights}" in reproduce_command(ckpt["train_config"], "out.pt")
    import hashlib

    from covid_core.cards.classifier import starting_weights_lines

    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert ckpt["starting_weights"] == {"file": str(weights), "sha256": digest}
    assert starting_weights_lines(ckpt) == [f"- Started from the weights file `{weights}` (sha256 `{digest}`); the "
                                            "command needs that file"]
    assert "starting_weights" not in scratch and starting_weights_lines(scratch) == []
    from covid_core.model_summary import starting_point  # the Models page's "started from"

    assert starting_point(ckpt) == f"the weights file {weights} (sha256 {digest[:16]}...)"
    assert starting_point(scratch) == "random weights"
    assert starting_point({"train_config": {"pretrained": "imagenet"}}) == "ImageNet weights"
    assert starting_point({"train_config": {"pretrained": ["x"]}}) == "the weights file ['x']"  # damaged: no crash
    weights.unlink()  # the card of a model whose starting file is gone still names it
    assert f"--pretrained {weights}" in reproduce_command(ckpt["train_config"], "out.pt")


@pytest.mark.parametrize("config_text, words", [
    ("{garbage", "its config.json is damaged"),
    ('{"model": "cnn", "epochs": "many"}', "its saved settings are damaged"),
    ('{"model": "cnn", "epochs": 2, "lr": -1}', "learning rate must be above 0"),
])
def test_resuming_a_run_whose_saved_settings_are_damaged_says_so(tmp_path, config_text, words):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(config_text)
    result = subprocess.run([sys.executable, str(REPO / "train.py"), "--resume", str(run)], capture_output=True,
                            text=True, timeout=300, cwd=REPO)
    assert result.returncode == 2 and "Traceback" not in result.stderr and words in result.stderr


@pytest.mark.parametrize("batch_size", [0, -3, 100000])
def test_evaluate_refuses_a_batch_size_no_pass_can_use_before_it_reads_the_data(tmp_path, tiny_checkpoint,
                                                                               batch_size):
    from covid_core.commands.evaluate import evaluate_checkpoint

    with pytest.raises(ConfigError, match="batch size must be a whole number from 1 to 1024"):
        evaluate_checkpoint(str(tiny_checkpoint), str(tmp_path / "no such data"), batch_size=batch_size)


def test_a_resumed_run_does_not_need_the_pretrained_file_it_started_from():
    config = TrainConfig(data="x", pretrained="no/such/weights.pt")
    with pytest.raises(ConfigError, match="pretrained must be none, imagenet, or the path"):
        config.validate()
    assert config.validate(resumed=True) is config  # its weights come from the run's own checkpoint
