"""Training-time augmentation of chest X-ray batches, on the batch as a whole (one grid_sample).

Two strengths (``TrainConfig.augmentation``):

- ``light``: rotation up to 7 degrees, shift up to 5%, zoom 0.92-1.08, contrast and brightness within 15%.
- ``strong``: aimed at what tells hospitals apart rather than lungs apart. Wider geometry (rotation up to
  10 degrees, shift up to 8%, zoom 0.85-1.25, which also acts as a random resized crop), a random gamma
  (0.6-1.6, exposure and film curve), contrast and brightness within 25%, loss of resolution for part of the
  batch (down to 35% of the side and back: small published figures against full-size films), Gaussian blur
  or unsharp masking, Gaussian noise, and erased borders and corners (strips of up to 12% of the side and
  corner boxes, where side markers, "PORTABLE" stamps and text sit).

Independently of the strength, ``amplitude_mix`` (``TrainConfig.amplitude_mix``) gives that share of each batch
part of another film's Fourier amplitude spectrum, keeping the film's own phase (AmpMix, Xu et al., "A
Fourier-based Framework for Domain Generalization", CVPR 2021). The phase carries the anatomy and the lesions;
the amplitude carries much of what a hospital's machines and processing leave on every film (sharpness, noise
texture, contrast); mixing it is meant to keep a network from telling sources apart by that texture.
docs/shortcuts.md measures how far it does. ``random_conv`` (``TrainConfig.random_conv``) passes that share of each
batch through a random convolution, a different random kernel of 3x3 to 7x7 pixels per film, mixed with the film
by a random weight (RandConv, Xu et al., "Robust and Generalizable Visual Representation Learning via Random
Convolutions", ICLR 2021): it changes local texture and sharpness while keeping shapes; the kernel's weights are
made to sum to a positive value, so the film is never inverted (an inverted film must stay unfamiliar to the
familiarity check). ``mix_across_sources`` (``TrainConfig.source_mix``, applied by the training step, which knows
each film's class and source) blends that share of each batch with a film of the same class from another source
(LISA's intra-label mixup, Yao et al., "Improving Out-of-Distribution Robustness via Selective Augmentation", ICML
2022): a blend of two hospitals' films keeps its class, so what tells the hospitals apart stops predicting it.
``random_window`` (``TrainConfig.patch_crop``, applied last) trains on a random square window of each film, at the
film's own scale, while the network still reads the whole film at inference (its global average pool takes any
size): the patch-based training of Oh, Park and Ye ("Deep Learning COVID-19 Features on CXR Using Limited Training
Data Sets", IEEE TMI 2020), meant to make the network judge local lung texture rather than the film's outline, size
and corner text; with ``--fit mask`` most windows fall on the lung fields.

Never flips: left and right matter on a chest film. Uses torch's global generator, so --seed and --resume
reproduce it. Input and output: float Bx1xSxS in [0, 1].
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

AUGMENTATION_CHOICES = ("light", "strong")


def _uniform(b: int, lo: float, hi: float, device) -> torch.Tensor:
    return torch.empty(b).uniform_(lo, hi).to(device)


def _affine(x01: torch.Tensor, max_degrees: float, max_shift: float, zoom: tuple[float, float]) -> torch.Tensor:
    b = x01.shape[0]
    angle = _uniform(b, -max_degrees, max_degrees, x01.device) * (math.pi / 180)
    scale = _uniform(b, *zoom, x01.device)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    # Shifts are in grid units, where the image spans [-1, 1]: 5% of the side is 0.1.
    shift = 2 * max_shift
    theta = torch.stack([torch.stack([cos, -sin, _uniform(b, -shift, shift, x01.device)], 1),
                         torch.stack([sin, cos, _uniform(b, -shift, shift, x01.device)], 1)], 1)
    grid = F.affine_grid(theta, list(x01.shape), align_corners=False)
    return F.grid_sample(x01, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _contrast_brightness(x: torch.Tensor, spread: float) -> torch.Tensor:
    b = x.shape[0]
    mean = x.mean((2, 3), keepdim=True)
    x = (x - mean) * _uniform(b, 1 - spread, 1 + spread, x.device).view(b, 1, 1, 1) + mean
    return x * _uniform(b, 1 - spread, 1 + spread, x.device).view(b, 1, 1, 1)


def _some(b: int, p: float, device) -> torch.Tensor:
    """bool B: which images of the batch get an optional step."""
    return (torch.rand(b) < p).to(device)


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = max(1, int(math.ceil(2.5 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-(t ** 2) / (2 * sigma ** 2))
    return k / k.sum()


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    k = _gaussian_kernel(sigma).to(x.device)
    r = len(k) // 2
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))


def _erase_borders(x: torch.Tensor, max_strip: float = 0.12, corner: float = 0.22) -> torch.Tensor:
    """Blank random edge strips (each edge with probability 0.5) and one random corner box (probability 0.5),
    filled with a random grey level per image."""
    b, _, h, w = x.shape
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    strip = (torch.rand(b, 4) * max_strip * torch.tensor([h, h, w, w]) * (torch.rand(b, 4) < 0.5)).long()
    strip = strip.to(x.device)
    mask = ((rows < strip[:, 0].view(b, 1, 1)) | (rows >= h - strip[:, 1].view(b, 1, 1))
            | (cols < strip[:, 2].view(b, 1, 1)) | (cols >= w - strip[:, 3].view(b, 1, 1)))
    ch = (torch.rand(b) * corner * h).long().to(x.device).view(b, 1, 1)
    cw = (torch.rand(b) * corner * w).long().to(x.device).view(b, 1, 1)
    top = (torch.rand(b) < 0.5).to(x.device).view(b, 1, 1)
    left = (torch.rand(b) < 0.5).to(x.device).view(b, 1, 1)
    use_corner = _some(b, 0.5, x.device).view(b, 1, 1)
    in_rows = torch.where(top, rows < ch, rows >= h - ch)
    in_cols = torch.where(left, cols < cw, cols >= w - cw)
    mask = mask | (use_corner & in_rows & in_cols)
    fill = torch.rand(b, device=x.device).view(b, 1, 1, 1).expand_as(x)
    return torch.where(mask[:, None], fill, x)


def _strong(x01: torch.Tensor) -> torch.Tensor:
    b, _, h, w = x01.shape
    device = x01.device
    x = _affine(x01, 10.0, 0.08, (0.85, 1.25)).clamp(0.0, 1.0)
    gamma = torch.exp(_uniform(b, math.log(0.6), math.log(1.6), device)).view(b, 1, 1, 1)
    x = x.clamp_min(1e-6) ** gamma
    x = _contrast_brightness(x, 0.25).clamp(0.0, 1.0)
    # Loss of resolution: one factor per batch, applied to a random half of it.
    factor = float(torch.empty(1).uniform_(0.35, 0.9))
    small = F.interpolate(x, size=(max(8, int(h * factor)), max(8, int(w * factor))), mode="area")
    low_res = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
    x = torch.where(_some(b, 0.5, device).view(b, 1, 1, 1), low_res, x)
    # Blur or sharpen (unsharp mask), one sigma per batch, each on about a quarter of it.
    sigma = float(torch.empty(1).uniform_(0.5, 1.5))
    blurred = _blur(x, sigma)
    pick = torch.rand(b)
    x = torch.where((pick < 0.25).to(device).view(b, 1, 1, 1), blurred, x)
    sharpened = (x + (x - blurred) * float(torch.empty(1).uniform_(0.5, 1.5))).clamp(0.0, 1.0)
    x = torch.where((pick > 0.75).to(device).view(b, 1, 1, 1), sharpened, x)
    x = x + torch.randn_like(x) * _uniform(b, 0.0, 0.04, device).view(b, 1, 1, 1)
    return _erase_borders(x.clamp(0.0, 1.0))


def blend_amplitude(x01: torch.Tensor, donors01: torch.Tensor, lam: torch.Tensor | float) -> torch.Tensor:
    """Bx1xSxS films with amplitude spectrum (1 - lam) A_film + lam A_donor and their own phase, in [0, 1]
    (lam: a number or B values; 1 gives each film its donor's amplitude whole)."""
    spectrum = torch.fft.rfft2(x01)
    lam = torch.as_tensor(lam, dtype=x01.dtype, device=x01.device).reshape(-1, 1, 1, 1)
    mixed = (1 - lam) * spectrum.abs() + lam * torch.fft.rfft2(donors01).abs()
    return torch.fft.irfft2(torch.polar(mixed, spectrum.angle()), s=x01.shape[-2:]).clamp(0.0, 1.0)


def mix_amplitude(x01: torch.Tensor, share: float) -> torch.Tensor:
    """Each image of ``share`` of the batch takes amplitude (1 - lam) A_i + lam A_j, with j another image of the
    batch and lam uniform in [0, 1], and keeps its own phase; the others are returned unchanged."""
    b = x01.shape[0]
    if share <= 0 or b < 2:
        return x01
    partner = (torch.arange(b) + torch.randint(1, b, (1,))) % b  # a shifted order: never the image itself
    out = blend_amplitude(x01, x01[partner.to(x01.device)], _uniform(b, 0.0, 1.0, x01.device))
    return torch.where(_some(b, share, x01.device).view(b, 1, 1, 1), out, x01)


RANDOM_KERNEL_SIZES = (3, 5, 7)  # a 1x1 kernel only rescales a one-channel film, which the restoring undoes


def random_convolution(x01: torch.Tensor, share: float) -> torch.Tensor:
    """Each image of ``share`` of the batch is convolved with its own random kernel (one size for the batch, from
    RANDOM_KERNEL_SIZES; weights normal, scaled by the kernel's size, summing to a positive value), restored to the
    film's own mean and standard deviation and mixed with the film, alpha * film + (1 - alpha) * convolved, alpha
    uniform in [0, 1]; the others are returned unchanged."""
    b, _, h, w = x01.shape
    if share <= 0:
        return x01
    k = RANDOM_KERNEL_SIZES[int(torch.randint(len(RANDOM_KERNEL_SIZES), (1,)))]
    kernels = torch.randn(b, 1, k, k) / k
    kernels = kernels * torch.sign(kernels.sum((1, 2, 3), keepdim=True) + 1e-12)  # never invert the film
    out = F.conv2d(F.pad(x01.reshape(1, b, h, w), [k // 2] * 4, mode="reflect"), kernels.to(x01.device, x01.dtype),
                   groups=b).reshape(b, 1, h, w)
    mean, std = x01.mean((2, 3), keepdim=True), x01.std((2, 3), keepdim=True)
    out = (out - out.mean((2, 3), keepdim=True)) / (out.std((2, 3), keepdim=True) + 1e-6) * std + mean
    alpha = _uniform(b, 0.0, 1.0, x01.device).view(b, 1, 1, 1)
    mixed = (alpha * x01 + (1 - alpha) * out).clamp(0.0, 1.0)
    return torch.where(_some(b, share, x01.device).view(b, 1, 1, 1), mixed, x01)


def cross_source_partners(sources: torch.Tensor, labels: torch.Tensor | None = None
                          ) -> tuple[torch.Tensor, torch.Tensor]:
    """(partner index per item, whether it has one): a uniformly drawn item of the batch from another known source
    (codes >= 0), of the same label when ``labels`` are given. An item without one is its own partner."""
    b = len(sources)
    allowed = (sources[:, None] != sources[None, :]) & (sources[:, None] >= 0) & (sources[None, :] >= 0)
    if labels is not None:
        allowed &= labels[:, None] == labels[None, :]
    has_partner = allowed.any(1)
    keys = torch.rand(b, b).to(sources.device).masked_fill(~allowed, -1.0)  # the largest allowed key wins
    return torch.where(has_partner, keys.argmax(1), torch.arange(b, device=sources.device)), has_partner


def mix_across_sources(x01: torch.Tensor, labels: torch.Tensor, sources: torch.Tensor, share: float) -> torch.Tensor:
    """Each image of ``share`` of the batch becomes lam * itself + (1 - lam) * a film of the same class from another
    known source (lam from Beta(2, 2)); its label is unchanged (LISA's intra-label selective mixup). An image with
    no such partner in the batch, or of unknown source (negative code), is returned unchanged."""
    b = x01.shape[0]
    if share <= 0 or b < 2:
        return x01
    partner, has_partner = cross_source_partners(sources.to(x01.device), labels.to(x01.device))
    lam = torch.distributions.Beta(2.0, 2.0).sample((b,)).to(x01.device, x01.dtype).view(b, 1, 1, 1)
    mixed = lam * x01 + (1 - lam) * x01[partner]
    chosen = _some(b, share, x01.device) & has_partner
    return torch.where(chosen.view(b, 1, 1, 1), mixed, x01)


def random_window(x01: torch.Tensor, share: float) -> torch.Tensor:
    """Bx1xSxS -> Bx1xPxP, P = round(share * S) (at least 8): each image's own random window, pixels unchanged
    (no resizing, so lesions keep their size in pixels); ``share`` 0 returns the batch unchanged."""
    if share <= 0:
        return x01
    b, _, h, w = x01.shape
    side = max(8, min(h, w, round(share * min(h, w))))
    tops = torch.randint(0, h - side + 1, (b,)).tolist()
    lefts = torch.randint(0, w - side + 1, (b,)).tolist()
    return torch.stack([x01[i, :, t:t + side, l:l + side] for i, (t, l) in enumerate(zip(tops, lefts))])


def augment_batch(x01: torch.Tensor, strength: str = "light", amplitude_mix: float = 0.0,
                  random_conv: float = 0.0) -> torch.Tensor:
    """float Bx1xSxS in [0, 1] -> the same shape in [0, 1], a different draw per image (see the module doc)."""
    x01 = random_convolution(mix_amplitude(x01, amplitude_mix), random_conv)
    if strength == "strong":
        return _strong(x01)
    if strength != "light":
        raise ValueError(f"unknown augmentation {strength!r}; choose one of: {', '.join(AUGMENTATION_CHOICES)}")
    out = _affine(x01, 7.0, 0.05, (0.92, 1.08))
    return _contrast_brightness(out, 0.15).clamp_(0.0, 1.0)
