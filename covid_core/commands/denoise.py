"""Denoise one chest X-ray image (PNG, JPEG, BMP, TIFF, DICOM) and write the result as PNG.

Methods: dae (the shipped denoising autoencoder, weights/dae.pt), dip (Deep Image Prior,
per-image optimisation, about a minute or two), nlm, gaussian, median, bm3d (classical: their strength follows the
noise estimated in the film, covid_core.denoise.classical.matched_settings).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..outputs import output_file


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..denoise import METHODS

    p.add_argument("--method", choices=METHODS, default="dae", help="denoising method")
    p.add_argument("--model", default=None, help="DAE checkpoint for --method dae (default: weights/dae.pt)")
    p.add_argument("--dip-max-iters", type=int, default=1200, help="DIP: maximum optimisation steps")
    p.add_argument("--dip-time-budget", type=float, default=110.0, help="DIP: time budget in seconds")
    p.add_argument("input", metavar="IN", help="image file to denoise")
    p.add_argument("output", metavar="OUT", help="PNG file to write")


def main(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np

    from ..decode import decode_image
    from ..denoise import CLASSICAL_DEFAULTS, denoise, matched_settings
    from ..errors import ConfigError, InvalidImageError

    source = Path(args.input)
    if not source.is_file():
        raise InvalidImageError(f"input file {source} does not exist")
    out = output_file(args.output, ".png", "output")  # the result is written as PNG
    image = decode_image(source).pixels
    params, how = {}, ""
    if args.method == "dip":
        params = {"max_iters": args.dip_max_iters, "time_budget_s": args.dip_time_budget}
    elif args.method in CLASSICAL_DEFAULTS:  # the settings for the film's own noise, estimated once and told
        params, sigma = matched_settings(args.method, image)
        how = f", {', '.join(f'{k} {v:g}' for k, v in params.items())} for noise sigma {sigma:.1f} (0-255) " \
              "estimated in the film"
    result = denoise(image, args.method, model_path=args.model, **params)
    png = np.clip(result * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if not cv2.imwrite(str(out), png):
        raise ConfigError(f"could not write {out}; check the folder is writable")
    print(f"wrote {out} ({png.shape[1]}x{png.shape[0]}, method {args.method}{how})", file=sys.stderr)
    return 0
