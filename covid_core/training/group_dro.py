"""Group distributionally robust training (Sagawa, Koh, Hashimoto and Liang, "Distributionally Robust Neural
Networks", ICLR 2020), with a group for each (source, class) pair.

Plain training lowers the mean loss, which a shortcut serves well: the groups where the source names the class
(Kermany's children, the COVID-19 collections' COVID-19 films) are easy, and the groups where it does not
(NIH's adults, whose two answers share one hospital; the COVID-19 collections' few other pneumonias and normals)
are hard. Group DRO lowers the loss of the worst group instead: a weight per group grows exponentially with that
group's loss (online mirror ascent, step ``step``), and the objective is the weighted sum of the group losses.
Films of unknown source form one group per class of their own. With several training processes each keeps its
own weights, from its own batches.
"""

from __future__ import annotations

import torch
from torch import nn

from .adversary import UNKNOWN_SOURCE


class GroupDRO(nn.Module):
    """``loss(logits, labels, sources)``: the (source, class) groups' mean cross-entropies weighted by the
    group weights, which are updated first with this batch's group losses. The weights are a buffer, so
    a resumed run continues with them."""

    def __init__(self, n_sources: int, n_classes: int, step: float, label_smoothing: float = 0.0):
        super().__init__()
        self.n_sources, self.n_classes = n_sources, n_classes
        self.step, self.label_smoothing = step, label_smoothing
        n_groups = (n_sources + 1) * n_classes  # the last source row holds the films of unknown source
        self.register_buffer("weights", torch.full((n_groups,), 1.0 / n_groups))

    def groups(self, labels: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:
        known = torch.where(sources == UNKNOWN_SOURCE, torch.full_like(sources, self.n_sources), sources)
        return known * self.n_classes + labels

    def loss(self, logits: torch.Tensor, labels: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:
        per_film = nn.functional.cross_entropy(logits.float(), labels, reduction="none",
                                               label_smoothing=self.label_smoothing)
        groups = self.groups(labels, sources)
        n = len(self.weights)
        totals = torch.zeros(n, device=per_film.device).index_add(0, groups, per_film)
        counts = torch.zeros(n, device=per_film.device).index_add(0, groups, torch.ones_like(per_film))
        group_loss = totals / counts.clamp(min=1)
        with torch.no_grad():  # a group absent from the batch has loss 0 here: its weight is not raised
            weights = self.weights * torch.exp(self.step * group_loss.detach())
            self.weights.copy_(weights / weights.sum())
        return (self.weights * group_loss).sum()
