"""Model cards are generated from checkpoints; the reproduce command really is a train.py command line."""

from __future__ import annotations

import shlex
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO
from covid_core.checkpoint import load_checkpoint_dict
from covid_core.cli import build_parser
from covid_core.cards.classifier import card_markdown, reproduce_command
from covid_core.cards.dae import dae_reproduce_command
from covid_core.evaluation import pair_metrics
from covid_core.verdict import positive_verdict_limits
from covid_core.ood_check import probe_images
from covid_core.training import TrainConfig


def test_reproduce_command_parses_back_to_the_same_settings():
    cfg = TrainConfig(data="d", model="resnet18", image_size=128, epochs=8, lr=0.0005, seed=3, augment=False,
                      equalize="clahe").__dict__
    cmd = reproduce_command(cfg, "weights/resnet18.pt")
    argv = shlex.split(cmd)
    assert argv[:2] == ["python", "train.py"]
    args = build_parser().parse_args(["train", *argv[2:]])
    assert (args.model, args.image_size, args.epochs, args.lr, args.seed, args.augment, args.equalize) == \
        ("resnet18", 128, 8, 0.0005, 3, False, "clahe")
    assert args.out == "weights/resnet18.pt"


def test_training_defaults_are_the_shipped_recipe():
    """train.py's and the Train form's defaults are the recipe the shipped models were chosen and trained with."""
    from covid_core.models import get_spec

    # options added after the shipped run (absent from its stored settings) were off in it
    off = {"amplitude_mix": 0.0, "random_conv": 0.0, "source_adversary": 0.0, "holdout_source": ""}
    shipped = {**off, **load_checkpoint_dict(REPO / "weights" / "resnet18.pt")["train_config"]}
    defaults = TrainConfig()
    for field in ("balance", "ema_decay", "covid_sensitivity", "augment", "augmentation", "fit", "equalize",
                  "amplitude_mix", "random_conv", "source_adversary", "holdout_source", "pretrained"):
        assert getattr(defaults, field) == shipped[field], field
    assert get_spec("resnet18").default_image_size == shipped["image_size"] == 160
    # the card's command names the recipe whatever the defaults are
    assert "--balance group --ema-decay 0.99 --covid-sensitivity 0.9" in reproduce_command(shipped, "x.pt")


def test_dae_reproduce_command_parses_back_to_the_same_settings():
    from covid_core.denoise.training import DAETrainConfig

    cfg = DAETrainConfig(data="d", epochs=30, steps_per_epoch=200, crop=96, lr=0.003, sigma_min=2.0, sigma_max=40.0,
                         channels=(16, 32), seed=4).to_dict()
    argv = shlex.split(dae_reproduce_command(cfg, "weights/dae.pt"))
    assert argv[:4] == ["python", "-m", "covid_core", "train-dae"]
    args = build_parser().parse_args(argv[3:])
    assert (args.epochs, args.steps_per_epoch, args.crop, args.lr, tuple(args.sigma_range), args.channels,
            args.seed, args.out) == (30, 200, 96, 0.003, (2.0, 40.0), [16, 32], 4, "weights/dae.pt")


def test_pair_metrics_only_looks_at_the_two_classes():
    labels = np.array([0, 0, 1, 1, 2])
    probs = np.array([[.8, .1, .1], [.6, .3, .1], [.2, .7, .1], [.45, .4, .15], [.1, .1, .8]])
    m = pair_metrics(labels, probs, ("normal", "pneumonia", "covid19"))
    assert m["n"] == 4 and m["auc"] == pytest.approx(1.0) and m["accuracy"] == pytest.approx(0.75)
    assert pair_metrics(labels[:2], probs[:2], ("negative", "positive", "x")) is None


def test_probe_images_are_valid_images_of_each_kind():
    xray = np.random.default_rng(0).random((60, 40)).astype(np.float32)
    probes = probe_images([xray], n_synthetic=10)
    assert len(probes["non_xray"]) == 10 and len(probes["transformed_xray"]) == 4
    assert probes["transformed_xray"][0].shape == (40, 60)
    assert np.allclose(probes["transformed_xray"][3], 1 - xray)
    for img in probes["non_xray"]:
        assert img.ndim == 2 and img.dtype == np.float32 and 0 <= img.min() and img.max() <= 1 and img.std() > 0.01


