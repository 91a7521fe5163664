"""Out-of-distribution score: is this image like the chest X-rays the model was trained on?

Method: class-conditional Gaussians with one shared (Ledoit-Wolf shrunk) covariance in the
classifier's penultimate feature space (Lee et al., NeurIPS 2018, "Mahalanobis"). The score
is the smallest squared Mahalanobis distance to a class mean; the threshold is a high
percentile of the VALIDATION scores, so about (100 - percentile)% of in-distribution images
are flagged. Limits: it only knows what the training data looked like; an X-ray from another
hospital can be flagged, and an adversarially made image can pass.
"""

from __future__ import annotations

import numpy as np
import torch


def fit_ood(train_features: np.ndarray, train_labels: np.ndarray, val_features: np.ndarray,
            percentile: float = 98.0) -> dict:
    """Fit on train features (NxD float) and labels; set the threshold on validation features."""
    from sklearn.covariance import LedoitWolf

    feats = np.asarray(train_features, np.float64)
    labels = np.asarray(train_labels, int)
    classes = sorted(set(labels.tolist()))
    means = np.stack([feats[labels == c].mean(0) for c in classes])
    centred = feats - means[np.searchsorted(classes, labels)]
    precision = LedoitWolf().fit(centred).precision_
    stats = {"method": "mahalanobis", "means": torch.tensor(means, dtype=torch.float32),
             "precision": torch.tensor(precision, dtype=torch.float32)}
    val_scores = ood_scores(stats, val_features)
    stats["threshold"] = float(np.percentile(val_scores, percentile))
    stats["percentile"] = float(percentile)
    return stats


def ood_scores(stats: dict, features: np.ndarray | torch.Tensor) -> np.ndarray:
    """float N: min over classes of the squared Mahalanobis distance (higher = less familiar)."""
    f = torch.as_tensor(np.asarray(features), dtype=torch.float32)
    means, precision = stats["means"].float(), stats["precision"].float()
    d = f[:, None, :] - means[None]  # N x C x D
    dist = torch.einsum("ncd,de,nce->nc", d, precision, d)
    return dist.min(1).values.numpy()
