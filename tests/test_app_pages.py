"""AppTest of the Train, Models, Explore and Denoise pages (tiny checkpoint, tiny synthetic images)."""

from __future__ import annotations

import json
import os

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from app_helpers import APP, make_folders_data, png_bytes, xray_array

TIMEOUT = 60


@pytest.fixture
def folders_data(tmp_path):
    root = make_folders_data(tmp_path / "data")
    # a byte-identical copy across splits (a leak) and a blank image (an outlier)
    (root / "test" / "normal" / "leak.png").write_bytes((root / "train" / "normal" / "train0.png").read_bytes())
    Image.new("L", (48, 48), 0).save(root / "train" / "normal" / "blank.png")
    return root


def page(name: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page(f"views/{name}.py").run()
    assert not at.exception, at.exception
    return at


def test_a_failed_runs_error_is_shown_as_it_is_not_as_markdown(env):
    """A run's error can quote a data set's CSV cell or file name, which whoever made the data set chose: written as
    a Markdown image, it is escaped, so the browser shows its characters and fetches nothing from another host."""
    from covid_core.formatting import markdown_plain

    run = env / "runs" / "20250101-000000-cnn-fa11ed"
    run.mkdir(parents=True)
    error = "unknown label '![seen](http://evil.example/p.png)' in metadata.csv"
    (run / "status.json").write_text(json.dumps({"state": "failed", "epoch": 0, "epochs": 1, "error": error}))
    data = "/data/`a`![seen](http://evil.example/p.png)`b`"  # a backtick of its own would end a plain code span
    (run / "config.json").write_text(json.dumps({"model": "![cnn](http://evil.example/m.png)", "target": "3class",
                                                 "epochs": 1, "data": data}))
    at = page("train")
    assert markdown_plain(error) in [e.value for e in at.error]
    assert error not in [e.value for e in at.error]
    [settings] = [c.value for c in at.caption if "target 3class" in c.value]
    assert settings.startswith(markdown_plain("![cnn](http://evil.example/m.png)") + " · ") and settings.endswith(f"data `` {data} ``")
    assert " · 1 epoch · " in settings  # not "1 epochs"


def test_train_refuses_bad_values_and_lists_runs(env):
    run = env / "runs" / "20250101-000000-cnn-abcdef"
    run.mkdir(parents=True)
    (run / "status.json").write_text(json.dumps({"state": "finished", "epoch": 1, "epochs": 1}))
    (run / "config.json").write_text(json.dumps({"model": "cnn", "target": "3class", "epochs": 1}))
    (run / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "train_loss": 1.0, "val_macro_auc": 0.6}) + "\n")
    (run / "result.json").write_text(json.dumps({"metrics": {"test": {"accuracy": 0.5, "macro_auc": 0.61}}}))
    at = page("train")
    [run_box] = [e for e in at.expander if "20250101-000000-cnn-abcdef" in e.label]
    assert "finished" in run_box.label
    # the methods that did not beat the shipped recipe are folded away, with what was measured
    [methods] = [e for e in at.expander if e.label.startswith("Methods against source shortcuts")]
    assert "docs/shortcuts.md" in methods.caption[0].value
    assert any(m.value == "0.610" for m in at.metric)  # the run's TEST macro AUC
    assert "source and class sampler" in at.selectbox(key="train_balance").options
    assert at.checkbox(key="train_ema").value is True  # weight averaging is offered, on as in the chosen recipe
    # the widgets cannot go outside TrainConfig's ranges; what they allow but it refuses comes back in one message
    assert (at.number_input(key="train_epochs").min, at.number_input(key="train_epochs").max) == (1, 1000)
    assert (at.number_input(key="train_bs").min, at.number_input(key="train_bs").max) == (1, 1024)
    at.number_input(key="train_size").set_value(16)
    at.number_input(key="train_limit").set_value(3)
    at.text_input(key="train_data").set_value(str(env))
    at.button[0].click().run()  # the form's submit button
    assert not at.exception
    [error] = [e.value for e in at.error if "Not started" in e.value]
    assert "image size must be from 32 to 1024" in error and "images per split (limit) must be at least 8" in error
    assert len(list((env / "runs").iterdir())) == 1  # nothing new started
    at.number_input(key="train_size").set_value(0)
    at.number_input(key="train_limit").set_value(0)
    at.text_input(key="train_data").set_value(str(env / "nowhere"))
    at.button[0].click().run()
    assert any("is not a folder inside" in e.value for e in at.error)


def test_the_train_form_says_at_once_that_an_evaluation_set_has_no_training_films(env):
    import shutil

    data = make_folders_data(env / "data")
    shutil.rmtree(data / "train")  # test/<class>/ alone: a hospital's evaluation set
    at = page("train")
    at.text_input(key="train_data").set_value(str(data))
    at.button[0].click().run()
    assert not at.exception, at.exception
    [error] = [e.value for e in at.error if "Not started" in e.value]
    shown = error.replace("\\", "")  # as the page shows it: the Markdown escapes resolved
    assert "has no training films: " in shown and "put the films in train/<class>/ folders" in shown
    assert not (env / "runs").exists() or not any((env / "runs").iterdir())  # nothing started


def test_an_unexpected_error_in_a_page_is_a_message_not_a_traceback(env, monkeypatch, caplog):
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(APP).parent))
    import ui

    def broken_catalog():
        raise RuntimeError("a detail of the server: /srv/private/path")

    monkeypatch.setattr(ui, "catalog", broken_catalog)
    at = page("models")  # asserts that no exception reached the page
    [error] = [e.value for e in at.error]
    assert error.startswith("This page stopped on an unexpected error (RuntimeError).") and "/srv" not in error
    assert any(r.name == "covid_xray_app" and "/srv/private/path" in str(r.exc_info[1]) for r in caplog.records)


def test_a_live_panel_that_fails_unexpectedly_shows_a_message_not_a_traceback(monkeypatch, caplog):
    """Live panels (fragments) rerun on their own, outside the page's guard, so they carry one of their own."""
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(APP).parent))

    def script():
        import streamlit as st

        import ui

        @st.fragment
        @ui.guarded("the runs panel")
        def panel():
            raise ValueError("a detail of the server: /srv/private/path")

        panel()

    at = AppTest.from_function(script, default_timeout=TIMEOUT).run()
    assert not at.exception, at.exception
    [error] = [e.value for e in at.error]
    assert error.startswith("This panel stopped on an unexpected error (ValueError).") and "/srv" not in error
    assert any(r.name == "covid_xray_app" and "/srv/private/path" in str(r.exc_info[1]) for r in caplog.records)


