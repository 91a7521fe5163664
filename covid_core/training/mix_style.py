"""MixStyle across sources: a film's early feature maps take part of the style of a film from another hospital.

Zhou, Yang, Qiao and Xiang ("Domain Generalization with MixStyle", ICLR 2021) read a network's per-channel means and
standard deviations of its early feature maps as the image's style: what a scanner, its processing and a
hospital's habits leave, while the spatial layout carries the content. During training, each chosen film's maps
are standardised by their own statistics and given a mix of its own and a partner film's, lam ~ Beta(0.1, 0.1):
((x - mu) / sigma) * (lam sigma + (1 - lam) sigma') + lam mu + (1 - lam) mu'. The partner is drawn from another
source in provenance.csv (the paper's cross-domain variant), so the style a hospital gives its films stops
naming the class. The statistics are detached, as in the paper. Off in evaluation: the model reads films as
they are.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from ..augment import cross_source_partners


class MixStyle:
    """Forward hooks on ``layers`` (the model's early stages) that mix styles across sources in training mode.

    ``share`` of the batch's films (those with a partner from another known source) are mixed at each layer;
    the batch's source codes are given for each step with :meth:`batch`.
    """

    def __init__(self, layers: list[nn.Module], share: float, alpha: float = 0.1, eps: float = 1e-6):
        self.share, self.eps = share, eps
        self.beta = torch.distributions.Beta(alpha, alpha)
        self._sources: torch.Tensor | None = None
        self._handles = [layer.register_forward_hook(self._hook) for layer in layers]

    @contextlib.contextmanager
    def batch(self, sources: torch.Tensor):
        """Mix the forward passes inside the block with these films' sources (one code per film)."""
        self._sources = sources
        try:
            yield
        finally:
            self._sources = None

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()

    def _hook(self, module: nn.Module, inputs, output: torch.Tensor):
        if not module.training or self._sources is None or self.share <= 0:
            return None  # the output is left unchanged
        return self.mix(output, self._sources)

    def mix(self, x: torch.Tensor, sources: torch.Tensor) -> torch.Tensor:
        """BxCxHxW -> the same shape, ``share`` of the films with partners from another source given mixed styles."""
        b = x.shape[0]
        partner, has_partner = cross_source_partners(sources.to(x.device))
        chosen = (torch.rand(b).to(x.device) < self.share) & has_partner
        if not chosen.any():
            return x
        mu = x.mean(dim=(2, 3), keepdim=True).detach()
        sigma = (x.var(dim=(2, 3), keepdim=True) + self.eps).sqrt().detach()
        lam = self.beta.sample((b, 1, 1, 1)).to(x.device, x.dtype)
        mixed = (x - mu) / sigma * (lam * sigma + (1 - lam) * sigma[partner]) + lam * mu + (1 - lam) * mu[partner]
        return torch.where(chosen.view(b, 1, 1, 1), mixed, x)
