"""Train a classifier on a chest X-ray data set (CoronaHack, class folders or COVIDx layout).

Writes runs/<run-id>/{config.json, metrics.jsonl, status.json, best.pt, last.pt}.
Multi-process: torchrun --nproc_per_node N train.py ... (DistributedDataParallel).
"""

from __future__ import annotations

import argparse

from ..augment import AUGMENTATION_CHOICES
from ..balance import BALANCE_CHOICES
from ..datasets import LAYOUTS
from ..models import list_models
from ..preprocess import EQUALIZE_CHOICES, FIT_CHOICES
from ..targets import TARGETS


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..training import TrainConfig

    d = TrainConfig()
    p.add_argument("--task", choices=("classify", "denoise"), default="classify",
                   help="classify: a classifier; denoise: the denoising autoencoder")
    p.add_argument("--data", help="data folder (required unless --resume)")
    p.add_argument("--layout", choices=LAYOUTS, default=d.layout, help="data set layout")
    p.add_argument("--target", choices=tuple(TARGETS), default=d.target,
                   help="3class: normal/pneumonia/covid19; covid: positive/negative; pneumonia: normal/pneumonia")
    p.add_argument("--model", choices=list_models(), default=d.model, help="architecture")
    # No defaults here: a classifier and the denoiser (--task denoise) each have their own (TrainConfig,
    # DAETrainConfig), and one task's must never leak into the other's run.
    p.add_argument("--epochs", type=int, default=None,
                   help=f"maximum epochs (default {d.epochs} for a classifier, the denoiser's own with --task denoise)")
    p.add_argument("--batch-size", type=int, default=None,
                   help=f"images per step per process (default {d.batch_size}; the denoiser's own with --task denoise)")
    p.add_argument("--lr", type=float, default=None,
                   help=f"peak learning rate, one-cycle cosine schedule (default {d.lr:g}; the denoiser's own with "
                        "--task denoise)")
    p.add_argument("--weight-decay", type=float, default=d.weight_decay, help="AdamW weight decay")
    p.add_argument("--image-size", type=int, default=None,
                   help="model input side in pixels (default: the model's own, e.g. 224 for resnet18, 128 for cnn)")
    p.add_argument("--fit", choices=FIT_CHOICES, default=d.fit, help="pad (keep whole image) or crop to square")
    p.add_argument("--equalize", choices=EQUALIZE_CHOICES, default=d.equalize, help="contrast equalisation")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=d.augment,
                   help="small rotations/shifts/zoom and brightness/contrast changes (never flips)")
    p.add_argument("--augmentation", choices=AUGMENTATION_CHOICES, default=d.augmentation,
                   help="light: small geometry and contrast changes; strong: also gamma, blur/sharpen, noise, "
                        "lost resolution and erased borders and corners (where hospital markers sit)")
    p.add_argument("--pretrained", choices=("none", "imagenet"), default=d.pretrained,
                   help="start from torchvision ImageNet weights (downloaded, or from the torch hub cache)")
    p.add_argument("--freeze-epochs", type=int, default=d.freeze_epochs, help="train only the head for the first N epochs")
    p.add_argument("--seed", type=int, default=d.seed, help="random seed (splits, init, augmentation, order)")
    p.add_argument("--val-fraction", type=float, default=d.val_fraction,
                   help="share of TRAIN held out for validation (grouped by patient, stratified)")
    p.add_argument("--patience", type=int, default=d.patience, help="early stopping: epochs without val AUC gain")
    p.add_argument("--balance", choices=BALANCE_CHOICES, default=d.balance,
                   help="imbalance: weighted loss by class, weighted sampler by class, weighted sampler by "
                        "(source, class) group from provenance.csv (counters source confounds), or nothing")
    p.add_argument("--label-smoothing", type=float, default=d.label_smoothing, help="cross-entropy label smoothing")
    p.add_argument("--ema-decay", type=float, default=d.ema_decay,
                   help="keep an exponential moving average of the weights with this decay per step "
                        "(e.g. 0.99) and validate and save it instead of the raw weights; 0 = off")
    p.add_argument("--covid-sensitivity", type=float, default=d.covid_sensitivity,
                   help="the COVID-19 operating threshold is the one with the highest VALIDATION specificity among "
                        "those that keep validation sensitivity at or above this")
    p.add_argument("--workers", type=int, default=d.workers, help="DataLoader worker processes")
    p.add_argument("--limit", type=int, default=None, help="use at most N images per split (quick experiments)")
    p.add_argument("--device", default=d.device, help="auto (CUDA, else MPS, else CPU), cpu, cuda, mps")
    p.add_argument("--runs-dir", default=None, help="where run folders go (default: $COVID_CORE_RUNS or ./runs)")
    p.add_argument("--run-id", default=None, help="name of the run folder (default: date-model-random)")
    p.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue an interrupted run from runs/<run-id>")
    p.add_argument("--out", default=None, help="also copy the best checkpoint to this path")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _or(value, default):
    """``value`` unless it was not given (None)."""
    return default if value is None else value


def main(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..runs import stop_on_sigterm
    from ..training import TrainConfig, run

    if args.task == "denoise":
        from . import train_dae

        return train_dae.main(args)
    if not args.data and not args.resume:
        raise ConfigError("--data DIR is required (or --resume RUN_DIR)")
    config = TrainConfig(
        data=args.data or "", layout=args.layout, target=args.target, model=args.model,
        epochs=_or(args.epochs, TrainConfig.epochs), batch_size=_or(args.batch_size, TrainConfig.batch_size),
        lr=_or(args.lr, TrainConfig.lr), weight_decay=args.weight_decay, image_size=args.image_size,
        fit=args.fit, equalize=args.equalize, augment=args.augment, augmentation=args.augmentation,
        pretrained=args.pretrained,
        freeze_epochs=args.freeze_epochs, seed=args.seed, val_fraction=args.val_fraction, patience=args.patience,
        balance=args.balance, label_smoothing=args.label_smoothing, ema_decay=args.ema_decay,
        covid_sensitivity=args.covid_sensitivity,
        workers=args.workers, limit=args.limit,
        device=args.device, runs_dir=args.runs_dir or "", run_id=args.run_id, out=args.out)
    if not args.resume:
        config.validate()

    def report(row):
        auc = row["val_macro_auc"]
        print(f"epoch {row['epoch']}: train loss {row['train_loss']:.4f}, val accuracy {row['val_accuracy']:.3f}, "
              f"val macro AUC {auc if auc is None else round(auc, 4)}, {row['images_per_s']:.1f} img/s"
              f"{' (best)' if row['best'] else ''}", flush=True)

    best = run(config, on_epoch=report, should_stop=stop_on_sigterm(), progress=not args.quiet, resume=args.resume)
    print(f"best checkpoint: {best}")
    return 0