def test_diagnose_offers_trial_and_weaker_runs_only_in_research_mode(env):
    import copy

    from covid_core.checkpoint import atomic_save, load_checkpoint_dict

    shipped = load_checkpoint_dict(env / "weights" / "tiny_cnn.pt")  # TEST macro AUC 0.9
    for run_id, auc, limit in (("better", 0.95, None), ("trial", 0.99, 10), ("weaker", 0.5, None)):
        ckpt = copy.deepcopy(shipped)
        ckpt["metrics"]["test"]["macro_auc"] = auc
        ckpt["train_config"]["limit"] = limit
        run = env / "runs" / f"20250101-000000-cnn-{run_id}"
        run.mkdir(parents=True)
        atomic_save(ckpt, run / "best.pt")
        (run / "status.json").write_text(json.dumps({"state": "finished", "epoch": 1, "epochs": 1}))
        (run / "result.json").write_text(json.dumps({"metrics": {"test": {"accuracy": 0.8, "macro_auc": auc}}}))
    at = page("diagnose")
    offered = at.selectbox(key="diag_model").options
    assert len(offered) == 2 and not [o for o in offered if "trial" in o or "weaker" in o], offered
    assert any(c.value.startswith("2 trial or weaker model(s) hidden") for c in at.sidebar.caption)
    at.toggle(key="diag_research").set_value(True).run()
    assert len(at.selectbox(key="diag_model").options) == 4
    # the Train page says the same of each finished run, not "selectable on the Diagnose page" for every one
    at.switch_page("views/train.py").run()
    assert not at.exception, at.exception
    said = {run_id: [c.value for e in at.expander if run_id in e.label for c in e.caption if "Diagnose" in c.value]
            for run_id in ("better", "trial", "weaker")}
    assert said["better"] == ["This model is now selectable on the **Diagnose** page."]
    assert said["trial"] == ["The **Diagnose** page offers this model in research mode only: a trial run on at most "
                             "10 images per split."]
    assert said["weaker"] == ["The **Diagnose** page offers this model in research mode only: TEST macro AUC 0.500, "
                              "below the shipped models' (0.900)."]
    at.switch_page("views/models.py").run()
    used_on = at.dataframe[0].value.set_index("checkpoint")["used on"]
    assert [used_on[f"run 20250101-000000-cnn-{run_id}"] for run_id in ("better", "trial", "weaker")] == [
        "Diagnose", "Diagnose (research mode)", "Diagnose (research mode)"]
    assert used_on["tiny_cnn.pt"] == "Diagnose"


def test_a_finished_run_can_be_deleted_on_purpose_and_a_running_one_cannot(env):
    import subprocess
    import sys

    from covid_core import jobs
    from covid_core.errors import ConfigError

    finished = env / "runs" / "20250101-000000-cnn-finish"
    finished.mkdir(parents=True)
    (finished / "status.json").write_text(json.dumps({"state": "finished", "epoch": 1, "epochs": 1}))
    (finished / "best.site.json").write_text("{}")
    running = env / "runs" / "20250101-000000-cnn-runnin"
    running.mkdir()
    # a live process whose command line names the run, as a training run's does
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", running.name])
    try:
        (running / "status.json").write_text(json.dumps({"state": "running", "epoch": 1, "epochs": 9,
                                                         "pid": proc.pid}))
        at = page("train")
        keys = {b.key for b in at.button}
        assert "delete_20250101-000000-cnn-finish" in keys and "delete_20250101-000000-cnn-runnin" not in keys
        assert at.button(key="delete_20250101-000000-cnn-finish").disabled  # not without saying so first
        at.checkbox(key="delete_ok_20250101-000000-cnn-finish").check().run()
        at.button(key="delete_20250101-000000-cnn-finish").click().run()
        assert not at.exception, at.exception
        assert not finished.exists() and running.exists()
        assert not [e for e in at.expander if "cnn-finish" in e.label]
        with pytest.raises(ConfigError, match="is still running; cancel it, then delete it"):
            jobs.delete(jobs.read_job(running))
        assert running.exists()
    finally:
        proc.kill()
        proc.wait()
    stray = env / "runs" / "not-a-run"
    stray.mkdir()
    (stray / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="holds none of a run's files"):
        jobs.delete(jobs.read_job(stray))
    assert (stray / "notes.txt").exists()


def test_the_runs_panel_says_when_it_shows_only_the_newest_runs(env):
    for i in range(32):
        run = env / "runs" / f"20250101-0000{i:02d}-cnn-aaaaaa"
        run.mkdir(parents=True)
        (run / "status.json").write_text(json.dumps({"state": "failed", "epoch": 0, "epochs": 1, "error": "x"}))
    at = page("train")
    assert sum("-cnn-aaaaaa" in e.label for e in at.expander) == 30
    assert any(c.value.startswith("The newest 30 of 32 runs are shown; the others are in `") for c in at.caption)


def test_a_run_folder_of_the_wrong_kind_breaks_no_page(env):
    """A run folder whose files hold valid JSON of the wrong kind (another version's, or edited by hand) is listed
    as what it is; Diagnose, whose model list reads every run's status, and the Train page still work."""
    damaged = env / "runs" / "20250102-000000-cnn-bbbbbb"
    damaged.mkdir(parents=True)
    (damaged / "status.json").write_text("[1, 2]")
    (damaged / "metrics.jsonl").write_text("5\n" + json.dumps({"epoch": 1, "train_loss": 0.7}) + "\n")
    odd = env / "runs" / "20250103-000000-cnn-cccccc"
    odd.mkdir()
    (odd / "status.json").write_text(json.dumps({"state": {"a": 1}, "epoch": "3", "loss": "low"}))
    (odd / "result.json").write_text(json.dumps({"metrics": {"test": {"accuracy": "x", "macro_auc": [1]}}}))
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()  # Diagnose
    assert not at.exception, at.exception
    at.switch_page("views/train.py").run()
    assert not at.exception, at.exception
    labels = [e.label for e in at.expander]
    assert any("20250102-000000-cnn-bbbbbb" in label and "unknown" in label for label in labels)
    assert any("20250103-000000-cnn-cccccc" in label and "unknown" in label for label in labels)
    assert [m.value for m in at.metric][:2] == ["n/a", "n/a"]  # figures of the wrong kind are not shown as figures
    assert sum("status file is missing, damaged or written by another version" in w.value for w in at.warning) == 2


