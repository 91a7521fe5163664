"""Train a classifier on a chest X-ray data set (CoronaHack, class folders or COVIDx layout).

Writes runs/<run-id>/{config.json, metrics.jsonl, status.json, best.pt, last.pt}.
Multi-process: torchrun --nproc_per_node N train.py ... (DistributedDataParallel).
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..flags import add_flags
    from ..training import RUN_FLAGS, TRAIN_FLAGS, TrainConfig

    p.add_argument("--task", choices=("classify", "denoise"), default="classify",
                   help="classify: a classifier; denoise: the denoising autoencoder (its own defaults)")
    add_flags(p, RUN_FLAGS + TRAIN_FLAGS, TrainConfig())
    p.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue an interrupted run from runs/<run-id>")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    from ..datasets import check_training_data
    from ..errors import ConfigError
    from ..flags import config_values
    from ..runs import run_from_command_line
    from ..training import RUN_FLAGS, TRAIN_FLAGS, TrainConfig, run

    if args.task == "denoise":
        from . import train_dae

        return train_dae.main(args)
    if not args.data and not args.resume:
        raise ConfigError("--data DIR is required (or --resume RUN_DIR)")
    config = TrainConfig(**config_values(RUN_FLAGS + TRAIN_FLAGS, args, TrainConfig()))
    return run_from_command_line(run, config, args, lambda row: (
        f"epoch {row['epoch']}: train loss {row['train_loss']:.4f}, val accuracy {row['val_accuracy']:.3f}, "
        f"val macro AUC {row['val_macro_auc'] if row['val_macro_auc'] is None else round(row['val_macro_auc'], 4)}, "
        f"{row['images_per_s']:.1f} img/s{' (best)' if row['best'] else ''}"),
        lambda: check_training_data(config.data, config.layout, config.target, config.holdout_source))
