"""Checkpoints: code-running pickles refused, broken files named, saves atomic under a full disk, damaged metadata
refused where scoring needs it and left out, named, where it only describes the model."""

from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

import pytest
import torch

from covid_core import checkpoint
from covid_core.checkpoint import atomic_save, load_checkpoint_dict, load_classifier
from covid_core.errors import CheckpointError
from synthetic_files import edit_at_random, tiny_classifier, value_places


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


def _edited(tmp_path, edit) -> Path:
    """The test fixture's checkpoint (app_helpers.make_checkpoint) with ``edit(ckpt)`` applied, saved as m.pt."""
    from app_helpers import make_checkpoint

    path = make_checkpoint(tmp_path / "m.pt")
    ckpt = load_checkpoint_dict(path)
    edit(ckpt)
    atomic_save(ckpt, path)
    return path


def _parts_ood(threshold: float = 1.0) -> dict:
    """Familiarity statistics in the current format (one part per feature space) for the fixture's cnn."""
    part = {"name": "penultimate", "means": torch.zeros(3, 256), "precision": torch.eye(256), "threshold": 1e12}
    return {"method": "mahalanobis", "parts": [part], "threshold": threshold, "percentile": 98.0}


def test_familiarity_statistics_with_parts_load_when_their_whole_threshold_is_1(tmp_path):
    assert load_classifier(_edited(tmp_path, lambda c: c.update(ood=_parts_ood()))).ood["threshold"] == 1.0


@pytest.mark.parametrize("edit, words", [
    (lambda c: c["threshold"].update(value="0.4"), "operating threshold is not a number from 0 to 1"),
    (lambda c: c["threshold"].update(value=float("nan")), "operating threshold is not a number from 0 to 1"),
    (lambda c: c.update(classes=["normal", "covid19", "pneumonia"]), "its classes are not those of target 3class"),
    (lambda c: c.update(target=["3class"]), "its target"),
    (lambda c: c.update(model_name="vit_h14"), "its architecture 'vit_h14' is not one of cnn, resnet18"),
    (lambda c: c["preprocess"].update(mean=10 ** 30), "preprocessing settings are damaged"),
    (lambda c: c["preprocess"].pop("image_size"), "with the image size"),
    (lambda c: c.update(temperature=-1.0), "temperature is not a positive number"),
    (lambda c: c["ood"].update(threshold="high"), "familiarity statistics are damaged (threshold)"),
    # with parts, a film is unfamiliar when any part's distance passes that part's own threshold: the whole is 1,
    # and 1e308 would switch the check off
    (lambda c: c.update(ood=_parts_ood(threshold=1e308)), "familiarity statistics are damaged (threshold: with parts"),
    (lambda c: c["ood"].update(means=torch.zeros(3, 7)), "scoring a test film failed"),  # made for another network
])
def test_a_checkpoint_whose_scoring_entries_are_damaged_is_refused_with_the_place(tmp_path, edit, words):
    from covid_core.model_catalog import describe_checkpoint

    path = _edited(tmp_path, edit)
    with pytest.raises(CheckpointError, match=re.escape(words)):
        load_classifier(path)
    if "scoring a test film" not in words:  # found without building the network: the model list says so too
        entry = describe_checkpoint(path)
        assert not entry.usable and words in entry.reason