def _classifier_weights():
    return [p for p in sorted((REPO / "weights").glob("*.pt"))
            if load_checkpoint_dict(p).get("format", "").startswith("covid_core.classifier")]


@pytest.mark.parametrize("path", _classifier_weights(), ids=lambda p: p.name)
def test_shipped_classifier_has_its_generated_card(path: Path):
    assert path.stat().st_size < 50 * 2**20
    card = path.with_suffix(".md")
    assert card.is_file(), f"run: python -m covid_core model-card {path} --data DATA_DIR"
    assert card.read_text() == card_markdown(load_checkpoint_dict(path), path.name, f"weights/{path.name}")


def test_shipped_dae_has_its_generated_card():
    from covid_core.cards.dae import dae_card_markdown

    path = REPO / "weights" / "dae.pt"
    if not path.is_file():
        pytest.skip("weights/dae.pt is not shipped in this checkout")
    assert path.stat().st_size < 50 * 2**20
    assert path.with_suffix(".md").read_text() == dae_card_markdown(load_checkpoint_dict(path), "dae.pt")


def _bench_row(method, noise, psnr, n):
    return {"method": method, "noise": noise, "psnr": psnr, "ssim": 0.9, "ms": 100.0, "n": n}


def test_dae_margin_compares_each_classical_method_on_its_own_images():
    from covid_core.cards.dae import dae_card_markdown
    from covid_core.denoise.margins import dae_margins

    rows = [_bench_row("noisy input", "gaussian 25", 20.3, 50), _bench_row("nlm", "gaussian 25", 33.59, 50),
            _bench_row("bm3d", "gaussian 25", 36.13, 10), _bench_row("dae", "gaussian 25", 34.96, 50),
            _bench_row("dae (BM3D's images)", "gaussian 25", 35.95, 10),
            _bench_row("nlm", "poisson 30 photons", 32.0, 50), _bench_row("dae", "poisson 30 photons", 33.5, 50)]
    margins = dae_margins({"rows": rows})
    # Against BM3D the DAE is compared on BM3D's 10 images (35.95 - 36.13), not on all 50 (34.96 - 36.13).
    assert margins["gaussian 25"]["best"] == "bm3d" and margins["gaussian 25"]["n"] == 10
    assert margins["gaussian 25"]["margin"] == pytest.approx(-0.18)
    # Rows without per-image PSNRs (recorded before 2026-12-01) get no interval.
    assert margins["poisson 30 photons"] == {"best": "nlm", "margin": pytest.approx(1.5), "n": 50, "interval": None}
    card = dae_card_markdown({"test_benchmark": {"rows": rows, "command": "python bench/denoise.py --record",
                                                 "measured": "2026-12-01"}}, "dae.pt")
    assert "- gaussian 25: -0.18 dB against bm3d on 10 images (below +1.0 dB)" in card
    assert "- poisson 30 photons: +1.50 dB against nlm on 50 images (meets +1.0 dB)" in card
    assert "| gaussian 25 | noisy input |" not in card and "| gaussian 25 | bm3d | 36.13 |" in card
    assert "None recorded" in dae_card_markdown({}, "dae.pt")


def test_dae_margin_interval_is_paired_by_image():
    from covid_core.cards.dae import dae_card_markdown
    from covid_core.denoise.margins import dae_margins

    # Per-image differences 1, 2, 3 dB: mean 2, sd 1, t(0.975, 2) = 4.303 -> 2 +- 2.484.
    bm3d = {**_bench_row("bm3d", "gaussian 25", 30.0, 3), "psnr_each": [30.0, 20.0, 40.0]}
    dae = {**_bench_row("dae", "gaussian 25", 32.0, 3), "psnr_each": [31.0, 22.0, 43.0]}
    margin = dae_margins({"rows": [bm3d, dae]})["gaussian 25"]
    assert margin["best"] == "bm3d" and margin["margin"] == pytest.approx(2.0)
    assert margin["interval"] == pytest.approx((2.0 - 2.484, 2.0 + 2.484), abs=1e-3)
    # The images vary by 20 dB, but pairing removes that: an unpaired interval would span about +-30 dB.
    card = dae_card_markdown({"test_benchmark": {"rows": [bm3d, dae]}}, "dae.pt")
    assert "- gaussian 25: +2.00 dB against bm3d on 3 images (95% interval -0.48 to +4.48 dB, paired by image) " \
           "(meets +1.0 dB)" in card