def test_train_form_choices_reach_the_started_command(env, folders_data):
    from covid_core import jobs

    # two sources, so that one can be left out (a source the data set does not hold is refused before the start)
    films = sorted(p.name for p in folders_data.rglob("*.png"))
    (folders_data / "provenance.csv").write_text("X_ray_image_name,patient,source\n" + "".join(
        f"{name},p{i},{'nih' if i % 2 else 'other'}\n" for i, name in enumerate(films)))
    at = page("train")
    at.text_input(key="train_data").set_value(str(folders_data))
    at.number_input(key="train_epochs").set_value(1)
    assert at.checkbox(key="train_ema").value and at.selectbox(key="train_balance").value == "group"  # the recipe
    at.checkbox(key="train_ema").uncheck()
    at.selectbox(key="train_balance").select("none")
    at.text_input(key="train_holdout").set_value(" nih ")
    at.number_input(key="train_amplitude").set_value(0.5)
    at.number_input(key="train_randconv").set_value(0.3)
    at.number_input(key="train_source_mix").set_value(0.4)
    at.number_input(key="train_patch").set_value(0.5)
    at.number_input(key="train_group_dro").set_value(0.05)
    at.number_input(key="train_contrast").set_value(0.7)
    at.number_input(key="train_mix_style").set_value(0.6)
    at.number_input(key="train_source_prior").set_value(0.8)
    assert at.number_input(key="train_sensitivity").value == 0.9  # the shipped operating rule
    at.selectbox(key="train_fit").select("thorax")
    at.selectbox(key="train_equalize").select("hist")
    at.number_input(key="train_sensitivity").set_value(0.95)
    at.number_input(key="train_seed").set_value(3)
    assert not at.checkbox(key="train_skip").value  # by default an unreadable film stops the run
    at.checkbox(key="train_skip").check()
    at.button[0].click().run()
    assert not at.exception and any("Started run" in s.value for s in at.success)
    [job] = jobs.list_jobs(env / "runs")
    try:
        command = json.loads((job.path / "job.json").read_text())["command"]
        assert float(command[command.index("--ema-decay") + 1]) == 0.0
        assert command[command.index("--balance") + 1] == "none"
        assert command[command.index("--holdout-source") + 1] == "nih"
        assert command[command.index("--amplitude-mix") + 1] == "0.5"
        assert command[command.index("--random-conv") + 1] == "0.3"
        assert command[command.index("--source-mix") + 1] == "0.4"
        assert command[command.index("--patch-crop") + 1] == "0.5"
        assert command[command.index("--group-dro") + 1] == "0.05"
        assert command[command.index("--source-contrast") + 1] == "0.7"
        assert command[command.index("--mix-style") + 1] == "0.6"
        assert command[command.index("--source-prior") + 1] == "0.8"
        assert command[command.index("--fit") + 1] == "thorax" and command[command.index("--equalize") + 1] == "hist"
        assert command[command.index("--covid-sensitivity") + 1] == "0.95"
        assert command[command.index("--seed") + 1] == "3"
        assert "--skip-unreadable" in command
    finally:
        jobs.cancel(job)


def test_models_card_shows_metrics_roc_confusion_and_confound(env):
    at = page("models")
    overview = at.dataframe[0].value
    assert overview["checkpoint"].tolist() == ["tiny_cnn.pt"]
    # the fixture's TEST accuracy and its COVID-19 PPV at the operating threshold, for comparing runs at a glance
    assert overview["accuracy"].tolist() == [0.8] and overview["PPV"].tolist() == [9 / 14]
    labels = {m.label: m.value for m in at.metric}
    assert labels["TEST macro AUC"] == "0.900"
    # beside the TEST figures, what they do not say: measured at a hospital left out of training
    assert any(w.value.startswith("These TEST figures come from the hospitals the model was trained on")
               and "wrong COVID-19 verdict" in w.value for w in at.warning)
    text = "\n".join(m.value for m in at.markdown)
    assert "**cnn**, target **3class**" in text
    # the TEST rates at the threshold with their counts, as a table that stays readable in a narrow window
    assert "| sensitivity | 90.0% (9 of 10) |" in text and "| NPV | 93.8% (15 of 16) |" in text
    charts = at.get("plotly_chart")
    assert len(charts) == 2  # ROC and confusion matrix
    assert any("cohen" in w.value and "covid19" in w.value for w in at.warning)  # one-class source
    # The limits stored by `model-card`: normal vs pneumonia, thorax share per class, OOD check.
    assert "| normal vs pneumonia | AUC 0.930, accuracy 90.0% (20 films" in text
    # a card written before cards named their heatmap measured Grad-CAM at the last stage, and says so
    assert ("| heatmap energy inside the thorax | normal 60.0%, pneumonia 41.0%, covid19 55.0% (gradcam at the last "
            "stage;") in text
    assert "97.5% of 40 non-X-rays, 90.0% of 80 rotated or inverted X-rays, 3.3% of 30 TEST X-rays" in text
    calls = [df.value for df in at.dataframe if "called covid" in df.value.columns][0]
    assert calls.set_index("true class").loc["pneumonia", "called covid"] == 1
    assert any("whose most probable class was covid19" in c.value for c in at.caption)  # fixture: no threshold rows
    card = [m.value for m in at.markdown if m.value.startswith("# Model card")]
    assert card and "## Known limits" in card[0] and "0.930" in card[0] and "97.5% of 40 non-X-ray" in card[0]
    # the goals against the fixture's TEST figures, as the card states them
    goals = plain_text([t.value for t in at.table if t.value.index.name == "goal"][0])
    assert goals.loc["macro AUC", "met"] == "not reached"
    assert goals.loc["macro AUC", "TEST (95% interval)"] == "0.900 (0.820-0.960)"
    assert goals.loc["COVID-19 verdict PPV", "met"] == "not reached"
    assert any("at most 10% of films given a wrong" in c.value and "at about chance (AUC 0.35-0.70)" in c.value
               and "other hospitals, left out, ranked at AUC 0.56-0.68, 67-89% of them" in c.value
               for c in at.caption)  # the goal, and the closest measurements of it on this data


