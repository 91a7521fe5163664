"""One model object serves every session of the app and a site validation's thread at once: a heatmap and a
prediction made in two threads must each come from their own film."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from conftest import CLASSES_3
from covid_core.checkpoint import Classifier
from covid_core.explain.cam import compute_cams
from covid_core.explain.scores import ExplainedScore, WithSiteHeads
from covid_core.inference import logits_and_features
from covid_core.models import build_model, get_spec, last_linear
from covid_core.preprocess import PreprocessConfig, to_model_input

ROUNDS = 40


def _classifier(size=96) -> Classifier:
    torch.manual_seed(0)
    return Classifier(model=build_model("resnet18", len(CLASSES_3)).eval(), spec=get_spec("resnet18"),
                      classes=tuple(CLASSES_3), target="3class", preprocess=PreprocessConfig(image_size=size))


@pytest.mark.parametrize("of", ["a class", "a site's head"])
def test_a_heatmap_made_while_another_thread_scores_films_comes_from_its_own_film(of):
    clf = _classifier()
    size = clf.preprocess.image_size
    film = (np.random.default_rng(0).random((1, size, size)) * 255).astype(np.uint8)
    other = np.zeros((4, size, size), np.uint8)
    other[:, size // 4:3 * size // 4, size // 4:3 * size // 4] = 200
    layer, features_layer = clf.spec.heatmap_layer(clf.model), clf.spec.feature_layer(clf.model)
    x = to_model_input(film, clf.preprocess)
    dims = last_linear(clf.model).in_features
    head = {"mean": [0.0] * dims, "scale": [1.0] * dims, "intercept": 0.0,
            "coef": np.random.default_rng(2).normal(size=dims).tolist()}  # its map on this film is not empty
    # a site's head runs the shared network inside a module of its own (explain.scores)
    model, score = (clf.model, 2) if of == "a class" else (WithSiteHeads(clf.model, [head]),
                                                            ExplainedScore(3, 3, by="the head"))

    def heatmap():
        return compute_cams(model, layer, x, "gradcam", [score])[0]

    def features():
        return logits_and_features(clf.model, other, clf.preprocess, spatial_layer=features_layer)[1]

    expected_map, expected_features = heatmap(), features()
    assert expected_map.max() > 0  # a map that could come out wrong
    wrong = {"heatmaps": 0, "features": 0}
    done = threading.Event()

    def make_heatmaps():
        for _ in range(ROUNDS):
            wrong["heatmaps"] += not np.allclose(heatmap(), expected_map, atol=1e-4)
        done.set()

    def score_films():
        while not done.is_set():
            f = features()
            wrong["features"] += not all(np.allclose(f[k], expected_features[k], atol=1e-4) for k in f)

    threads = [threading.Thread(target=make_heatmaps), threading.Thread(target=score_films)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == {"heatmaps": 0, "features": 0}
