"""Contrast across sources: films of one class from different sources drawn together in feature space.

A supervised contrastive loss (Khosla et al., NeurIPS 2020) on the penultimate features, with the positives
chosen as in Correct-n-Contrast (Zhang et al., ICML 2022): a film's positives are the films of its class from
another source in the batch, and every other film of the batch, its own source's films of the same class
included, is in the denominator. Features that name the source pull a film towards its own source's films and
raise the loss; features that carry the class across sources lower it. Films of unknown source, and films with
no positive in the batch, are not anchors.
"""

from __future__ import annotations

import torch
from torch import nn

from .adversary import UNKNOWN_SOURCE


def source_contrast_loss(features: torch.Tensor, labels: torch.Tensor, sources: torch.Tensor,
                         temperature: float = 0.1) -> torch.Tensor:
    """The mean over anchors of -mean log p(positive | anchor), p a softmax over the batch's other films of the
    cosine similarities / ``temperature``; 0 (with a gradient) when no film has a positive."""
    z = nn.functional.normalize(features.float(), dim=1)
    similarity = z @ z.T / temperature
    n = len(z)
    self_mask = torch.eye(n, dtype=torch.bool, device=z.device)
    known = sources != UNKNOWN_SOURCE
    positive = ((labels[:, None] == labels[None, :]) & (sources[:, None] != sources[None, :])
                & known[:, None] & known[None, :] & ~self_mask)
    anchors = positive.any(dim=1)
    if not anchors.any():
        return features.sum() * 0.0
    log_p = similarity - torch.logsumexp(similarity.masked_fill(self_mask, float("-inf")), dim=1, keepdim=True)
    per_anchor = (log_p * positive).sum(dim=1) / positive.sum(dim=1).clamp(min=1)
    return -per_anchor[anchors].mean()
