"""The out-of-distribution score: two feature sets, thresholds on validation, old checkpoints, fit-ood, shipped models."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import REPO, make_folder_dataset
from covid_core.checkpoint import atomic_save, load_checkpoint_dict
from covid_core.ood import fit_ood, has_ood, ood_scores

CELLS, CHANNELS = 4, 6


def _features(n: int, seed: int, rotated: bool = False) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Synthetic 3-class features shaped like a network's: a 2x2 map of CHANNELS channels, and its global mean.

    Each cell has its own typical values (the layout of a film). ``rotated`` moves the cells around: the
    global mean ("penultimate") is unchanged, only the layout ("spatial") betrays it.
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    layout = np.arange(CELLS)[None, :, None] * 4.0 + labels[:, None, None] * 1.5
    cells = layout + rng.normal(0, 1, (n, CELLS, CHANNELS))
    if rotated:
        cells = cells[:, ::-1]
    return {"penultimate": cells.mean(1), "spatial": cells.reshape(n, -1)}, labels


@pytest.mark.parametrize("max_full_dim", [1024, 12])
def test_the_spatial_part_flags_what_global_pooling_cannot_see(max_full_dim, monkeypatch):
    import covid_core.ood as ood

    monkeypatch.setattr(ood, "MAX_FULL_DIM", max_full_dim)  # 12: the 24 spatial dims go through 8 PCA components
    monkeypatch.setattr(ood, "REDUCED_DIM", 8)
    train, labels = _features(3000, seed=0)
    val, _ = _features(1000, seed=1)
    stats = fit_ood(train, labels, val, percentile=98.0)
    assert [p["name"] for p in stats["parts"]] == ["penultimate", "spatial"] and stats["threshold"] == 1.0
    spatial = stats["parts"][1]
    if max_full_dim < CELLS * CHANNELS:
        assert spatial["projection"].shape == (CELLS * CHANNELS, 8) and spatial["precision"].shape == (8, 8)
    else:
        assert "projection" not in spatial and spatial["precision"].shape == (CELLS * CHANNELS,) * 2
    # each part flags 2% of validation by construction; together at least that, at most the sum
    assert 0.02 <= stats["val_flagged"] <= 0.04 + 1e-9
    fresh, _ = _features(1000, seed=2)
    rotated, _ = _features(400, seed=2, rotated=True)
    assert np.mean(ood_scores(stats, fresh) > 1.0) < 0.10  # about 2-4% expected; the tail threshold is noisy
    assert np.mean(ood_scores(stats, rotated) > 1.0) > 0.95

    # The penultimate part alone (what checkpoints held before) misses the rotated ones: the test has teeth.
    penultimate = stats["parts"][0]
    legacy = {"method": "mahalanobis", "means": penultimate["means"], "precision": penultimate["precision"],
              "threshold": penultimate["threshold"], "percentile": 98.0}
    assert has_ood(legacy) and has_ood(stats) and not has_ood({})
    assert np.mean(ood_scores(legacy, rotated) > legacy["threshold"]) < 0.1


def test_old_checkpoints_are_scored_as_before_on_raw_penultimate_distances():
    train, labels = _features(300, seed=3)
    val, _ = _features(100, seed=4)
    part = fit_ood({"penultimate": train["penultimate"]}, labels, {"penultimate": val["penultimate"]})["parts"][0]
    legacy = {"method": "mahalanobis", "means": part["means"], "precision": part["precision"],
              "threshold": part["threshold"], "percentile": 98.0}
    probe, _ = _features(50, seed=5)
    raw = ood_scores(legacy, probe)
    d = torch.as_tensor(probe["penultimate"], dtype=torch.float32)[:, None] - part["means"][None]
    expected = torch.einsum("ncd,de,nce->nc", d, part["precision"], d).min(1).values.numpy()
    np.testing.assert_allclose(raw, expected, rtol=1e-5)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "covid_core", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)


def test_fit_ood_refits_an_old_checkpoint_in_place_and_refuses_other_data(folder_dataset, tmp_path):
    from covid_core.training import TrainConfig, run

    best = run(TrainConfig(data=str(folder_dataset), model="cnn", epochs=2, batch_size=4, image_size=32, seed=0,
                           augment=False, val_fraction=0.2, runs_dir=str(tmp_path / "runs"), run_id="ood"),
               progress=False)
    fresh = load_checkpoint_dict(best)
    assert [p["name"] for p in fresh["ood"]["parts"]] == ["penultimate", "spatial"]  # training fits both parts
    old = dict(fresh)
    part = fresh["ood"]["parts"][0]
    old["ood"] = {"method": "mahalanobis", "means": part["means"], "precision": part["precision"],
                  "threshold": part["threshold"], "percentile": 98.0}
    path = tmp_path / "old.pt"
    atomic_save(old, path)

    r = _cli("fit-ood", str(path), "--data", str(folder_dataset))
    assert r.returncode == 0, r.stderr
    assert "refitted on" in r.stdout and "VALIDATION" in r.stdout
    refit = load_checkpoint_dict(path)
    assert [p["name"] for p in refit["ood"]["parts"]] == ["penultimate", "spatial"]
    assert refit["ood"]["refitted_with"].startswith("python -m covid_core fit-ood ")
    from covid_core.cards.classifier import card_markdown

    assert "Refitted after training with `python -m covid_core fit-ood" in card_markdown(refit, "old.pt", "old.pt")
    for part, trained in zip(refit["ood"]["parts"], fresh["ood"]["parts"]):  # the same fit training made
        assert part["name"] == trained["name"] and part["threshold"] == pytest.approx(trained["threshold"])
        torch.testing.assert_close(part["means"], trained["means"])
        torch.testing.assert_close(part["precision"], trained["precision"])
    assert all(torch.equal(refit["state_dict"][k], v) for k, v in fresh["state_dict"].items())
    assert refit["temperature"] == fresh["temperature"] and refit["threshold"] == fresh["threshold"]

    other = make_folder_dataset(tmp_path / "other", per_class_train=10)
    before = path.read_bytes()
    r = _cli("fit-ood", str(path), "--data", str(other))
    assert r.returncode == 2 and "fingerprint" in r.stderr and "Traceback" not in r.stderr
    assert path.read_bytes() == before  # nothing lost on refusal


def test_fit_ood_needs_the_training_settings(tiny_checkpoint, folder_dataset):
    r = _cli("fit-ood", str(tiny_checkpoint), "--data", str(folder_dataset))
    assert r.returncode == 2 and "no training settings" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("name", ["resnet18", "cnn"])
def test_shipped_classifiers_flag_non_xrays_and_turned_films_but_few_test_films(name, real_data):
    from covid_core.checkpoint import load_classifier
    from covid_core.datasets import load_dataset
    from covid_core.decode import decode_image
    from covid_core.ood_check import ood_check

    classifier = load_classifier(REPO / "weights" / f"{name}.pt")
    table = load_dataset(str(real_data)).for_target(classifier.target)
    test_xrays = [decode_image(p).pixels for p in table.loc[table["split"] == "test", "path"]]
    check = ood_check(classifier, test_xrays)
    assert check["test_n"] == 396 and check["transformed_xray_n"] == 80
    assert check["non_xray_flagged"] >= 0.95, check
    assert check["transformed_xray_flagged"] >= 0.95, check
    assert check["test_flagged"] <= 0.05, check
