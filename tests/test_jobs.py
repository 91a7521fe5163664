"""Training jobs started through covid_core.jobs: a real tiny run, refusals, concurrent starts."""

from __future__ import annotations

import json

import pytest
from app_helpers import make_folders_data
from covid_core import jobs
from covid_core.errors import ConfigError
from covid_core.model_catalog import list_checkpoints, usable_classifiers
from covid_core.runs import RunDir
from covid_core.training import TrainConfig


@pytest.fixture
def folders_data(tmp_path):
    return make_folders_data(tmp_path / "data", per_class=6, size=40)


def _config(data_dir, runs, **kw) -> TrainConfig:
    base = dict(data=str(data_dir), model="cnn", epochs=1, batch_size=8, image_size=32, limit=12, runs_dir=str(runs),
                augment=False)
    base.update(kw)
    return TrainConfig(**base)


def test_tiny_job_runs_to_the_end(folders_data, tmp_path, monkeypatch):
    monkeypatch.setenv("COVID_CORE_CACHE", str(tmp_path / "cache"))
    runs = tmp_path / "runs"
    job = jobs.start_training(_config(folders_data, runs, balance="group", ema_decay=0.9))
    assert job.path.parent == runs.resolve() and (job.path / "job.json").is_file()
    final = jobs.wait(job, timeout_s=240)
    log = jobs.tail_log(final, 50)
    assert final.state == "finished", log
    assert final.progress == 1.0
    result = json.loads((final.path / "result.json").read_text())
    assert result["metrics"]["test"]["n"] > 0
    saved = json.loads((final.path / "config.json").read_text())
    assert saved["balance"] == "group" and saved["ema_decay"] == 0.9  # the form's choices reached train.py
    assert [j.run_id for j in jobs.list_jobs(runs)] == [final.run_id]
    # a finished run becomes a usable model in the catalog
    monkeypatch.setenv("COVID_XRAY_WEIGHTS", str(tmp_path / "no-weights"))
    assert [e.label for e in usable_classifiers(runs_dir=runs)] == [f"run {final.run_id}"]


@pytest.mark.parametrize("change, message", [
    ({"epochs": 0}, "epochs"), ({"lr": -1.0}, "learning rate"), ({"batch_size": 0}, "batch size"),
    ({"model": "resnet19"}, "resnet18"), ({"image_size": 8}, "image size"), ({"data": "/nonexistent/folder"}, "data folder"),
    ({"holdout_source": "nihh"}, "no film of source 'nihh' to hold out; the sources here are: unknown"),
    ({"holdout_source": "unknown"}, "no training images usable for target '3class' once source 'unknown' is left out"),
])
def test_bad_values_are_refused_before_anything_starts(folders_data, tmp_path, change, message):
    runs = tmp_path / "runs"
    with pytest.raises(ConfigError, match=message):
        jobs.start_training(_config(folders_data, runs, **change))
    assert not runs.exists() or not any(runs.iterdir())


def test_unknown_task_is_refused(folders_data, tmp_path):
    with pytest.raises(ConfigError, match="classify, denoise"):
        jobs.start_training(_config(folders_data, tmp_path / "runs"), task="segment")