def test_a_damaged_description_is_left_out_named_and_the_model_still_used(tmp_path, capsys):
    """Figures that only describe the model (a TEST metric missing, a count that is a word) leave out their section,
    say so in the card, on standard error of model-card and on the Models page, and the model scores films."""
    import numpy as np

    from covid_core.cards.classifier import card_markdown
    from covid_core.cli import main as cli_main
    from covid_core.inference import predict

    def edit(c):
        del c["metrics"]["test"]["per_class"]["normal"]["specificity"]  # as an older version might have left it
        c["threshold"]["test"]["tp"] = "nine"
        c["card"]["ood_check"]["test_flagged"] = float("nan")

    path = _edited(tmp_path, edit)
    ckpt = load_checkpoint_dict(path)
    notes = ckpt["damaged_sections"]
    assert [n.split(" (")[0] for n in notes] == ["TEST figures", "TEST figures at the operating threshold",
                                                "what the familiarity check flags"]
    assert "per_class.normal: 'specificity' is a required property" in notes[0]
    assert "test" not in ckpt["metrics"] and "test" not in ckpt["threshold"] and "ood_check" not in ckpt["card"]
    assert ckpt["metrics"]["val"] and ckpt["threshold"]["value"] == 0.4  # the rest is kept
    card = card_markdown(ckpt, "m.pt", "weights/m.pt")
    assert "Not shown: parts of this checkpoint's metadata are damaged" in card and "per_class.normal" in card
    classifier = load_classifier(path)
    p = predict(classifier, np.tile(np.linspace(0.1, 0.9, 64, dtype=np.float32), (64, 1)))
    assert np.isfinite(list(p.probabilities.values())).all()
    assert cli_main(["model-card", str(path), "--out", str(tmp_path / "m.md")]) == 0
    assert capsys.readouterr().err.count("warning: not in the card, damaged") == 3
    assert "damaged_sections" not in torch.load(path, weights_only=True)  # the note is never saved


def _rename_source(c, new):
    c["metrics"]["test"]["per_source"][new] = c["metrics"]["test"]["per_source"].pop("kermany")


EVIL_IMAGE = "![seen](http://evil.example/p.png)"


@pytest.mark.parametrize("edit, place", [
    (lambda c: c.update(hardware=f"CPU x2 on {EVIL_IMAGE}"), "hardware"),
    (lambda c: c.update(hardware="CPU x2 on www.evil.example"), "hardware"),  # a bare address is a link too
    (lambda c: c.update(package_version="ask me@evil.example"), "package_version"),
    (lambda c: c.update(created='<img src="http://evil.example/p.png">'), "created"),
    (lambda c: c["threshold"].update(rule="see [the docs](http://evil.example/)"), "(threshold.rule)"),
    (lambda c: c["class_counts"].update(train={EVIL_IMAGE: 1}), "(class_counts)"),
    (lambda c: _rename_source(c, EVIL_IMAGE), "(metrics.test)"),
    (lambda c: c["train_config"].update(data=f"/data/{EVIL_IMAGE}"), "(train_config)"),
])
def test_markdown_or_html_in_a_checkpoints_description_is_left_out_and_named(tmp_path, edit, place):
    """The Models page renders the card and the checkpoint's facts as Markdown: a link, an image (which the browser
    would fetch from another host) or an HTML tag written into a checkpoint's description is left out, named as
    damaged, and the card and the facts hold none of it; the model still scores films."""
    from covid_core.cards.classifier import card_markdown
    from covid_core.model_catalog import describe_checkpoint
    from covid_core.model_summary import model_facts

    path = _edited(tmp_path, edit)
    entry = describe_checkpoint(path)
    assert entry.usable, entry.reason
    notes = entry.metadata["damaged_sections"]
    assert any(n.split(": ")[0].endswith(place) and "Markdown or HTML" in n and "evil" not in n for n in notes), notes
    card = card_markdown(entry.metadata, "m.pt", "weights/m.pt")
    facts = " ".join(model_facts(entry, list(entry.metadata["classes"])).values())
    assert "evil.example" not in card + facts
    load_classifier(path)  # scoring is untouched


def test_markdown_or_html_in_what_scoring_reads_refuses_the_checkpoint(tmp_path):
    path = _edited(tmp_path, lambda c: c["ood"].update(method=EVIL_IMAGE))
    with pytest.raises(CheckpointError, match=re.escape("its familiarity statistics hold Markdown or HTML")):
        load_classifier(path)


