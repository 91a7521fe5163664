"""A domain-adversarial source head (Ganin and Lempitsky, ICML 2015), conditioned on the class.

A small network tries to name a film's source (hospital or collection, from provenance.csv) from the
classifier's penultimate features and the film's true class. Its gradient reaches the classifier reversed
(gradient reversal), so the features are pushed to carry no source information beyond what the class
already implies: within the normal class, NIH adults and Kermany children should look alike to it.
The head trains only; checkpoints do not keep it.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError


UNKNOWN_SOURCE = -100  # the code of a film whose source is not known: cross-entropy's ignore_index, so skipped


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight: float):
        ctx.weight = weight
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.weight * grad, None


def source_codes(sources: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """(int code per film, source names); ConfigError when fewer than two sources are known."""
    names = sorted({str(s) for s in sources if str(s) != "unknown"})
    if len(names) < 2:
        raise ConfigError("training against the source needs films from at least two sources in provenance.csv "
                          f"(found: {', '.join(names) or 'none'}); train without --source-adversary, "
                          "--source-mix, --group-dro, --source-contrast, --mix-style and --source-prior")
    index = {name: i for i, name in enumerate(names)}
    return np.array([index.get(str(s), UNKNOWN_SOURCE) for s in sources], dtype=np.int64), names


class SourceAdversary(nn.Module):
    """``loss(features, labels, sources, progress)``: the source head's cross-entropy, its gradient reversed
    into the features with weight ``weight * (2 / (1 + exp(-10 progress)) - 1)`` (DANN's ramp from 0, so the
    classifier first learns something to protect). Films of unknown source (UNKNOWN_SOURCE) are ignored."""

    def __init__(self, n_features: int, n_classes: int, n_sources: int, weight: float, hidden: int = 128):
        super().__init__()
        self.weight, self.n_classes = weight, n_classes
        self.head = nn.Sequential(nn.Linear(n_features + n_classes, hidden), nn.ReLU(inplace=True),
                                  nn.Linear(hidden, n_sources))

    def ramp(self, progress: float) -> float:
        return self.weight * (2.0 / (1.0 + math.exp(-10.0 * progress)) - 1.0)

    def loss(self, features: torch.Tensor, labels: torch.Tensor, sources: torch.Tensor,
             progress: float) -> torch.Tensor:
        reversed_features = _ReverseGradient.apply(features, self.ramp(progress))
        given_class = nn.functional.one_hot(labels, self.n_classes).to(features.dtype)
        logits = self.head(torch.cat([reversed_features, given_class], dim=1))
        if (sources < 0).all():
            return logits.sum() * 0.0
        return nn.functional.cross_entropy(logits, sources, ignore_index=UNKNOWN_SOURCE)
