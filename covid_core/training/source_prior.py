"""A product of experts with a source-only model: the network is not rewarded for what the source alone predicts.

Clark, Yatskar and Zettlemoyer ("Don't Take the Easy Way Out", EMNLP 2019) and He, Zha and Wang ("Unlearn
Dataset Bias in Natural Language Inference by Fitting the Residual", 2019) train a network against a known bias by adding a bias-only model's
log-probabilities to its logits during training and dropping them at test. Here the bias is the source: the
bias-only model is p(class | source) as the training sampler draws it, so a Kermany film's logits get log p(class
| Kermany), which already says "not COVID-19". The network earns nothing by naming the hospital; its gradient comes
from what the source leaves unexplained, within each source: NIH's adults normal vs pneumonia, the COVID-19
collections' COVID-19 vs other pneumonia. A class a source never has gets a floor share (``floor``), not zero,
so its logit is still trained a little. Films of unknown source get no prior. Evaluation reads the network alone.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .adversary import UNKNOWN_SOURCE


def source_class_shares(sample_weights: np.ndarray, labels: np.ndarray, codes: np.ndarray, n_sources: int,
                        n_classes: int, floor: float) -> np.ndarray:
    """(n_sources, n_classes) p(class | source) as a sampler with ``sample_weights`` draws the films, each share
    raised to at least ``floor`` and the rows renormalised; a source with no films gets the uniform row."""
    mass = np.zeros((n_sources, n_classes))
    known = codes != UNKNOWN_SOURCE
    np.add.at(mass, (codes[known], labels[known]), sample_weights[known])
    totals = mass.sum(axis=1, keepdims=True)
    shares = np.where(totals > 0, mass / np.where(totals > 0, totals, 1.0), 1.0 / n_classes)
    shares = np.maximum(shares, floor)
    return shares / shares.sum(axis=1, keepdims=True)


class SourcePrior(nn.Module):
    """``adjust(logits, sources)``: the logits plus ``weight`` x log p(class | source) for films of known source."""

    def __init__(self, shares: np.ndarray, weight: float):
        super().__init__()
        self.weight = weight
        self.register_buffer("log_prior", torch.log(torch.as_tensor(shares, dtype=torch.float32)))

    @classmethod
    def from_sampling(cls, sample_weights: np.ndarray, labels: np.ndarray, codes: np.ndarray, n_sources: int,
                      n_classes: int, weight: float, floor: float = 0.01) -> "SourcePrior":
        return cls(source_class_shares(np.asarray(sample_weights, dtype=np.float64), np.asarray(labels),
                                       np.asarray(codes), n_sources, n_classes, floor), weight)

    def adjust(self, logits: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:
        known = sources != UNKNOWN_SOURCE
        prior = self.log_prior[sources.clamp(min=0)] * known[:, None].to(logits.dtype)
        return logits + self.weight * prior.to(logits.dtype)