def test_a_dae_cards_text_from_its_checkpoint_is_shown_as_it_is_and_odd_values_do_not_stop_it():
    """A checkpoint from elsewhere writes what it likes into its metadata: the card (Markdown, read in a viewer that
    renders it) shows it as text, fetches nothing, and skips a benchmark row whose figures are not figures."""
    from markdown_it import MarkdownIt

    from covid_core.cards.dae import dae_card_markdown

    image = "![seen](http://evil.example/p.png)"
    rows = [_bench_row("nlm", "gaussian 25", 33.59, 50), _bench_row("dae", "gaussian 25", 34.96, 50),
            {**_bench_row("bm3d", "gaussian 25", "high", 50)}, ["not", "a", "row"],
            _bench_row(image, "gaussian 25", 30.0, 50)]
    ckpt = {"arch": {"channels": image}, "created": "<img src=http://evil.example/c.png>", "hardware": image,
            "torch_version": image, "epoch": "many", "training_time_s": float("nan"),
            "train_config": {"sigma_min": image, "crop": 96},
            "metrics": {"val_psnr": {"gaussian:25": "high", image: 30.0}},
            "test_benchmark": {"rows": rows, "command": f"python `{image}`", "measured": image}}
    card = dae_card_markdown(ckpt, "dae.pt")
    html = MarkdownIt("commonmark").render(card)  # as a Markdown viewer shows it
    assert "<img" not in html and "<a " not in html and "evil.example" in html
    assert "<code>&lt;img src=http://evil.example/c.png&gt;</code>" in html
    assert f"<code>python `{image}`</code>" in html
    assert "epoch ?" in card and "Training time: ? s" in card and "Gaussian sigma ?-?" in card and "random 96 px" in card
    assert "| gaussian 25 | nlm | 33.59 |" in card and "| bm3d |" not in card  # the row whose PSNR is a word: left out
    assert "- gaussian 25: +1.37 dB against nlm on 50 images" in card
    assert "gaussian 25: ? dB" in card
    assert "None recorded" in dae_card_markdown({"test_benchmark": {"rows": "x"}}, "dae.pt")


def _verdict_metadata(per_source: dict) -> dict:
    per_class = {"covid19": {"support": 60}, "normal": {"support": 114}, "pneumonia": {"support": 163}}
    return {"target": "3class", "metrics": {"test": {"n": 337, "per_class": per_class, "per_source": per_source}},
            "training_data": {"name": "coronahack-mini", "layout": "coronahack",
                              "sources": {"cohen": 300, "figure1": 40, "kermany": 1400, "nih": 800}}}


def test_positive_verdict_limits_give_ppv_with_prevalence_and_the_groups_often_called_covid():
    per_source = {
        "cohen": {"confusion": {"pneumonia": {"normal": 1, "pneumonia": 1, "covid19": 9},
                                "covid19": {"normal": 2, "pneumonia": 0, "covid19": 55}}},
        "nih": {"confusion": {"normal": {"normal": 55, "pneumonia": 0, "covid19": 3}}},  # 5%: not notable
        "kermany": {"confusion": {"normal": {"normal": 4, "pneumonia": 0, "covid19": 1}}},  # 20%: notable
    }
    ppv, groups = positive_verdict_limits(_verdict_metadata(per_source), {"value": 0.4, "test": {"ppv": 0.766}})
    assert "76.6%" in ppv and "PPV" in ppv and "60 of the 337 TEST films (17.8%)" in ppv
    assert "9 of 11 pneumonia films from source 'cohen' (adult films from the COVID-19 image collection" in groups
    assert "1 of 5 normal films from source 'kermany'" in groups
    assert "nih" not in groups and "covid19 films" not in groups  # true COVID-19 films are not false calls


