"""The denoising autoencoder: a small residual U-Net that predicts the noise.

Blind: one model for Gaussian, Poisson and other noise over a range of levels. Any input
size works: the image is padded (edge replicate) to a multiple of the network's stride and
cropped back; very large images go through in overlapping tiles to bound memory.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoint import load_checkpoint_dict
from ..errors import CheckpointError
from .base import Denoiser, check_image

DAE_FORMAT = "covid_core.dae/1"
DEFAULT_CHANNELS = (32, 48, 64)
DEFAULT_UNSHUFFLE = 2
DEFAULT_DAE_PATH = Path(__file__).resolve().parents[2] / "weights" / "dae.pt"


def _block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.ReLU(inplace=True),
                         nn.Conv2d(cout, cout, 3, 1, 1), nn.ReLU(inplace=True))


class DAENet(nn.Module):
    """Residual U-Net: float Bx1xHxW in [0, 1] -> denoised float Bx1xHxW (H, W multiples of ``multiple``).

    The network predicts the noise and subtracts it ("residual learning", as DnCNN): the
    identity is free, so a small net spends its capacity on the noise alone. As in FFDNet,
    the image is first folded into ``unshuffle``² channels at 1/``unshuffle`` resolution,
    which cuts the cost of the full-resolution layers (the bulk of the compute) by that square.
    """

    def __init__(self, channels: tuple[int, ...] = DEFAULT_CHANNELS, unshuffle: int = DEFAULT_UNSHUFFLE):
        super().__init__()
        self.channels = tuple(int(c) for c in channels)
        self.unshuffle = int(unshuffle)
        c, k = self.channels, self.unshuffle ** 2
        self.enc = nn.ModuleList([_block(k, c[0])] + [_block(c[i - 1], c[i], stride=2) for i in range(1, len(c))])
        self.up = nn.ModuleList([nn.ConvTranspose2d(c[i], c[i - 1], 2, stride=2) for i in range(len(c) - 1, 0, -1)])
        self.dec = nn.ModuleList([_block(2 * c[i - 1], c[i - 1]) for i in range(len(c) - 1, 0, -1)])
        self.out = nn.Conv2d(c[0], k, 3, 1, 1)

    @property
    def multiple(self) -> int:
        return self.unshuffle * 2 ** (len(self.channels) - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.pixel_unshuffle(x - 0.5, self.unshuffle)
        skips = []
        for enc in self.enc:
            h = enc(h)
            skips.append(h)
        for up, dec, skip in zip(self.up, self.dec, reversed(skips[:-1])):
            h = dec(torch.cat([up(h), skip], dim=1))
        return x - F.pixel_shuffle(self.out(h), self.unshuffle)


def dae_checkpoint(model: DAENet, **metadata) -> dict:
    """Checkpoint dict of a DAE: format, architecture, CPU state dict, plus plain-data ``metadata``."""
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    ckpt = {"format": DAE_FORMAT, "arch": {"channels": list(model.channels), "unshuffle": model.unshuffle}, "state_dict": state}
    ckpt.update(metadata)
    return ckpt


class DAEDenoiser(Denoiser):
    """A loaded DAE (eval mode, CPU by default). ``metadata`` holds the model card of the checkpoint."""

    name = "dae"

    def __init__(self, model: DAENet, metadata: dict | None = None, tile: int = 1024, overlap: int = 32):
        self.model = model.eval()
        self.metadata = metadata or {}
        self.tile, self.overlap = tile, overlap

    @torch.no_grad()
    def _run(self, image: np.ndarray) -> np.ndarray:
        h, w = image.shape
        m = self.model.multiple
        x = torch.from_numpy(np.ascontiguousarray(image))[None, None]
        x = F.pad(x, (0, -w % m, 0, -h % m), mode="replicate")
        return self.model(x)[0, 0, :h, :w].clamp_(0, 1).numpy()

    def denoise(self, image: np.ndarray) -> np.ndarray:
        """float32 HxW in [0, 1] -> float32 HxW in [0, 1]; any size."""
        image = check_image(image)
        h, w = image.shape
        if h <= self.tile and w <= self.tile:
            return self._run(image)
        # Overlapping tiles keep memory bounded on large DICOMs; each tile's border is dropped.
        out = np.empty_like(image)
        step, o = self.tile - 2 * self.overlap, self.overlap
        for y in range(0, h, step):
            for x in range(0, w, step):
                y0, x0 = max(y - o, 0), max(x - o, 0)
                y1, x1 = min(y + step + o, h), min(x + step + o, w)
                part = self._run(image[y0:y1, x0:x1])
                ye, xe = min(y + step, h), min(x + step, w)
                out[y:ye, x:xe] = part[y - y0:ye - y0, x - x0:xe - x0]
        return out


def load_dae(path: str | Path | None = None, device: str = "cpu") -> DAEDenoiser:
    """Load a DAE checkpoint (default weights/dae.pt); raises CheckpointError if missing or foreign."""
    path = Path(path) if path else DEFAULT_DAE_PATH
    if not path.is_file():
        raise CheckpointError(f"denoising model {path} does not exist; train one with "
                              "`python train.py --task denoise --data DATA_DIR --out weights/dae.pt` "
                              "or pass --model PATH")
    ckpt = load_checkpoint_dict(path)
    if ckpt.get("format") != DAE_FORMAT:
        raise CheckpointError(f"{path.name} is not a denoising autoencoder checkpoint "
                              f"(format {ckpt.get('format')!r}, expected {DAE_FORMAT!r})")
    try:
        model = DAENet(tuple(ckpt["arch"]["channels"]), int(ckpt["arch"]["unshuffle"]))
        model.load_state_dict(ckpt["state_dict"])
    except (KeyError, TypeError, RuntimeError) as exc:
        raise CheckpointError(f"{path.name} does not match the DAE architecture: {str(exc).splitlines()[0]}") from exc
    model.to(device)
    return DAEDenoiser(model, {k: v for k, v in ckpt.items() if k != "state_dict"})
