"""At a validated site a head fitted on the frozen features may decide a class (the COVID-19 head, the pneumonia
head for the call): the heatmap of that class then explains the head's score, not the network's own logit."""

from __future__ import annotations

import copy
import dataclasses
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from app_helpers import make_checkpoint, png_bytes, xray_array
from conftest import CLASSES_3, REPO
from covid_core.checkpoint import Classifier
from covid_core.explain import explain
from covid_core.explain.scores import WithSiteHeads
from covid_core.models import build_model, get_spec, last_linear, model_features
from covid_core.preprocess import PreprocessConfig, to_model_input
from covid_core.site_file import Site


def _classifier(classes=CLASSES_3, target="3class") -> Classifier:
    torch.manual_seed(0)
    return Classifier(model=build_model("cnn", len(classes)).eval(), spec=get_spec("cnn"), classes=tuple(classes),
                      target=target, preprocess=PreprocessConfig(image_size=64))


def _head(dims: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {"mean": rng.normal(0, 0.1, dims).tolist(), "scale": rng.uniform(0.5, 2.0, dims).tolist(),
            "coef": rng.normal(0, 1.0, dims).tolist(), "intercept": float(rng.normal())}


def _row_for(head: dict, sign: float) -> tuple[torch.Tensor, float]:
    """The head as one row of a final linear layer (times ``sign``)."""
    w = np.asarray(head["coef"]) / np.asarray(head["scale"])
    bias = head["intercept"] - float(np.asarray(head["mean"]) @ w)
    return torch.as_tensor(sign * w, dtype=torch.float32), sign * bias


def _network_with_row(clf: Classifier, index: int, head: dict, sign: float) -> Classifier:
    """The classifier with class ``index``'s logit replaced by the head's: what a heatmap of the head must equal."""
    model = copy.deepcopy(clf.model)
    row, bias = _row_for(head, sign)
    with torch.no_grad():
        last_linear(model).weight[index] = row
        last_linear(model).bias[index] = bias
    return dataclasses.replace(clf, model=model, site=None)


def test_the_heatmap_of_a_class_a_sites_head_decides_is_the_heads_own():
    clf = _classifier()
    dims = last_linear(clf.model).in_features
    covid_head, pneumonia_head = _head(dims, 2), _head(dims, 12)  # heads whose maps on this film are not empty
    at_site = dataclasses.replace(clf, site=Site("St Elsewhere", threshold=0.5, head=covid_head,
                                                 pneumonia_head=pneumonia_head))
    film = xray_array(80).astype(np.float32) / 255
    for index, name, head, sign in ((2, "covid19", covid_head, 1.0), (1, "pneumonia", pneumonia_head, 1.0),
                                    (0, "normal", pneumonia_head, -1.0)):
        e = explain(at_site, film, "gradcam", target_class=name)
        expected = explain(_network_with_row(clf, index, head, sign), film, "gradcam", target_class=name)
        network = explain(clf, film, "gradcam", target_class=name)
        assert e.explained_by == "the head fitted on St Elsewhere's films" and e.target_class == name
        assert e.heatmap_model.max() > 0 and np.allclose(e.heatmap_model, expected.heatmap_model, atol=1e-4)
        assert not np.allclose(e.heatmap_model, network.heatmap_model, atol=0.05)  # the network's is another map
        assert e.pushed == f"what pushed the head fitted on St Elsewhere's films towards '{name}'"
        assert "the probability the head fitted on St Elsewhere's films gives the explained class" in \
            e.faithfulness_name
        assert e.probabilities == pytest.approx(network.probabilities)  # the network's own, as Diagnose shows them
    # A two-class COVID-19 model's verdict is its call: its other class is explained as the head's opposite.
    two = _classifier(("negative", "positive"), "covid")
    head = _head(last_linear(two.model).in_features, 2)
    two_at_site = dataclasses.replace(two, site=Site("St Elsewhere", threshold=0.5, head=head))
    for index, name, sign in ((1, "positive", 1.0), (0, "negative", -1.0)):
        e = explain(two_at_site, film, "gradcam", target_class=name)
        expected = explain(_network_with_row(two, index, head, sign), film, "gradcam", target_class=name)
        assert e.explained_by and np.allclose(e.heatmap_model, expected.heatmap_model, atol=1e-4)
    # A site without heads keeps the network's logit.
    plain = explain(dataclasses.replace(clf, site=Site("St Elsewhere", threshold=0.5)), film, target_class="covid19")
    assert plain.explained_by == "" and plain.pushed == "what pushed the model towards 'covid19'"


def test_the_heads_output_is_the_logit_of_the_probability_the_verdict_uses():
    clf = _classifier()
    dims = last_linear(clf.model).in_features
    site = Site("St Elsewhere", threshold=0.5, head=_head(dims, 1), pneumonia_head=_head(dims, 2))
    pixels = (np.random.default_rng(0).random((3, 64, 64)) * 255).astype(np.uint8)
    x = to_model_input(pixels, clf.preprocess)
    with torch.no_grad():
        out = WithSiteHeads(clf.model, [site.head, site.pneumonia_head])(x).numpy()
        _, features = model_features(clf.model, x)
    penultimate = features["penultimate"].numpy()
    assert out.shape == (3, 5)
    for column, head in ((3, site.head), (4, site.pneumonia_head)):
        assert 1 / (1 + np.exp(-out[:, column])) == pytest.approx(site.head_probability(penultimate, head), abs=1e-5)


def _site_with_heads(model, path, dims=256):
    from covid_core.digests import file_sha256
    from covid_core.site_file import SITE_FORMAT

    calls = {"normal": {"normal": 40, "pneumonia": 10}, "pneumonia": {"normal": 8, "pneumonia": 42}}
    path.write_text(json.dumps({
        "format": SITE_FORMAT, "site": "St Elsewhere", "checkpoint": {"sha256": file_sha256(model)},
        "parameters": {"threshold": 2.0, "pneumonia_head": _head(dims, 2)},  # every verdict negative
        "after": {"sensitivity": {"value": 0.9, "low": 0.8, "high": 0.97},
                  "specificity": {"value": 0.85, "low": 0.75, "high": 0.93}, "calls": calls}}))


def test_the_explain_command_names_the_head_whose_score_it_explains(tmp_path):
    model = make_checkpoint(tmp_path / "model.pt")
    site = tmp_path / "site.json"
    _site_with_heads(model, site)
    film = tmp_path / "chest.png"
    film.write_bytes(png_bytes(xray_array(64)))
    r = subprocess.run([sys.executable, "-m", "covid_core", "explain", "--model", str(model), "--site", str(site),
                        str(film), "--out", str(tmp_path / "map.png")], cwd=REPO, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    [line] = [x for x in r.stdout.splitlines() if x.startswith("explained class: ")]
    assert line.endswith("(hirescam, the score of the head fitted on St Elsewhere's films)")
    assert line.split()[2] in ("normal", "pneumonia")


def test_diagnose_says_whose_score_the_heatmap_follows(tmp_path, monkeypatch):
    from app_helpers import APP, app_env
    from test_app_diagnose import TIMEOUT

    weights = app_env(tmp_path, monkeypatch)
    _site_with_heads(weights / "tiny_cnn.pt", weights / "tiny_cnn.site.json")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT).run()
    at.file_uploader(key="diag_upload").set_value(("chest.png", png_bytes(xray_array(64)), "image/png")).run()
    assert not at.exception, at.exception
    captions = [c for image in at.get("image") for c in image.captions]
    [heatmap] = [c for c in captions if c.startswith("Where the model looked")]
    assert "(red: what pushed the head fitted on St Elsewhere's films towards '" in heatmap


def test_the_bench_compares_the_heads_map_with_the_networks_on_every_film_a_head_decides(tmp_path, capsys,
                                                                                          monkeypatch):
    import importlib

    from app_helpers import make_site_folder

    sys.path.insert(0, str(REPO / "bench"))
    bench = importlib.import_module("site_heatmap")
    model = make_checkpoint(tmp_path / "model.pt")
    _site_with_heads(model, tmp_path / "site.json")
    folder = make_site_folder(tmp_path / "hospital", per_class=3, classes=("normal", "pneumonia", "covid19"))
    monkeypatch.setattr(sys, "argv", ["site_heatmap.py", "--model", str(model), "--site", str(tmp_path / "site.json"),
                                      "--films", str(folder), "--per-class", "3"])
    assert bench.main() == 0
    out = capsys.readouterr().out
    rows = [line.split(" | ") for line in out.splitlines() if line.startswith("| normal") or line.startswith("| pneu")]
    withheld = int(out.split("films whose call a head decides (")[1].split(" withheld")[0])
    assert rows and sum(int(r[1]) for r in rows) + withheld == 9  # every film given a verdict: the head decides
    for r in rows:
        head, network = (float(v) for v in r[2].removesuffix(" pts").split(" / "))
        assert -100 <= head <= 100 and -100 <= network <= 100


@pytest.mark.parametrize("method", ["gradcam++", "hirescam", "xgradcam", "layercam", "eigencam", "scorecam"])
def test_every_method_explains_a_sites_head(method):
    clf = _classifier()
    dims = last_linear(clf.model).in_features
    at_site = dataclasses.replace(clf, site=Site("St Elsewhere", threshold=0.5, head=_head(dims, 2),
                                                 pneumonia_head=_head(dims, 12)))
    film = xray_array(80).astype(np.float32) / 255
    for name in CLASSES_3:
        e = explain(at_site, film, method, target_class=name)
        assert e.explained_by and e.target_class == name and e.heatmap.shape == (80, 80)
        assert not np.isnan(e.heatmap).any() and e.faithfulness is not None and np.isfinite(e.faithfulness)


def test_a_site_named_with_a_possessive_reads_as_english():
    from covid_core.verdict import verdict_caveat

    clf = _classifier()
    dims = last_linear(clf.model).in_features
    site = Site("St Mary's", threshold=0.5, head=_head(dims, 2),
                sensitivity={"value": 0.9, "low": 0.5, "high": 0.99}, specificity={"value": 0.9, "low": 0.8})
    e = explain(dataclasses.replace(clf, site=site), xray_array(80).astype(np.float32) / 255, target_class="covid19")
    assert e.explained_by == "the head fitted on St Mary's films"
    p = type("P", (), {"withheld": False, "covid_positive": True})()
    assert verdict_caveat(p, site) == ("Unconfirmed: St Mary's labelled films are too few to know how often this model "
                                       "is right here.")
    assert verdict_caveat(p, dataclasses.replace(site, name="St Elsewhere")).startswith("Unconfirmed: St Elsewhere's")