def test_models_page_says_where_a_model_is_validated_and_can_retire_the_site_file(env):
    from covid_core.digests import file_sha256
    from covid_core.site_file import SITE_FORMAT

    at = page("models")
    assert any("Not validated at your hospital" in i.value for i in at.info)
    assert [link.proto.page for link in at.get("page_link")] == ["validate"]
    model = env / "weights" / "tiny_cnn.pt"
    figures = {"sensitivity": {"value": 0.9, "low": 0.8, "high": 0.97}, "auc": {"value": 0.93}, "ece": 0.04,
               "specificity": {"value": 0.85, "low": 0.75, "high": 0.93}, "counts": {"tp": 18, "fn": 2, "fp": 3,
                                                                                   "tn": 17}}
    site = model.with_name("tiny_cnn.site.json")
    site.write_text(json.dumps({
        "format": SITE_FORMAT, "site": "St Elsewhere", "created": "2026-12-01T10:00:00+0000",
        "checkpoint": {"sha256": file_sha256(model)}, "counts": {"normal": 20, "covid19": 20},
        "before": figures, "after": figures, "parameters": {"threshold": 0.4},
        "adapted": ["operating point: a site threshold for sensitivity 0.90"],
        "skipped": ["temperature: refitting did not lower the held-out log-loss"]}))
    at.run()
    assert not at.exception, at.exception
    text = "\n".join(m.value for m in at.markdown)
    assert "Active site file `tiny_cnn.site.json`: **St Elsewhere**" in text and "20 normal and 20 COVID-19 films" in text
    rows = [df.value for df in at.dataframe if "COVID-19 sensitivity (95% CI)" in df.value.columns][0]
    assert rows["COVID-19 sensitivity (95% CI)"].tolist() == ["90.0% (80-97%)"] * 2
    captions = [c.value for c in at.caption]
    assert any("50.0% of them COVID-19, 85.7% (95% CI 65-95%) of the positive verdicts were right (PPV, 18 of 21)" in c
               for c in captions)
    # the file's own words are shown as they are (escaped), so a crafted file cannot render links or images
    assert r"Adapted: operating point\: a site threshold for sensitivity 0.90" in captions
    assert r"Not adapted: temperature\: refitting did not lower the held-out log-loss" in captions
    at.button(key="models_site_retire").click().run()
    assert not at.exception, at.exception
    assert not site.exists()  # Diagnose no longer applies it ...
    [kept] = list(model.parent.glob("tiny_cnn.site-retired-*.json"))  # ... but the record of it is kept
    assert json.loads(kept.read_text())["site"] == "St Elsewhere"
    assert any("is retired" in s.value for s in at.success) and any("Not validated" in i.value for i in at.info)
    # the retired validation is listed with its figures, and so is a damaged one, without a traceback
    damaged = model.with_name("tiny_cnn.site-retired-19990101-000000.json")
    damaged.write_text("{not json")
    os.utime(damaged, (915148800, 915148800))  # written in 1999
    at.run()
    assert not at.exception, at.exception
    [earlier] = [e for e in at.expander if e.label == "Earlier site files (2, retired)"]
    rows = earlier.dataframe[0].value.set_index("file")
    assert rows.loc[kept.name, "site"] == "St Elsewhere" and rows.loc[kept.name, "made"] == "2026-12-01 10:00:00+0000"
    assert rows.loc[kept.name, "COVID-19 sensitivity"] == "90.0% (80-97%)"
    assert rows.loc["tiny_cnn.site-retired-19990101-000000.json", "site"] == "unreadable (JSONDecodeError)"
    assert list(rows.index) == [kept.name, "tiny_cnn.site-retired-19990101-000000.json"]  # newest first


def test_a_hand_edited_site_file_with_counts_that_are_not_numbers_is_shown_without_a_traceback(env):
    """load_site checks the figures Diagnose quotes; the Models page also reads the file's other sections."""
    from covid_core.digests import file_sha256
    from covid_core.site_file import SITE_FORMAT

    model = env / "weights" / "tiny_cnn.pt"
    figures = {"sensitivity": {"value": 0.9, "low": 0.6, "high": 0.98},
               "specificity": {"value": 0.85, "low": 0.55, "high": 0.96}}
    model.with_name("tiny_cnn.site.json").write_text(json.dumps({
        "format": SITE_FORMAT, "site": "St Elsewhere", "checkpoint": {"sha256": file_sha256(model)},
        "before": figures, "after": {**figures, "counts": {"tp": 9, "fn": 1, "fp": 2, "tn": 8},
                                     "given": {"counts": {"tp": "x", "fn": 1, "fp": 0, "tn": 2}, "films": 5,
                                               "withheld": 1}}}))
    at = page("models")
    assert not at.exception, at.exception
    assert any("**St Elsewhere**" in m.value for m in at.markdown)
    assert not any("get no verdict" in c.value for c in at.caption)  # nothing made of the counts that are not


def test_a_site_file_with_values_of_the_wrong_kind_where_no_verdict_reads_them_is_shown_as_n_a(env):
    """The shipped model's figures, the counts by label and the adaptation's lines are not checked by load_site
    (no verdict reads them); the Models page reads them, and shows what is not a figure as "n/a"."""
    from covid_core.digests import file_sha256
    from covid_core.site_file import SITE_FORMAT

    model = env / "weights" / "tiny_cnn.pt"
    figures = {"sensitivity": {"value": 0.9, "low": 0.8, "high": 0.97},
               "specificity": {"value": 0.85, "low": 0.75, "high": 0.93}, "auc": {"value": 0.93}}
    model.with_name("tiny_cnn.site.json").write_text(json.dumps({
        "format": SITE_FORMAT, "site": "St Elsewhere", "checkpoint": {"sha256": file_sha256(model)},
        "counts": [20, 20], "adapted": 3.0, "skipped": ["temperature: kept", 5],
        "before": {"auc": {"value": "high"}, "sensitivity": [1], "specificity": {"value": 0.8, "low": "x"},
                   "ece": "low", "given": 3, "counts": "many"},
        "after": figures}))
    at = page("models")
    assert not at.exception, at.exception
    rows = [df.value for df in at.dataframe if "COVID-19 sensitivity (95% CI)" in df.value.columns][0]
    assert rows.iloc[0][["COVID-19 sensitivity (95% CI)", "specificity (95% CI)", "AUC", "calibration error",
                         "no verdict"]].tolist() == ["n/a", "80.0%", "n/a", "n/a", "not counted"]
    assert rows.iloc[1]["COVID-19 sensitivity (95% CI)"] == "90.0% (80-97%)"
    assert any("**St Elsewhere**" in m.value and "from no films" in m.value for m in at.markdown)
    assert [c.value for c in at.caption if "adapted" in c.value.lower()] == [r"Not adapted: temperature\: kept"]


