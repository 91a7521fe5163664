"""Out-of-distribution score: is this image like the chest X-rays the model was trained on?

Method: class-conditional Gaussians with one shared (Ledoit-Wolf shrunk) covariance in the
classifier's feature space (Lee et al., NeurIPS 2018, "Mahalanobis"), fitted separately on two
feature sets of the same forward pass (see :func:`covid_core.models.model_features`):

- "penultimate": the globally pooled features the classifier decides on;
- "spatial": the last feature map pooled to 2x2 cells, which keeps the layout of the film. Global
  pooling forgets where things are, so a rotated or upside-down X-ray can pass on "penultimate"
  alone (the baseline cnn flagged 84% of them; with "spatial" 99%).

Each part's distance (the smallest squared Mahalanobis distance to a class mean) is divided by
its own threshold, a high percentile of the VALIDATION distances. The score is the largest of
these ratios, so the threshold is 1.0: an image is flagged when any part finds it unfamiliar. A
part flags about (100 - percentile)% of validation images; both together flag a little more
(stored as ``val_flagged``). Limits: it only knows what the training data looked like; an X-ray
from another hospital can be flagged, and an adversarially made image can pass.

Checkpoints written before the "spatial" part hold one part's ``means``/``precision``/``threshold``
at the top level (a raw distance, not a ratio); they are scored as before.
"""

from __future__ import annotations

import numpy as np
import torch


# A DxD precision matrix costs 4*D^2 bytes: resnet18's spatial part (D = 2048) would add 17 MB to a 44 MB file.
# Above MAX_FULL_DIM the features are first projected on their REDUCED_DIM principal components (fitted on TRAIN).
# Measured on the shipped resnet18 (TEST / rotated or inverted films flagged): full 3.6% / 100%, 256 components
# 3.3% / 98.8%. The cnn (D = 1024) keeps its full matrix: with 256 components it flagged 5.3% / 95.0%.
MAX_FULL_DIM = 1024
REDUCED_DIM = 256


def _fit_part(name: str, train: np.ndarray, labels: np.ndarray, val: np.ndarray, percentile: float) -> dict:
    from sklearn.covariance import LedoitWolf

    feats = np.asarray(train, np.float64)
    part = {"name": name}
    if feats.shape[1] > MAX_FULL_DIM:
        from sklearn.decomposition import PCA

        # A small run (the Train form allows 8 images a split) has fewer films than REDUCED_DIM: PCA can keep
        # at most as many components as there are films.
        pca = PCA(min(REDUCED_DIM, *feats.shape), random_state=0).fit(feats)
        part["center"] = torch.tensor(pca.mean_, dtype=torch.float32)
        part["projection"] = torch.tensor(pca.components_.T.copy(), dtype=torch.float32)
        feats = pca.transform(feats)
    classes = sorted(set(labels.tolist()))
    means = np.stack([feats[labels == c].mean(0) for c in classes])
    centred = feats - means[np.searchsorted(classes, labels)]
    part["means"] = torch.tensor(means, dtype=torch.float32)
    part["precision"] = torch.tensor(LedoitWolf().fit(centred).precision_, dtype=torch.float32)
    part["threshold"] = float(np.percentile(_distances(part, val), percentile))
    return part


def fit_ood(train_features: dict[str, np.ndarray], train_labels: np.ndarray, val_features: dict[str, np.ndarray],
            percentile: float = 98.0) -> dict:
    """Fit one Gaussian model per feature set ({name: NxD}) on train; set each threshold on validation."""
    labels = np.asarray(train_labels, int)
    parts = [_fit_part(name, train_features[name], labels, val_features[name], percentile)
             for name in sorted(train_features)]
    # orientation_check: inference also scores rotated and inverted copies (covid_core.inference.score_pixels);
    # checkpoints fitted before it (and hand-made test fixtures) are scored without it.
    stats = {"method": "mahalanobis", "parts": parts, "threshold": 1.0, "percentile": float(percentile),
             "orientation_check": True}
    stats["val_flagged"] = float(np.mean(ood_scores(stats, val_features) > 1.0))
    return stats


def has_ood(stats: dict) -> bool:
    """Whether a checkpoint's ``ood`` entry can score images (current or pre-"spatial" format)."""
    return bool(stats.get("parts")) or stats.get("means") is not None


def class_distances(part: dict, features) -> np.ndarray:
    """N x C: each film's squared Mahalanobis distance to each training class mean of one fitted part (raw, not
    divided by the part's threshold; means in class-index order)."""
    f = torch.as_tensor(np.asarray(features), dtype=torch.float32)
    if "projection" in part:
        f = (f - part["center"]) @ part["projection"]
    means, precision = part["means"].float(), part["precision"].float()
    d = f[:, None, :] - means[None]  # N x C x D
    return torch.einsum("ncd,de,nce->nc", d, precision, d).numpy()


def _distances(part: dict, features) -> np.ndarray:
    return class_distances(part, features).min(1)


def ood_scores(stats: dict, features: dict[str, np.ndarray]) -> np.ndarray:
    """float N, higher = less familiar; flagged above ``stats["threshold"]``.

    Current format: the largest over parts of distance / that part's threshold (threshold 1.0).
    Pre-"spatial" checkpoints: the raw distance on the penultimate features.
    """
    if not stats.get("parts"):
        return _distances(stats, features["penultimate"])
    return np.max([_distances(p, features[p["name"]]) / p["threshold"] for p in stats["parts"]], axis=0)


def turned_flags(stats: dict, own: np.ndarray, copies: list[dict[str, np.ndarray]]) -> np.ndarray:
    """bool N: films one of whose rotated or inverted copies (``copies``: each copy's features, as for
    :func:`ood_scores`) is more familiar than the film itself (``own``: its scores), so it is probably turned."""
    return np.min([ood_scores(stats, c) for c in copies], axis=0) < own


def leave_one_source_out(train_features: dict[str, np.ndarray], train_labels: np.ndarray, train_sources: np.ndarray,
                         val_features: dict[str, np.ndarray], val_sources: np.ndarray,
                         test_features: dict[str, np.ndarray], test_sources: np.ndarray,
                         percentile: float = 98.0) -> dict:
    """Would the familiarity score notice a hospital it has never seen? For each source S: refit the score
    without S's TRAIN and VALIDATION films, then the share of S's TEST films it flags (the network itself still
    saw S in training, so this is a lower bound of what a truly new hospital would show).

    Returns {source: {"flagged": share, "n": TEST films}} for each source with TEST films and other TRAIN films.
    """
    out = {}
    for source in sorted(set(np.asarray(test_sources).astype(str))):
        keep_train = np.asarray(train_sources).astype(str) != source
        keep_val = np.asarray(val_sources).astype(str) != source
        held = np.asarray(test_sources).astype(str) == source
        if keep_train.sum() < 10 or keep_val.sum() < 10 or not held.any():
            continue
        stats = fit_ood({k: v[keep_train] for k, v in train_features.items()}, np.asarray(train_labels)[keep_train],
                        {k: v[keep_val] for k, v in val_features.items()}, percentile)
        flagged = ood_scores(stats, {k: v[held] for k, v in test_features.items()}) > stats["threshold"]
        out[str(source)] = {"flagged": float(flagged.mean()), "n": int(held.sum())}  # plain str: weights_only loads
    return out

