"""Deep Image Prior (Ulyanov, Vedaldi, Lempitsky 2018): denoise one image by fitting a random network.

A lean variant of the paper's skip network (4 levels, 32 channels instead of 5 x 128) maps
fixed random input noise to the noisy image. The network fits image structure before noise,
so the output is cleanest part-way; the paper's tricks are kept (small fresh noise added to
the input each step, an exponential moving average of the output, sizes padded to a
multiple of 32) and the stopping point is found without the clean image: the variance of
the outputs over a sliding window falls while the net learns structure and rises once it
starts to fit noise (ES-WMV, Wang et al. 2021); we stop when it has not reached a new
minimum for ``es_patience`` steps and return the estimate from that minimum.
"""

from __future__ import annotations

import numbers
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .base import Denoiser, check_image
from .quality import psnr

PAD_MULTIPLE = 32
STOP_REASONS = ("early stop", "max iterations", "time budget", "cancelled")


def _conv(cin: int, cout: int, k: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k, stride, k // 2, padding_mode="reflect"), nn.BatchNorm2d(cout),
            nn.LeakyReLU(0.2, inplace=True)]


class SkipNet(nn.Module):
    """The DIP skip encoder-decoder: float 1xCxHxW noise -> float 1x1xHxW in [0, 1] (H, W multiples of 2**levels)."""

    def __init__(self, in_channels: int = 32, channels: int = 32, skip: int = 4, levels: int = 4):
        super().__init__()
        self.down, self.skip, self.up = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        cin = in_channels
        for _ in range(levels):
            self.down.append(nn.Sequential(*_conv(cin, channels, 3, 2), *_conv(channels, channels, 3)))
            self.skip.append(nn.Sequential(*_conv(cin, skip, 1)))
            self.up.append(nn.Sequential(nn.BatchNorm2d(channels + skip), *_conv(channels + skip, channels, 3),
                                         *_conv(channels, channels, 1)))
            cin = channels
        self.out = nn.Conv2d(channels, 1, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        skips, h = [], z
        for down, skip in zip(self.down, self.skip):
            skips.append(skip(h))
            h = down(h)
        for up, s in zip(reversed(self.up), reversed(skips)):
            h = F.interpolate(h, size=s.shape[-2:], mode="bilinear", align_corners=False)
            h = up(torch.cat([h, s], dim=1))
        return torch.sigmoid(self.out(h))


@dataclass
class DIPResult:
    """image: float32 HxW in [0, 1]; stopped_reason: one of STOP_REASONS; history: one dict per step
    (iteration, loss, seconds; plus psnr every ``preview_every`` steps when a clean reference was given)."""

    image: np.ndarray
    iterations: int
    stopped_reason: str
    history: list[dict] = field(default_factory=list)
    best_iteration: int = 0


class WindowedVariance:
    """Mean per-pixel variance of the last ``window`` arrays, updated in O(pixels) per step."""

    def __init__(self, window: int):
        self.window, self.items = window, deque()
        self.sum = self.sumsq = None

    def push(self, x: np.ndarray) -> float | None:
        x = x.astype(np.float64)
        if self.sum is None:
            self.sum, self.sumsq = np.zeros_like(x), np.zeros_like(x)
        self.items.append(x)
        self.sum += x
        self.sumsq += x * x
        if len(self.items) > self.window:
            old = self.items.popleft()
            self.sum -= old
            self.sumsq -= old * old
        if len(self.items) < self.window:
            return None
        mean = self.sum / self.window
        return float(np.maximum(self.sumsq / self.window - mean * mean, 0).mean())


#: The most a run of Deep Image Prior may be asked for: steps, and seconds (a day).
MAX_ITERS, MAX_BUDGET_S = 100_000, 86_400.0


def run_dip(image: np.ndarray, max_iters: int = 1200, time_budget_s: float = 110.0, seed: int = 0,
            on_progress: Callable[[int, float, np.ndarray | None], bool | None] | None = None,
            preview_every: int = 25, *, channels: int = 32, levels: int = 4, lr: float = 0.01,
            input_noise_std: float = 1.0 / 30.0, ema: float = 0.99, es_window: int = 40, es_patience: int = 150,
            early_stop: bool = True, clean: np.ndarray | None = None) -> DIPResult:
    """Denoise float32 HxW in [0, 1] by Deep Image Prior; returns a DIPResult (image float32 HxW in [0, 1]).

    Stops at the first of: no new minimum of the windowed output variance for ``es_patience``
    steps ("early stop"), ``max_iters``, ``time_budget_s`` seconds, or ``on_progress`` returning
    False ("cancelled"). ``on_progress(iteration, loss, preview)`` is called every step; preview
    is the current estimate (float32 HxW) every ``preview_every`` steps, else None.
    ``clean`` is only for reporting PSNR in the history (benchmarks); it never affects stopping.
    """
    if isinstance(max_iters, bool) or not isinstance(max_iters, numbers.Integral) or not 1 <= max_iters <= MAX_ITERS:
        raise ConfigError(f"DIP iterations must be a whole number from 1 to {MAX_ITERS}, not {max_iters!r}")
    if not 0 <= time_budget_s <= MAX_BUDGET_S:  # also refuses NaN; 0 stops after the first step
        raise ConfigError(f"DIP time budget must be from 0 to {MAX_BUDGET_S:g} seconds, not {time_budget_s!r}")
    noisy = check_image(image)
    h, w = noisy.shape
    started = time.perf_counter()
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    ph, pw = -h % PAD_MULTIPLE, -w % PAD_MULTIPLE
    target = F.pad(torch.from_numpy(noisy)[None, None], (0, pw, 0, ph), mode="replicate")
    net = SkipNet(channels=channels, levels=levels)
    z = torch.rand(1, 32, h + ph, w + pw, generator=gen) * 0.1
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    variance = WindowedVariance(es_window)
    ema_sum = smooth = best = None
    best_var, best_it = float("inf"), 0
    history, reason, it = [], "max iterations", 0
    for it in range(1, max_iters + 1):
        z_in = z + input_noise_std * torch.randn(z.shape, generator=gen)
        out = net(z_in)
        loss = F.mse_loss(out, target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        current = out.detach()[0, 0, :h, :w].numpy()
        ema_sum = (1 - ema) * current if ema_sum is None else ema * ema_sum + (1 - ema) * current
        # Bias-corrected (as in Adam) so early estimates are not dragged towards the first output.
        smooth = ema_sum / (1 - ema ** it)
        var = variance.push(current)
        if var is not None and var < best_var:
            best_var, best, best_it = var, smooth.copy(), it
        row = {"iteration": it, "loss": float(loss.detach()), "seconds": time.perf_counter() - started}
        preview = None
        if it % preview_every == 0:
            preview = np.clip(smooth, 0, 1).astype(np.float32)
            if clean is not None:
                row["psnr"] = psnr(clean, preview)
        history.append(row)
        if on_progress is not None and on_progress(it, row["loss"], preview) is False:
            reason = "cancelled"
            break
        if early_stop and best is not None and it - best_it >= es_patience:
            reason = "early stop"
            break
        if row["seconds"] >= time_budget_s:
            reason = "time budget"
            break
    result = best if best is not None else smooth
    if result is None:  # cancelled before the first step finished
        result = noisy
    return DIPResult(np.clip(result, 0, 1).astype(np.float32), it, reason, history, best_it)


class DIPDenoiser(Denoiser):
    """Deep Image Prior with fixed settings (keyword arguments of :func:`run_dip`)."""

    name = "dip"

    def __init__(self, **params):
        self.params = params

    def denoise(self, image: np.ndarray) -> np.ndarray:
        return run_dip(image, **self.params).image