def test_models_page_names_a_damaged_section_of_a_checkpoint_and_shows_the_rest(env):
    from covid_core.checkpoint import atomic_save, load_checkpoint_dict

    path = env / "weights" / "tiny_cnn.pt"
    ckpt = load_checkpoint_dict(path)
    ckpt["metrics"]["test"]["confusion_matrix"] = [[1, 2], [3]]  # laid out for another set of classes
    atomic_save(ckpt, path)
    at = page("models")
    assert not at.exception, at.exception
    [note] = [w.value.replace("\\", "") for w in at.warning if w.value.startswith("Not shown")]  # Markdown-escaped
    assert "TEST figures (metrics.test)" in note and "confusion_matrix" in note
    assert any("holds no TEST metrics" in w.value for w in at.warning)  # what the page says of a model without them
    assert any("Operating threshold" in h.value for h in at.subheader)  # the rest of the card is shown


def plain_text(table):
    """A static table as the browser shows it: the Markdown escapes taken out of its cells and row names."""
    return table.map(lambda v: v.replace("\\", "")).rename(index=lambda v: v.replace("\\", ""))


def test_models_page_shows_within_source_figures_and_warns_of_another_data_version(env, folders_data):
    from app_helpers import make_checkpoint
    from covid_core.checkpoint import atomic_save, load_checkpoint_dict

    path = env / "weights" / "tiny_cnn.pt"
    make_checkpoint(path)
    ckpt = load_checkpoint_dict(path)
    ckpt["metrics"]["test"]["shortcuts"] = {
        "within_source": {"nih_normal_vs_pneumonia": {"description": "NIH adults: normal vs pneumonia", "auc": 0.61,
                                                      "auc_low": 0.5, "auc_high": 0.71, "n_negative": 58,
                                                      "n_positive": 59, "positive_called": 0.2}},
        "source_probe": {"accuracy": 0.93, "balanced_accuracy": 0.9, "majority_share": 0.52, "n": 396,
                         "sources": ["cohen", "kermany", "nih"]}}
    ckpt["metrics"]["test"]["macro_auc_high"] = 0.975
    atomic_save(ckpt, path)
    at = page("models")
    within = [t.value for t in at.table if "question" in t.value.columns][0]  # static: long questions wrap
    within = within.map(lambda v: v.replace("\\", ""))  # Markdown-escaped; the browser shows the plain text
    assert within.set_index("question").loc["NIH adults: normal vs pneumonia", "figure"] == "0.610"
    assert within.set_index("question").loc["NIH adults: normal vs pneumonia", "95% interval"] == "0.500-0.710"
    goals = plain_text([t.value for t in at.table if t.value.index.name == "goal"][0])
    assert goals.loc["NIH adults: normal vs pneumonia AUC", "TEST (95% interval)"] == "0.610 (0.500-0.710)"
    assert goals.loc["NIH adults: normal vs pneumonia AUC", "met"] == "not reached"  # 0.90 lies far above 0.71
    assert goals.loc["macro AUC", "TEST (95% interval)"] == "0.900 (0.820-0.975)"
    assert goals.loc["macro AUC", "met"] == "not reached (inside the interval)"
    assert any(q.startswith("source probe") for q in within["question"])
    assert not any("another version of the data" in w.value for w in at.warning)
    at.text_input(key="models_data").set_value(str(folders_data)).run()
    assert not at.exception, at.exception
    assert any("another version of the data" in w.value and "feedc0ffee123456" in w.value for w in at.warning)


@pytest.mark.parametrize("view, key", [("explore", "explore_data"), ("models", "models_data")])
def test_data_folder_boxes_accept_only_folders_inside_the_data_roots(env, view, key):
    at = page(view)
    for value in ("/etc", "/", "~root", "/nonexistent/folder"):
        at.text_input(key=key).set_value(value).run()
        assert not at.exception, at.exception
        assert any("inside a configured data folder" in e.value for e in at.error), (view, value)


def test_explore_needs_a_folder_then_shows_statistics(env, folders_data):
    at = page("explore")
    assert any("CoronaHack" in i.value for i in at.info)
    at.text_input(key="explore_data").set_value(str(folders_data)).run()
    assert not at.exception, at.exception
    values = {m.label: m.value for m in at.metric}
    assert values["Images"] == "20" and values["Cross-split leaks"] == "2"
    assert any("identical copies in another split" in e.value for e in at.error)
    outliers = [df.value for df in at.dataframe if "outlier" in df.value.columns]
    assert outliers and "near-blank" in outliers[0]["outlier"].str.cat()
    assert len(at.get("plotly_chart")) >= 5


def test_denoise_compares_methods_with_psnr(env):
    at = page("denoise")
    at.file_uploader(key="dn_upload").set_value(("x.png", png_bytes(xray_array(64, 3)), "image/png")).run()
    assert not at.exception, at.exception
    at.multiselect(key="dn_methods").set_value(["median", "gaussian"]).run()
    # by default the film is denoised as it is: no noise is added, nothing to measure, each result downloadable
    assert at.selectbox(key="dn_kind").value == "none" and not [c for c in at.caption if "PSNR" in c.value]
    assert [c for img in at.get("image") for c in img.captions][0] == "Input" and len(at.get("image")) == 3
    assert len([d for d in at.get("download_button") if "PNG" in d.proto.label]) == 2
    at.selectbox(key="dn_kind").select("gaussian").run()  # the demonstration: add noise, measure each method
    captions = [c.value for c in at.caption if "PSNR" in c.value]
    assert len(captions) == 3  # noisy input + two methods, each measured against the clean original
    assert len(at.get("image")) == 4
    at.file_uploader(key="dn_upload").set_value(("bad.png", b"%PDF-1.4 nonsense", "image/png")).run()
    assert any("bad.png" in e.value and "PDF" in e.value for e in at.error)