def test_false_positives_by_source_are_counted_at_the_threshold_and_add_up():
    import pandas as pd

    from covid_core.evaluation import covid_calls_at_threshold

    table = pd.DataFrame({"source": ["cohen", "cohen", "cohen", "nih", "nih", "kermany"],
                          "label": ["covid19", "pneumonia", "pneumonia", "normal", "normal", "pneumonia"]})
    p_covid = np.array([0.9, 0.5, 0.2, 0.41, 0.1, 0.0])
    rows = {(r["source"], r["true class"]): r for r in covid_calls_at_threshold(table, p_covid, 0.41, "covid19")}
    assert set(rows) == {("cohen", "pneumonia"), ("nih", "normal"), ("kermany", "pneumonia")}  # COVID-19 films aside
    assert (rows[("cohen", "pneumonia")]["called covid"], rows[("nih", "normal")]["called covid"]) == (1, 1)
    metadata = {**_verdict_metadata({}), "card": {"covid_calls_at_threshold": list(rows.values())}}
    _, groups = positive_verdict_limits(metadata, {"test": {"ppv": 0.5}})
    assert groups.startswith("Its 2 false positives on TEST were: 1 of 2 pneumonia films from source 'cohen'")
    assert "1 of 2 normal films from source 'nih'" in groups and "kermany" not in groups  # no call there


def test_positive_verdict_limits_stay_silent_without_evidence():
    quiet = {"kermany": {"confusion": {"pneumonia": {"normal": 9, "pneumonia": 90, "covid19": 1}}}}
    assert positive_verdict_limits(_verdict_metadata(quiet), {"test": {}}) == []  # no PPV, no notable group
    assert positive_verdict_limits({"target": "pneumonia", "metrics": _verdict_metadata(quiet)["metrics"]},
                                   {"test": {"ppv": 0.9}}) == []  # no COVID-19 class
    assert positive_verdict_limits({"target": "3class"}, {"test": {"ppv": 0.9}}) == []  # no TEST metrics


def test_rates_at_threshold_carry_their_counts_and_read_as_rate_with_denominator():
    from covid_core.metrics import rates_at_threshold
    from covid_core.verdict import rate_text

    y = np.array([1, 1, 1, 0, 0, 0, 0])
    score = np.array([0.9, 0.8, 0.2, 0.7, 0.1, 0.3, 0.05])
    rates = rates_at_threshold(y, score, 0.5)
    assert (rates["tp"], rates["fn"], rates["fp"], rates["tn"]) == (2, 1, 1, 3)
    assert rates["npv"] == pytest.approx(3 / 4) and rates["ppv"] == pytest.approx(2 / 3)
    assert rate_text(rates, "sensitivity") == "66.7% (2 of 3)" and rate_text(rates, "npv") == "75.0% (3 of 4)"
    assert rate_text({"ppv": 0.5}, "ppv") == "50.0%"  # an older checkpoint without counts


def test_model_card_with_data_refreshes_the_threshold_rates_with_their_counts(tmp_path, monkeypatch):
    from app_helpers import make_checkpoint, make_folders_data
    from covid_core.cli import main

    monkeypatch.setenv("COVID_CORE_CACHE", str(tmp_path / "cache"))
    data = make_folders_data(tmp_path / "data", per_class=3)
    ckpt_path = make_checkpoint(tmp_path / "m.pt")
    old = dict(load_checkpoint_dict(ckpt_path)["threshold"]["test"])
    assert main(["model-card", str(ckpt_path), "--data", str(data), "--cam-limit", "2"]) == 0
    ckpt = load_checkpoint_dict(ckpt_path)
    rates = ckpt["threshold"]["test"]
    assert rates != old and rates["tp"] + rates["fn"] == 3 and rates["fp"] + rates["tn"] == 6  # 3 COVID-19 TEST films
    assert set(rates) >= {"sensitivity", "specificity", "ppv", "npv"} and ckpt["threshold"]["value"] == 0.4
    # the false positives by source and class, counted at the same threshold, add up to the same number
    assert sum(r["called covid"] for r in ckpt["card"]["covid_calls_at_threshold"]) == rates["fp"]
    assert "TEST at this threshold" in (tmp_path / "m.md").read_text()
    # the thorax shares name the heatmap they were measured on: the method and the layer Diagnose shows
    assert ckpt["card"]["thorax_heatmap"] == "hirescam at features.2"
    assert "Mean share of heatmap energy (hirescam at features.2) inside the estimated thorax" in \
        (tmp_path / "m.md").read_text()