def test_two_jobs_at_once_get_separate_folders_and_can_be_cancelled(folders_data, tmp_path, monkeypatch):
    monkeypatch.setenv("COVID_CORE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("COVID_XRAY_MAX_JOBS", "2")
    runs = tmp_path / "runs"
    # patience as long as the run: early stopping must not end a job before it is looked at
    a = jobs.start_training(_config(folders_data, runs, epochs=50, patience=50))
    b = jobs.start_training(_config(folders_data, runs, epochs=50, patience=50))
    try:
        assert a.run_id != b.run_id and a.path != b.path
        assert a.pid != b.pid
        assert {j.run_id for j in jobs.list_jobs(runs)} == {a.run_id, b.run_id}
        listed = jobs.list_jobs(runs)
        assert all(j.active for j in listed), [(j.state, jobs.tail_log(j, 10)) for j in listed]
    finally:
        for j in (a, b):
            jobs.cancel(j)
    for j in (a, b):
        final = jobs.wait(j, timeout_s=120)
        assert final.state in ("cancelled", "finished", "failed"), final.state
        assert not final.active
    assert jobs.cancel(jobs.read_job(a.path)) is False  # nothing left to stop


def test_hostile_form_values_run_nothing_and_write_nowhere_else(tmp_path, monkeypatch):
    """Shell metacharacters are plain text to train.py; run ids cannot climb out of the runs folder."""
    monkeypatch.setenv("COVID_CORE_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    runs = tmp_path / "runs"
    plain = make_folders_data(tmp_path / "plain", per_class=2, size=32)
    for change, message in (({"run_id": "../outside"}, "run id"), ({"run_id": "/tmp/abs"}, "run id"),
                            ({"model": "cnn; touch pwned"}, "resnet18"), ({"target": "3class && touch pwned"}, "target"),
                            ({"device": "cuda:0; touch pwned"}, "device")):
        with pytest.raises(ConfigError, match=message):
            jobs.start_training(_config(plain, runs, **change))
    assert not (tmp_path / "outside").exists() and not (tmp_path / "pwned").exists()
    # A data folder whose name is a shell injection attempt is just a folder name.
    evil = make_folders_data(tmp_path / "d; touch pwned1 $(touch pwned2) `touch pwned3`", per_class=6, size=40)
    job = jobs.start_training(_config(evil, runs))
    command = json.loads((job.path / "job.json").read_text())["command"]
    assert command[command.index("--data") + 1] == str(evil.resolve())  # one argument, passed verbatim
    final = jobs.wait(job, timeout_s=240)
    assert final.state == "finished", jobs.tail_log(final, 30)
    assert not list(tmp_path.glob("pwned*")) and not list(evil.glob("pwned*"))
    assert sorted(p.name for p in runs.iterdir()) == [final.run_id]  # everything the run wrote is in its folder


def test_runs_are_listed_newest_first_whatever_their_names(tmp_path):
    import os

    from covid_core.runs import list_runs

    runs = tmp_path / "runs"
    for i, name in enumerate(["zz-old", "aa-newest", "mm-middle"]):
        (runs / name).mkdir(parents=True)
        (runs / name / "config.json").write_text("{}")
        os.utime(runs / name / "config.json", (1_000 + [0, 200, 100][i],) * 2)
    assert [r.id for r in list_runs(runs)] == ["aa-newest", "mm-middle", "zz-old"]


def test_the_denoiser_trains_with_its_own_epochs_batch_and_learning_rate(folders_data, tmp_path):
    """The form's classifier settings never reach a denoiser run: it gets DAETrainConfig's own."""
    import argparse

    from covid_core.commands import train as train_command
    from covid_core.denoise.training import DAETrainConfig

    config = _config(folders_data, tmp_path / "runs", epochs=3, batch_size=8, lr=0.05)
    config.run_id = "x"
    dae_cmd, clf_cmd = jobs.build_command(config, task="denoise"), jobs.build_command(config, task="classify")
    assert "--epochs" not in dae_cmd and "--lr" not in dae_cmd and "--batch-size" not in dae_cmd
    assert clf_cmd[clf_cmd.index("--epochs") + 1] == "3" and clf_cmd[clf_cmd.index("--lr") + 1] == "0.05"
    parser = argparse.ArgumentParser()
    train_command.add_arguments(parser)
    args = parser.parse_args(["--task", "denoise", "--data", "x"])
    assert (args.epochs, args.batch_size, args.lr) == (None, None, None)  # so train_dae falls back to its own
    d = DAETrainConfig()
    c = TrainConfig()
    assert (d.epochs, d.batch_size, d.lr) != (c.epochs, c.batch_size, c.lr)  # and its own differ from the classifier's


def _write_run(runs, run_id: str, files: dict) -> None:
    run = runs / run_id
    run.mkdir(parents=True)
    for name, text in files.items():
        (run / name).write_text(text)


FINISHED = {"status.json": json.dumps({"state": "finished", "epoch": 2, "epochs": 2}),
            "config.json": json.dumps({"model": "cnn", "target": "3class", "epochs": 2}),
            "result.json": json.dumps({"metrics": {"test": {"accuracy": 0.5, "macro_auc": 0.61}},
                                       "threshold": {"test": {"sensitivity": 0.9, "specificity": "high"}}})}
# A folder from another version, or edited by hand: valid JSON of the wrong kind in every file.
DAMAGED = {"status.json": "[1, 2]", "job.json": json.dumps({"pid": "12", "task": ["x"], "started": "now"}),
           "config.json": "3", "result.json": json.dumps({"metrics": [1]}),
           "metrics.jsonl": "5\nnull\n" + json.dumps({"epoch": 1, "train_loss": 0.7}) + "\n[]\n"}
ODD_VALUES = {"status.json": json.dumps({"state": {"a": 1}, "epoch": "3", "epochs": 1e308, "step": -4, "loss": "low",
                                         "pid": 10 ** 30})}


def test_a_damaged_run_folder_is_listed_as_such_and_hides_no_other_run(tmp_path):
    runs = tmp_path / "runs"
    _write_run(runs, "20250101-000000-cnn-aaaaaa", FINISHED)
    (runs / "20250101-000000-cnn-aaaaaa" / "best.pt").write_bytes(b"")  # an unreadable checkpoint: listed unusable
    _write_run(runs, "20250102-000000-cnn-bbbbbb", DAMAGED)
    _write_run(runs, "20250103-000000-cnn-cccccc", ODD_VALUES)
    (runs / "ablation-160").mkdir()  # a benchmark's work folder (bench/shortcut_ablation.py --work runs/...)
    (runs / "ablation-160" / "model.pt").write_bytes(b"")
    listed = {j.run_id: j for j in jobs.list_jobs(runs)}
    assert "ablation-160" not in listed  # not a run: none of a run's own files
    assert listed["20250101-000000-cnn-aaaaaa"].state == "finished"
    damaged, odd = listed["20250102-000000-cnn-bbbbbb"], listed["20250103-000000-cnn-cccccc"]
    # job.json names a launch but no status says how it went, and its pid is not a number: not alive, so failed
    assert (damaged.state, damaged.task, damaged.pid, damaged.config, damaged.started) == (
        "failed", "classify", None, {}, None)
    assert RunDir(damaged.path).metrics() == [{"epoch": 1, "train_loss": 0.7}]  # the one row that is a row
    assert RunDir(damaged.path).test_figures() == {}
    assert odd.state == "unknown" and odd.pid is None and odd.progress == 0.0
    assert odd.status["epoch"] is None and odd.status["loss"] is None
    assert RunDir(listed["20250101-000000-cnn-aaaaaa"].path).test_figures() == {
        "accuracy": 0.5, "macro_auc": 0.61, "sensitivity": 0.9, "specificity": None}
    assert [e.label for e in list_checkpoints(tmp_path / "no-weights", runs)] == ["run 20250101-000000-cnn-aaaaaa"]


def test_fuzzed_run_folders_never_break_the_list_of_runs(tmp_path):
    """Seeded random values of every kind in each file of a run folder: listing the runs, the catalog of models
    and what the Train page computes from a run (its settings, progress, curves and TEST figures) never raise."""
    import random

    from covid_core.model_charts import training_curves

    values = [None, True, 0, -1, 10 ** 30, 1e308, float("nan"), "x", "", [], [1], {}, {"a": 1}, "finished",
              "running", 1.5]
    templates = {**{k: json.loads(v) for k, v in FINISHED.items()},
                 "job.json": {"pid": 1, "task": "classify", "started": 1.0},
                 "status.json": {"state": "running", "epoch": 2, "epochs": 12, "step": 5, "steps": 58, "loss": 0.41,
                                 "pid": 1, "kind": "classifier"}}

    def mutate(obj, rng):
        if isinstance(obj, dict) and obj and rng.random() < 0.7:
            obj, key = dict(obj), rng.choice(sorted(obj))
            obj[key] = mutate(obj[key], rng)
            return obj
        return rng.choice(values)

    rng = random.Random(20261206)
    runs = tmp_path / "runs"
    for i in range(300):
        files = {name: json.dumps(mutate(t, rng) if rng.random() < 0.6 else t) for name, t in templates.items()}
        files["metrics.jsonl"] = "".join(json.dumps(mutate({"epoch": 1, "train_loss": 0.5, "val_macro_auc": 0.6}, rng))
                                         + "\n" for _ in range(3))
        _write_run(runs, f"run-{i:03d}", files)
        (runs / f"run-{i:03d}" / "best.pt").write_bytes(b"")
    listed = jobs.list_jobs(runs)
    assert len(listed) == 300
    for job in listed:
        job.settings_text()
        job.progress_text()
        assert 0.0 <= job.progress <= 1.0
        rows = RunDir(job.path).metrics()
        if rows:
            training_curves(rows)
        assert all(v is None or 0 <= v <= 1 for v in RunDir(job.path).test_figures().values())
    assert len(list_checkpoints(tmp_path / "no-weights", runs)) == len([j for j in listed if j.state == "finished"])
