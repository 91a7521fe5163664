"""bench/unseen_positive_gate.py: its distance to one class mean is the familiarity score's own distance."""

from __future__ import annotations

import importlib
import sys

import numpy as np

from conftest import REPO

sys.path.insert(0, str(REPO / "bench"))  # the bench script imports its sibling shortcut_ablation
gate = importlib.import_module("unseen_positive_gate")


def test_the_nearest_class_distance_is_the_familiarity_score(tiny_checkpoint):
    from covid_core.checkpoint import load_classifier
    from covid_core.inference import logits_and_features
    from covid_core.ood import fit_ood, ood_scores

    clf = load_classifier(tiny_checkpoint)
    rng = np.random.default_rng(0)
    films = rng.integers(0, 256, size=(30, 64, 64), dtype=np.uint8)
    _, feats = logits_and_features(clf.model, films, clf.preprocess, spatial_layer=clf.spec.feature_layer(clf.model))
    clf.ood.update(fit_ood(feats, np.arange(30) % 3, feats))

    per_class = [gate.distances_to_class(clf, films, c)[1] for c in range(3)]
    nearest = np.max([np.min([d[name] for d in per_class], axis=0) for name in per_class[0]], axis=0)
    # the score is the largest over feature spaces of the nearest class mean's distance / that space's threshold
    assert np.allclose(nearest, ood_scores(clf.ood, feats), rtol=1e-4)
    probs = gate.distances_to_class(clf, films, 0)[0]
    assert probs.shape == (30, 3) and np.allclose(probs.sum(1), 1.0, atol=1e-5)
