"""Train the denoising autoencoder (blind Gaussian + Poisson noise, random crops of TRAIN images).

Writes runs/<run-id>/{config.json, metrics.jsonl, status.json, best.pt, last.pt}; --out also
copies the best checkpoint (e.g. to weights/dae.pt). Also reachable as
`python train.py --task denoise ...` (which uses the classifier's defaults for shared options).
"""

from __future__ import annotations

import argparse
import shlex
import sys



def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..denoise.training import DAE_FLAGS, DAE_RUN_FLAGS, DAETrainConfig
    from ..flags import add_flags

    add_flags(p, DAE_RUN_FLAGS + DAE_FLAGS, DAETrainConfig())
    p.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue an interrupted run")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _command_line() -> str:
    """How this run was started, for the model card (``python -m covid_core ...`` or ``python train.py ...``)."""
    argv = list(sys.argv)
    head = ["python", "-m", "covid_core"] if argv and argv[0].endswith("__main__.py") else ["python", argv[0] if argv else ""]
    return " ".join(shlex.quote(a) for a in [*head, *argv[1:]])


def main(args: argparse.Namespace) -> int:
    from ..datasets import check_training_data
    from ..errors import ConfigError
    from ..denoise.training import DAE_FLAGS, DAE_RUN_FLAGS, DAETrainConfig, run_dae
    from ..flags import config_values
    from ..runs import run_from_command_line

    if not args.data and not args.resume:
        raise ConfigError("--data DIR is required (or --resume RUN_DIR)")
    # Through train.py --task denoise the options shared with the classifier come unset (None) and the
    # denoiser-only ones are absent: both fall back to DAETrainConfig's own values.
    config = DAETrainConfig(**config_values(DAE_RUN_FLAGS + DAE_FLAGS, args, DAETrainConfig()), command=_command_line())
    return run_from_command_line(run_dae, config, args, lambda row: (
        f"epoch {row['epoch']}: train loss {row['train_loss']:.5f}, val PSNR gaussian:25 "
        f"{row['val_psnr_gaussian:25']:.2f} dB, poisson:30 {row['val_psnr_poisson:30']:.2f} dB, "
        f"{row['images_per_s']:.0f} crops/s{' (best)' if row['best'] else ''}"),
        lambda: check_training_data(config.data, config.layout))