def test_models_overview_says_where_each_checkpoint_is_used(env):
    from covid_core.checkpoint import atomic_save
    from covid_core.denoise.dae import DAENet, dae_checkpoint

    atomic_save(dae_checkpoint(DAENet((8, 8), 2)), env / "weights" / "dae.pt")
    (env / "weights" / "broken.pt").write_bytes(b"not a checkpoint")
    at = page("models")
    overview = at.dataframe[0].value.set_index("checkpoint")
    assert overview.loc["tiny_cnn.pt", "used on"] == "Diagnose"
    assert overview.loc["dae.pt", "used on"] == "Denoise"
    assert overview.loc["broken.pt", "used on"] == "unusable"
    assert at.dataframe[0].proto.placeholder == "—"  # a denoiser has no AUC: a dash, not "None"
    # seven narrow columns fit a 1024 px window; why a checkpoint is unusable is said below, for it alone
    assert len(overview.columns) == 6
    problems = [w.value for w in at.warning if w.value.startswith("Cannot be used")]
    assert len(problems) == 1 and "broken.pt" in problems[0]
    # the denoiser's card is there too, as `model-card` writes it
    options = at.selectbox(key="models_pick").options
    [dae] = [o for o in options if o.startswith("dae.pt")]
    assert dae == "dae.pt (denoiser)" and not [o for o in options if o.startswith("broken.pt")]
    at.selectbox(key="models_pick").select(str(env / "weights" / "dae.pt")).run()
    assert not at.exception, at.exception
    [card] = [m.value for m in at.markdown if m.value.startswith("# Model card: `dae.pt` (denoising autoencoder)")]
    assert "## Validation PSNR (crops)" in card and "## Known limits" in card
    assert at.get("download_button")


def test_a_checkpoints_own_text_in_why_it_cannot_be_used_is_shown_as_it_is(env):
    """A checkpoint made elsewhere can name its format or architecture with Markdown; the reason quotes it, and the
    Models page and Diagnose's sidebar show it as text (Streamlit renders Markdown there, an image included)."""
    from covid_core.checkpoint import atomic_save, load_checkpoint_dict

    evil = "![seen](http://evil.example/p.png)"
    clean = load_checkpoint_dict(env / "weights" / "tiny_cnn.pt")
    atomic_save({**clean, "format": evil}, env / "weights" / "foreign.pt")
    atomic_save({**clean, "model_name": evil}, env / "weights" / "other_net.pt")
    shown = [w.value for w in page("models").warning if w.value.startswith("Cannot be used")]
    at = page("diagnose")
    shown += [c.value for c in at.sidebar.caption if "cannot be used" in c.value or "format" in c.value]
    assert len(shown) == 4 and all("evil.example" in text and evil not in text for text in shown), shown


def test_models_mean_heatmaps_give_each_class_share_and_flag_low_thorax_shares(env, folders_data):
    import re

    at = page("models")
    at.text_input(key="models_data").set_value(str(folders_data)).run()
    at.button(key="models_cam_go").click().run()
    assert not at.exception, at.exception
    captions = [c for img in at.get("image") for c in img.captions]
    shares = {}
    for caption in captions:
        m = re.match(r"(\w+): ([\d.]+)% inside the thorax \(\d+ films\)", caption)
        if m:
            shares[m.group(1)] = float(m.group(2))
    assert set(shares) == {"normal", "pneumonia", "covid19"}, captions
    flagged = " ".join(w.value for w in at.warning if w.value.startswith("Possible shortcut"))
    for cls, share in shares.items():  # a class is named in the warning exactly when under half is in the thorax
        assert (f"{cls} (" in flagged) == (share < 50.0)


def _wait_for_site_report(at, seconds: float = 120):
    """The validation runs in a thread: rerun the page until its report (or an error) is shown."""
    import time

    deadline = time.monotonic() + seconds
    while not at.dataframe and not [e for e in at.error if "Not validated" in e.value]:
        assert time.monotonic() < deadline, "the site validation did not finish"
        time.sleep(0.5)
        at.run()
        assert not at.exception, at.exception
    return at


def test_validate_at_your_site_measures_adapts_and_makes_the_site_active(env):
    from app_helpers import make_site_folder

    site = make_site_folder(env / "hospital", per_class=12)
    at = page("validate")
    at.text_input(key="site_folder").set_value("/etc")
    at.button[0].click().run()
    assert not at.exception and any("inside a configured data folder" in e.value for e in at.error)
    at.text_input(key="site_folder").set_value(str(site))
    at.text_input(key="site_name").set_value("St Elsewhere")
    at.button[0].click().run()
    assert not at.exception, at.exception
    _wait_for_site_report(at)
    table = at.dataframe[0].value
    assert list(table[""]) == ["shipped model", "after adaptation (cross-validated)"]
    assert table["COVID-19 sensitivity (95% CI)"].str.contains("%").all()
    assert table["no verdict"].str.fullmatch(r"\d+ of 24").all()  # unfamiliar or turned, counted
    assert any("By label: 12 normal and 12 COVID-19 films." in c.value for c in at.caption)
    # how often the verdicts were right on these films, with the COVID-19 share that holds for
    assert any(c.value.startswith("On these films, 50.0% of them COVID-19,") and "(NPV, " in c.value
               for c in at.caption)
    assert len(at.get("plotly_chart")) == 2  # the ROC with both operating points, and calibration before/after
    # the films one by one, for the site's own review: the wrong or withheld ones shown, every film downloadable
    [review] = [e for e in at.expander if e.label.startswith("Your films one by one: ")]
    shown = review.dataframe[0].value
    assert len(shown) == int(review.label.split(": ")[1].split(" ")[0])
    assert ((shown["right (after adaptation)"] == "no") | (shown["verdict (after adaptation)"] == "withheld")
            | (shown["call right (after adaptation)"] == "no")).all()
    # the call in words, film by film: a normal film called pneumonia is listed even where its verdict was right
    assert set(shown["call (after adaptation)"]) <= {"", "normal", "pneumonia", "covid19"}
    assert at.get("download_button")  # site.json and the per-film CSV
    at.button(key="site_activate").click().run()
    assert not at.exception, at.exception
    saved = env / "weights" / "tiny_cnn.site.json"
    assert saved.is_file() and json.loads(saved.read_text())["site"] == "St Elsewhere"