def test_fuzzed_checkpoint_metadata_never_breaks_the_models_page_the_card_or_a_verdict(tmp_path):
    """Seeded random values of every kind (wrong types, extremes, NaN, deletions) in a checkpoint's metadata: each
    checkpoint is listed (usable or with its reason), and a usable one gives the Models page's tables, its card and
    a verdict with finite probabilities, or is refused with a reason when it is loaded."""
    import copy
    import random

    import numpy as np

    from app_helpers import make_checkpoint
    from covid_core import verdict
    from covid_core.cards.classifier import card_markdown
    from covid_core.evaluation import false_covid_calls, shortcut_rows
    from covid_core.goals import goal_rows, test_set_limit
    from covid_core.inference import predict
    from covid_core.model_catalog import describe_checkpoint, source_confounds
    from covid_core.model_charts import confusion_figure, roc_figure
    from covid_core.model_summary import measured_limits, model_facts, overview_row, per_source_rows

    clean = load_checkpoint_dict(make_checkpoint(tmp_path / "clean.pt"))

    where = value_places({k: v for k, v in clean.items() if k not in ("state_dict", "damaged_sections")})
    rng = random.Random(20261207)
    film = np.tile(np.linspace(0.1, 0.9, 64, dtype=np.float32), (64, 1))
    counts = {"usable": 0, "unusable": 0, "refused at load": 0}
    for i in range(150):
        ckpt = copy.deepcopy(clean)
        edit_at_random(ckpt, where, rng, delete_share=0.3)
        path = tmp_path / f"m{i}.pt"
        atomic_save(ckpt, path)
        entry = describe_checkpoint(path)
        if not entry.usable:
            counts["unusable"] += 1
            assert entry.reason and "\n" not in entry.reason
            continue
        meta = entry.metadata
        test = (meta.get("metrics") or {}).get("test") or {}
        classes = list(meta["classes"])
        overview_row(entry), model_facts(entry, classes), test_set_limit(meta), shortcut_rows(meta)
        goal_rows(meta), measured_limits(meta.get("card") or {}), false_covid_calls(meta)
        if (meta.get("metrics") or {}).get("test_roc"):
            roc_figure(meta["metrics"]["test_roc"], test.get("per_class") or {})
        if test.get("confusion_matrix"):
            confusion_figure(test["confusion_matrix"], classes)
        if test.get("per_source"):
            per_source_rows(test["per_source"], classes), source_confounds(test["per_source"])
        assert card_markdown(meta, "m.pt", "weights/m.pt").startswith("# Model card")
        try:
            classifier = load_classifier(path)
        except CheckpointError as exc:
            counts["refused at load"] += 1
            assert "\n" not in str(exc)
            continue
        counts["usable"] += 1
        p = predict(classifier, film)
        assert np.isfinite(list(p.probabilities.values())).all()
        assert all(isinstance(line, str) for line in verdict.verdict_limits(
            p, classifier.metadata, verdict.operating_threshold(classifier)))
        assert verdict.validation_statement(None, p, classifier.metadata).startswith("Not validated at your hospital")
    print(f"\nfuzz: 150 edited checkpoints: {counts}")
    assert counts["usable"] > 50 and counts["unusable"] > 5


def test_a_damaged_interval_leaves_out_its_section_and_the_card_still_renders(tmp_path):
    from covid_core.cards.classifier import card_markdown
    from covid_core.goals import goal_rows

    def edit(c):
        c["metrics"]["test"]["shortcuts"]["within_source"]["kermany_normal_vs_pneumonia"]["auc_low"] = "0.5"  # a word
        c["metrics"]["val"]["macro_auc_high"] = 7.0

    path = _edited(tmp_path, edit)
    ckpt = load_checkpoint_dict(path)
    notes = dict(n.split(" (", 1) for n in ckpt["damaged_sections"])
    assert set(notes) == {"TEST figures", "VALIDATION figures"}
    assert "auc_low" in notes["TEST figures"] and "macro_auc_high" in notes["VALIDATION figures"]
    assert all(r["interval"] is None for r in goal_rows(ckpt) if "AUC" in r["goal"])
    assert card_markdown(ckpt, "m.pt", "weights/m.pt").startswith("# Model card")
