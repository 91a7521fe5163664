"""bench/source_erasure.py's erasure: inside each class the source can no longer be read linearly, and the
class still can."""

import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import source_erasure  # noqa: E402


def _features(seed: int = 0):
    """Two classes along dim 0; inside each, two sources apart along dim 1 (class 0) and dim 2 (class 1)."""
    rng = np.random.default_rng(seed)
    n = 200
    labels = np.repeat([0, 1], n)
    sources = np.tile(np.repeat(["a", "b"], n // 2), 2)
    x = rng.normal(size=(2 * n, 12))
    x[:, 0] += 3.0 * labels
    x[:, 1] += np.where((labels == 0) & (sources == "b"), 3.0, 0.0)
    x[:, 2] += np.where((labels == 1) & (sources == "b"), 3.0, 0.0)
    return x, labels, sources


def _source_accuracy(x, labels, sources) -> float:
    inside = labels == 0
    return cross_val_score(LogisticRegression(max_iter=1000), x[inside], sources[inside], cv=5).mean()


def test_mean_erasure_removes_the_source_and_keeps_the_class():
    x, labels, sources = _features()
    assert _source_accuracy(x, labels, sources) > 0.9
    erased = source_erasure.erase(x, source_erasure.mean_directions(x, labels, sources))
    assert _source_accuracy(erased, labels, sources) < 0.65
    assert cross_val_score(LogisticRegression(max_iter=1000), erased, labels, cv=5).mean() > 0.9


def test_inlp_erasure_removes_the_source_and_keeps_the_class():
    x, labels, sources = _features(1)
    basis = source_erasure.inlp_directions(x, labels, sources, rounds=2)
    assert np.allclose(basis.T @ basis, np.eye(basis.shape[1]), atol=1e-8)
    erased = source_erasure.erase(x, basis)
    assert _source_accuracy(erased, labels, sources) < 0.65
    assert cross_val_score(LogisticRegression(max_iter=1000), erased, labels, cv=5).mean() > 0.9