def test_the_validate_page_names_the_active_site_file_and_where_to_see_or_retire_it(env):
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.switch_page("views/validate.py").run()
    assert any("has no active site file" in c.value for c in at.caption)
    (env / "weights" / "tiny_cnn.site.json").write_text('{"site": "St Elsewhere"}')
    at.switch_page("views/validate.py").run()
    assert not at.exception, at.exception
    assert any(c.value.startswith("Active site file for this model: `tiny_cnn.site.json`. Its figures, its history "
                                  "and the button that retires it are on the Models page") for c in at.caption)


def _site_report(figures: dict, skipped: list[str], model):
    """(report, per-film table) of a finished validation of St Elsewhere, made for the checkpoint at ``model``,
    whose figures (before and after adaptation) are ``figures``, as :func:`covid_core.site.validate_site_with_films`
    returns them."""
    import pandas as pd

    from pathlib import Path

    from covid_core.digests import file_sha256

    report = {"site": "St Elsewhere", "films_used": 24, "counts": {"normal": 12, "covid19": 12}, "problems": [],
              "adapted": [], "skipped": skipped, "before": figures, "after": figures,
              "checkpoint": {"file": Path(model).name, "sha256": file_sha256(model)}}
    films = pd.DataFrame({"file": ["covid19/a.png"], "label": ["covid19"], "verdict (after adaptation)": ["negative"],
                          "right (after adaptation)": ["no"]})
    return report, films


def _validate_page_with_report(env, monkeypatch, figures: dict, skipped: list[str]):
    """The Validate page showing a finished validation (:func:`_site_report`), made through its form."""
    from app_helpers import make_site_folder

    monkeypatch.setattr("covid_core.site_job.validate_site_with_films",
                        lambda classifier, *a, **k: _site_report(figures, skipped, classifier.path))
    at = page("validate")
    at.text_input(key="site_folder").set_value(str(make_site_folder(env / "hospital", per_class=1)))
    at.button[0].click().run()
    return _wait_for_site_report(at)


def test_a_running_validation_is_found_again_by_a_reloaded_page_and_a_second_one_waits_for_it(env, monkeypatch):
    """A validation takes minutes: a page reloaded meanwhile (a new session), or another tab, shows its progress and
    then its report, and a second validation is refused while it runs, instead of both sharing the CPU."""
    import threading

    from app_helpers import make_site_folder

    release = threading.Event()

    def validating(classifier, folder, *, name, target_sensitivity, on_progress):
        on_progress(3, 24)
        assert release.wait(60)
        return _site_report({"sensitivity": {"value": 0.9}, "specificity": {"value": 0.9}}, [], classifier.path)

    monkeypatch.setattr("covid_core.site_job.validate_site_with_films", validating)
    site = make_site_folder(env / "hospital", per_class=1)
    first = page("validate")
    first.text_input(key="site_folder").set_value(str(site))
    first.text_input(key="site_name").set_value("St Elsewhere")
    first.button[0].click().run()
    try:
        reloaded = page("validate")
        [bar] = reloaded.get("progress")
        assert bar.proto.text.startswith("Scoring your films: 3 of 24")
        reloaded.text_input(key="site_folder").set_value(str(site))
        reloaded.button[0].click().run()
        assert not reloaded.exception, reloaded.exception
        assert any("the validation of site 'St Elsewhere' is still running (3 of 24 films scored)" in e.value
                   for e in reloaded.error)
    finally:
        release.set()
    _wait_for_site_report(reloaded.run())  # the page again, without the refused click's message
    assert "St Elsewhere: 24 films" in " ".join(h.value for h in reloaded.subheader)
    assert any(c.value.startswith("The newest validation of this model: site `St Elsewhere`, started ")
               for c in reloaded.caption)
    _wait_for_site_report(first)  # the tab that started it sees the same report
    assert "St Elsewhere: 24 films" in " ".join(h.value for h in first.subheader)


def test_a_finished_validation_is_shown_again_after_the_server_restarts_and_can_be_made_active(env, monkeypatch):
    """A validation takes minutes: its report must not be lost with the server's memory before it is made active."""
    import streamlit as st

    from covid_core.model_catalog import site_file_for

    from app_helpers import make_checkpoint, make_site_folder

    figures = {"sensitivity": {"value": 0.9, "low": 0.8, "high": 0.97},
               "specificity": {"value": 0.85, "low": 0.75, "high": 0.93}}
    model = env / "weights" / "tiny_cnn.pt"
    report, films = _site_report(figures, [], model)
    monkeypatch.setattr("covid_core.site_job.validate_site_with_films", lambda *a, **k: (report, films))
    first = page("validate")
    first.text_input(key="site_folder").set_value(str(make_site_folder(env / "hospital", per_class=1)))
    first.button[0].click().run()
    assert "St Elsewhere: 24 films" in " ".join(h.value for h in _wait_for_site_report(first).subheader)
    saved = list((env / "runs" / "site-validations").glob("*.json"))
    assert len(saved) == 1
    st.cache_resource.clear()  # what a restarted server has lost: every job in memory
    again = page("validate")
    assert "St Elsewhere: 24 films" in " ".join(h.value for h in again.subheader)
    assert any(c.value.endswith("until the next validation of this model, also after the server restarts.")
               for c in again.caption)
    films = [d.value for d in again.dataframe if "right (after adaptation)" in d.value]  # the per-film review
    assert len(films) == 1 and list(films[0]["file"]) == ["covid19/a.png"]
    assert list(films[0]["right (after adaptation)"]) == ["no"]
    again.button(key="site_activate").click().run()
    assert not again.exception, again.exception
    active = site_file_for(model)
    assert active is not None and json.loads(active.read_text())["site"] == "St Elsewhere"
    for change in ("a retrained model at the same path", "a damaged saved validation"):
        if change == "a damaged saved validation":
            saved[0].write_text("{not json")
        else:
            make_checkpoint(model, seed=1)
        st.cache_resource.clear()
        later = page("validate")  # no earlier validation shown, and no error
        assert "St Elsewhere: 24 films" not in " ".join(h.value for h in later.subheader) and not later.error, change


def test_a_finished_validation_is_forgotten_once_its_model_is_retrained_in_place(env, monkeypatch):
    """A report made for the checkpoint that was at a path is not shown, nor offered to be made active, for the
    model now at that path: its site file would not fit it (and a stale report would be taken for the new model's)."""
    from app_helpers import make_checkpoint

    at = _validate_page_with_report(env, monkeypatch, {"sensitivity": {"value": 0.9}, "specificity": {"value": 0.9}},
                                    [])
    assert "St Elsewhere: 24 films" in " ".join(h.value for h in at.subheader)
    make_checkpoint(env / "weights" / "tiny_cnn.pt", seed=1)  # the server keeps running
    later = page("validate")
    assert not later.exception, later.exception
    assert "St Elsewhere: 24 films" not in " ".join(h.value for h in later.subheader)
    assert not [b for b in later.button if b.key == "site_activate"]
    assert any(c.value.startswith("This model has no active site file") for c in later.caption)


