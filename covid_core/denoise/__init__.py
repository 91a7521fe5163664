"""Denoising: noise models, a denoising autoencoder, Deep Image Prior, classical filters, metrics.

One interface (:class:`~covid_core.denoise.base.Denoiser`), one file per method.
:func:`denoise` is the single entry point the CLI, the benchmark and the app call.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import ConfigError
from .base import Denoiser, check_image
from .classical import DEFAULTS as CLASSICAL_DEFAULTS, ClassicalDenoiser, estimate_noise_sigma, matched_settings
from .dae import DEFAULT_DAE_PATH, DAEDenoiser, load_dae
from .dip import DIPDenoiser, DIPResult, run_dip
from .noise import NOISE_KINDS, add_noise
from .quality import psnr, ssim

METHODS = ("dae", "dip", "nlm", "gaussian", "median", "bm3d")

__all__ = ["METHODS", "NOISE_KINDS", "Denoiser", "DAEDenoiser", "DIPResult", "add_noise", "denoise",
           "estimate_noise_sigma", "get_denoiser", "load_dae", "matched_settings", "psnr", "run_dip", "ssim",
           "DEFAULT_DAE_PATH", "CLASSICAL_DEFAULTS"]


def get_denoiser(method: str, model_path: str | Path | None = None, **params) -> Denoiser:
    """The Denoiser for ``method`` (one of METHODS); ``params`` are the method's settings."""
    if method not in METHODS:
        raise ConfigError(f"unknown denoising method {method!r}; choose one of: {', '.join(METHODS)}")
    if method == "dae":
        if params:
            raise ConfigError(f"the dae method takes no parameters, got: {', '.join(sorted(params))}")
        return load_dae(model_path)
    if method == "dip":
        return DIPDenoiser(**params)
    return ClassicalDenoiser(method, **params)


def denoise(image: np.ndarray, method: str, model_path: str | Path | None = None, **params) -> np.ndarray:
    """Denoise float32 HxW in [0, 1] with ``method``; returns float32 HxW in [0, 1], same shape.

    For "dae" the default model is weights/dae.pt (CheckpointError if missing); for "dip"
    ``params`` go to :func:`run_dip`; a classical method without ``params`` takes the settings matched to the
    image's own noise (:func:`matched_settings`), with ``params`` those (the rest from ``CLASSICAL_DEFAULTS``).
    """
    image = check_image(image)
    return get_denoiser(method, model_path, **params).denoise(image)
