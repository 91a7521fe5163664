"""Train the denoising autoencoder (blind Gaussian + Poisson noise, random crops of TRAIN images).

Writes runs/<run-id>/{config.json, metrics.jsonl, status.json, best.pt, last.pt}; --out also
copies the best checkpoint (e.g. to weights/dae.pt). Also reachable as
`python train.py --task denoise ...` (which uses the classifier's defaults for shared options).
"""

from __future__ import annotations

import argparse
import shlex
import sys

from ..datasets import LAYOUTS


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..denoise.training import DAETrainConfig

    d = DAETrainConfig()
    p.add_argument("--data", help="data folder (required unless --resume); only its TRAIN images are used")
    p.add_argument("--layout", choices=LAYOUTS, default=d.layout, help="data set layout")
    p.add_argument("--epochs", type=int, default=d.epochs, help="epochs of --steps-per-epoch steps each")
    p.add_argument("--steps-per-epoch", type=int, default=d.steps_per_epoch, help="optimiser steps per epoch")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="crops per step")
    p.add_argument("--crop", type=int, default=d.crop, help="side of the random training crops, pixels")
    p.add_argument("--lr", type=float, default=d.lr, help="peak learning rate of Adam (one-cycle cosine schedule)")
    p.add_argument("--image-size", type=int, default=d.image_size, help="images are cached at this side first")
    p.add_argument("--sigma-range", type=float, nargs=2, default=(d.sigma_min, d.sigma_max), metavar=("MIN", "MAX"),
                   help="Gaussian sigma range on the 0-255 scale")
    p.add_argument("--photons-range", type=float, nargs=2, default=(d.photons_min, d.photons_max),
                   metavar=("MIN", "MAX"), help="Poisson photon counts at full intensity (log-uniform)")
    p.add_argument("--poisson-share", type=float, default=d.poisson_share, help="share of crops with Poisson noise")
    p.add_argument("--channels", type=int, nargs="+", default=list(d.channels), help="U-Net channels per level")
    p.add_argument("--seed", type=int, default=d.seed, help="random seed (split, init, crops, noise)")
    p.add_argument("--limit", type=int, default=None, help="use at most N images per split (quick experiments)")
    p.add_argument("--runs-dir", default=None, help="where run folders go (default: $COVID_CORE_RUNS or ./runs)")
    p.add_argument("--run-id", default=None, help="name of the run folder (default: date-dae-random)")
    p.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue an interrupted run")
    p.add_argument("--out", default=None, help="also copy the best checkpoint here (e.g. weights/dae.pt)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _command_line() -> str:
    """How this run was started, for the model card (``python -m covid_core ...`` or ``python train.py ...``)."""
    argv = list(sys.argv)
    head = ["python", "-m", "covid_core"] if argv and argv[0].endswith("__main__.py") else ["python", argv[0] if argv else ""]
    return " ".join(shlex.quote(a) for a in [*head, *argv[1:]])


def main(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..denoise.training import DAETrainConfig, run_dae
    from ..runs import stop_on_sigterm

    if not args.data and not args.resume:
        raise ConfigError("--data DIR is required (or --resume RUN_DIR)")
    d = DAETrainConfig()
    sigma = getattr(args, "sigma_range", (d.sigma_min, d.sigma_max))
    photons = getattr(args, "photons_range", (d.photons_min, d.photons_max))
    config = DAETrainConfig(
        data=args.data or "", layout=args.layout, epochs=d.epochs if args.epochs is None else args.epochs,
        steps_per_epoch=getattr(args, "steps_per_epoch", d.steps_per_epoch),
        batch_size=d.batch_size if args.batch_size is None else args.batch_size,
        crop=getattr(args, "crop", d.crop), lr=d.lr if args.lr is None else args.lr,
        image_size=args.image_size or d.image_size,
        sigma_min=sigma[0], sigma_max=sigma[1], photons_min=photons[0], photons_max=photons[1],
        poisson_share=getattr(args, "poisson_share", d.poisson_share),
        channels=tuple(getattr(args, "channels", d.channels)), seed=args.seed, limit=args.limit,
        runs_dir=args.runs_dir or "", run_id=args.run_id, out=args.out,
        command=_command_line())
    if not args.resume:
        config.validate()

    def report(row):
        print(f"epoch {row['epoch']}: train loss {row['train_loss']:.5f}, val PSNR "
              f"gaussian:25 {row['val_psnr_gaussian:25']:.2f} dB, poisson:30 {row['val_psnr_poisson:30']:.2f} dB, "
              f"{row['images_per_s']:.0f} crops/s{' (best)' if row['best'] else ''}", flush=True)

    best = run_dae(config, on_epoch=report, should_stop=stop_on_sigterm(), progress=not args.quiet, resume=args.resume)
    print(f"best checkpoint: {best}")
    return 0