def test_figures_from_too_few_films_are_named_and_the_site_is_made_active_only_on_purpose(env, monkeypatch):
    """Sensitivity 88% on 8 COVID-19 films (interval from 53%): not poor, but not a confirmation either."""
    few, good = {"value": 0.875, "low": 0.53, "high": 0.98}, {"value": 0.9, "low": 0.8, "high": 0.96}
    at = _validate_page_with_report(env, monkeypatch, {"sensitivity": few, "specificity": good,
                                                       "auc": {"value": 0.93}}, [])
    assert any(w.value.startswith("Your films are too few to confirm this model here: its sensitivity of 88% could "
                                  "be as low as 53%") for w in at.warning)
    assert at.button(key="site_activate").disabled
    at.checkbox(key="site_poor_ok").check().run()
    assert not at.button(key="site_activate").disabled


def test_a_site_where_the_model_does_poorly_is_made_active_only_on_purpose(env, monkeypatch):
    """The warning stands before the activation button, which stays disabled until the user says "anyway"."""
    poor = {"value": 0.5, "low": 0.3, "high": 0.7}
    at = _validate_page_with_report(env, monkeypatch, {"sensitivity": poor, "specificity": poor, "auc": {"value": 0.55}},
                                    ["operating point: neither ..."])
    assert any("often wrong" in w.value and "AUC of 0.55" in w.value for w in at.warning)
    assert at.button(key="site_activate").disabled
    at.checkbox(key="site_poor_ok").check().run()
    assert not at.button(key="site_activate").disabled
    (env / "weights" / "tiny_cnn.site.json").write_text('{"site": "an earlier validation"}')
    at.button(key="site_activate").click().run()
    assert not at.exception, at.exception
    assert json.loads((env / "weights" / "tiny_cnn.site.json").read_text())["site"] == "St Elsewhere"
    # the validation it replaces is kept, not overwritten, and the page says where
    [kept] = (env / "weights").glob("tiny_cnn.site-retired-*.json")
    assert json.loads(kept.read_text())["site"] == "an earlier validation"
    assert any(f"The previous site file was kept as `{kept.name}`" in s.value for s in at.success)


def test_validate_at_your_site_takes_a_zip_of_labelled_films(env):
    import io
    import zipfile

    from app_helpers import site_film, xray_array

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for k, cls in enumerate(("normal", "covid19")):
            for i in range(12):
                z.writestr(f"hospital/{cls}/{cls}{i}.png", png_bytes(site_film(cls, i, k)))
        z.writestr("../outside.png", png_bytes(xray_array(64)))
        z.writestr("../[a](http:evil.example).png", png_bytes(xray_array(64)))
        z.writestr("hospital/normal/damaged.png", png_bytes(xray_array(64, seed=99)))
        for i in range(10):  # 13 skipped in all: the first 10 named, the rest counted
            z.writestr(f"../outside{i}.png", b"")
    data = bytearray(buf.getvalue())  # stored, not deflated: a byte of damaged.png's data, which fails its checksum
    data[data.index(b"hospital/normal/damaged.png") + 200] ^= 0xFF
    at = page("validate")
    at.file_uploader(key="site_zip").set_value(("hospital.zip", bytes(data), "application/zip"))
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert any("leaves the folder" in w.value for w in at.warning)
    assert any("damaged.png" in w.value and "fail the zip's checksum" in w.value for w in at.warning)
    assert sum("its path leaves the folder" in w.value for w in at.warning) == 9
    assert any("and 3 more files skipped" in w.value for w in at.warning)
    assert any(w.value.startswith(r"../\[a\](http\:evil.example).png\: its path") for w in at.warning)  # as it is
    _wait_for_site_report(at)
    assert list(at.dataframe[0].value[""]) == ["shipped model", "after adaptation (cross-validated)"]
    assert "hospital: 24 films" in " ".join(h.value for h in at.subheader)
    assert not (env / "outside.png").exists()


def test_validate_at_your_site_takes_a_folder_chosen_on_the_users_computer(env):
    """A DICOM set is too large for one zip under the upload limit: the browser sends a chosen folder's files one
    by one, each named by its path inside the folder. Given with another set of films, nothing is started."""
    from app_helpers import make_site_folder, site_film

    files = [(f"St Elsewhere/{cls}/{cls}{i}.png", png_bytes(site_film(cls, i, k)), "image/png")
             for k, cls in enumerate(("normal", "covid19")) for i in range(12)]
    files.append(("St Elsewhere/normal/README.txt", b"labelled by the radiologists", "text/plain"))
    at = page("validate")
    at.file_uploader(key="site_dir").set_value(files)
    at.text_input(key="site_folder").set_value(str(make_site_folder(env / "hospital", per_class=1)))
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert any(e.value.startswith("Not validated: give your labelled films one way") and e.value.endswith(
        "you gave a folder on this server and a folder from your computer; clear all but one") for e in at.error)
    assert not at.subheader and not at.get("progress")
    at.text_input(key="site_folder").set_value("")
    at.button[0].click().run()
    assert not at.exception, at.exception
    _wait_for_site_report(at)
    assert "St Elsewhere: 24 films" in " ".join(h.value for h in at.subheader)  # the folder's name, README passed over
    at.file_uploader(key="site_dir").set_value([])
    at.button[0].click().run()
    assert any(e.value.startswith("Not validated: give your labelled films one way") and e.value.endswith(
        "a folder on this server, a zip, or a folder from your computer") for e in at.error)


@pytest.mark.parametrize("name, form", [("validate", "site_form"), ("train", "train_form")])
def test_enter_in_a_field_of_a_form_that_starts_minutes_of_work_does_not_submit_it(env, name, form):
    """Typing a folder and pressing Enter, before the site's name or the run's settings, started the validation
    (one at a time on the server) or the training run: only the form's button does."""
    at = page(name)
    [block] = [b for b in at.get("form") if b.proto.form.form_id == form]
    assert block.proto.form.enter_to_submit is False