def test_model_card_names_an_unreadable_test_film_and_changes_nothing(tmp_path, monkeypatch, capsys):
    from app_helpers import make_checkpoint, make_folders_data
    from covid_core.cli import main

    monkeypatch.setenv("COVID_CORE_CACHE", str(tmp_path / "cache"))
    data = make_folders_data(tmp_path / "data", per_class=3)
    (data / "test" / "normal" / "damaged.png").write_bytes(b"\x89PNG\r\n\x1a\n cut short")
    ckpt_path = make_checkpoint(tmp_path / "m.pt")
    before = ckpt_path.read_bytes()
    assert main(["model-card", str(ckpt_path), "--data", str(data), "--cam-limit", "2"]) == 2
    err = capsys.readouterr().err
    assert "normal/damaged.png" in err and "a card's TEST figures count every film" in err
    assert "--skip-unreadable" not in err  # which model-card does not take
    assert ckpt_path.read_bytes() == before and not (tmp_path / "m.md").exists()


def test_model_card_with_data_records_the_data_set_an_older_checkpoint_was_trained_on(tmp_path, monkeypatch, capsys):
    """A checkpoint from before the training data was recorded gains the record from --data, but only when that is
    the data set it was trained on (the same fingerprint)."""
    from app_helpers import make_checkpoint, make_folders_data
    from covid_core.checkpoint import atomic_save
    from covid_core.cli import main
    from covid_core.datasets import load_dataset

    monkeypatch.setenv("COVID_CORE_CACHE", str(tmp_path / "cache"))
    data = make_folders_data(tmp_path / "st-elsewhere", per_class=3)
    path = make_checkpoint(tmp_path / "m.pt")
    ckpt = load_checkpoint_dict(path)
    del ckpt["training_data"]
    ckpt["data_fingerprint"] = "0000000000000000"  # trained on another data set
    atomic_save(ckpt, path)
    assert main(["model-card", str(path), "--data", str(data), "--cam-limit", "2"]) == 0
    assert "not the data set this checkpoint was trained on" in capsys.readouterr().err
    assert "training_data" not in load_checkpoint_dict(path)
    ckpt = load_checkpoint_dict(path)
    ckpt["data_fingerprint"] = load_dataset(data).fingerprint()
    atomic_save(ckpt, path)
    assert main(["model-card", str(path), "--data", str(data), "--cam-limit", "2"]) == 0
    record = load_checkpoint_dict(path)["training_data"]
    # the fixture's 18 films (3 per class and split), whose source is not named
    assert record == {"name": "st-elsewhere", "layout": "folders", "sources": {"unknown": 18}}
    assert "- Data set: `st-elsewhere`, folders layout" in (tmp_path / "m.md").read_text()


def test_model_card_with_the_training_data_re_measures_validation_too_and_not_with_other_data(tmp_path, monkeypatch):
    """VALIDATION is carved from TRAIN as the run carved it, so it is re-measured (with its intervals) only from the
    data set the checkpoint was trained on: from another, that carving could hold films the model learned from."""
    from app_helpers import make_checkpoint, make_folders_data
    from covid_core.checkpoint import atomic_save
    from covid_core.cli import main
    from covid_core.datasets import load_dataset
    from covid_core.evaluation import metrics_on_val

    monkeypatch.setenv("COVID_CORE_CACHE", str(tmp_path / "cache"))
    data = make_folders_data(tmp_path / "data", per_class=8)
    path = make_checkpoint(tmp_path / "m.pt")
    assert main(["model-card", str(path), "--data", str(data), "--cam-limit", "2"]) == 0
    assert "val" not in load_checkpoint_dict(path)["card"]  # the fixture's fingerprint is another data set's
    ckpt = load_checkpoint_dict(path)
    ckpt["data_fingerprint"] = load_dataset(data).fingerprint()
    atomic_save(ckpt, path)
    assert main(["model-card", str(path), "--data", str(data), "--cam-limit", "2"]) == 0
    ckpt = load_checkpoint_dict(path)
    val = metrics_on_val(ckpt)
    assert val is ckpt["card"]["val"] and 0 < val["n"] < 24  # part of TRAIN's 24 films, none of TEST's
    assert val["macro_auc_low"] <= val["macro_auc"] <= val["macro_auc_high"]
    # trained on data laid out another way: this folder is then not that data set, and its TEST is still measured
    del ckpt["card"]["val"]
    ckpt["train_config"] = {**ckpt["train_config"], "layout": "coronahack"}
    atomic_save(ckpt, path)
    assert main(["model-card", str(path), "--data", str(data), "--cam-limit", "2"]) == 0
    assert "val" not in load_checkpoint_dict(path)["card"]
