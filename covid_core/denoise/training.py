"""Train the denoising autoencoder: ``run_dae(config)`` serves train.py and the app alike.

Same shape as :mod:`covid_core.training`: a run folder (``runs/<id>/`` with config.json,
metrics.jsonl, status.json, best.pt, last.pt), a tqdm bar per epoch, atomic checkpoints and
``resume``. An "epoch" is a fixed number of steps of random crops from TRAIN images, each
crop corrupted with blind noise (Gaussian or Poisson, level drawn per crop), so no epoch
needs a pass over all the data.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..checkpoint import atomic_save
from ..datasets import LAYOUTS, limit_per_split, load_dataset, split_validation
from ..errors import ConfigError
from ..training_data import readable_training_films
from ..flags import MAX_BATCH, SEED_RULE, Flag, valid_seed
from ..preprocess import PreprocessConfig
from ..runs import hardware_description, open_run
from .dae import DEFAULT_CHANNELS, DEFAULT_UNSHUFFLE, DAENet, dae_checkpoint
from .noise import add_noise
from .quality import psnr

# Validation noise: the two settings the benchmark cares most about.
VAL_NOISE = (("gaussian", 25.0), ("poisson", 30.0))


@dataclass
class DAETrainConfig:
    """Every setting of a DAE training run (saved as runs/<id>/config.json and in the checkpoint)."""

    data: str = ""
    layout: str = "auto"
    skip_unreadable: bool = False
    epochs: int = 12
    steps_per_epoch: int = 150
    batch_size: int = 16
    crop: int = 64
    lr: float = 2e-3
    image_size: int = 512
    sigma_min: float = 5.0
    sigma_max: float = 60.0
    photons_min: float = 8.0
    photons_max: float = 1000.0
    poisson_share: float = 0.5
    channels: tuple[int, ...] = DEFAULT_CHANNELS
    unshuffle: int = DEFAULT_UNSHUFFLE
    seed: int = 0
    val_fraction: float = 0.1
    val_images: int = 32
    limit: int | None = None
    runs_dir: str = ""
    run_id: str | None = None
    out: str | None = None
    command: str | None = None

    def validate(self, resumed: bool = False) -> "DAETrainConfig":  # resumed: as TrainConfig's; nothing differs
        if not (isinstance(self.unshuffle, int) and 1 <= self.unshuffle <= 8):
            raise ConfigError("unshuffle must be a whole number from 1 to 8")
        checks = [
            (1 <= self.val_images <= 10000, "validation images must be from 1 to 10000"),
            (valid_seed(self.seed), SEED_RULE),
            (1 <= self.epochs <= 1000, "epochs must be from 1 to 1000"),
            (1 <= self.steps_per_epoch <= 100000, "steps per epoch must be from 1 to 100000"),
            (1 <= self.batch_size <= MAX_BATCH, f"batch size must be from 1 to {MAX_BATCH}"),
            (0 < self.lr <= 1, "learning rate must be above 0 and at most 1"),
            (32 <= self.image_size <= 2048, "image size must be from 32 to 2048"),
            (16 <= self.crop <= self.image_size, "crop must be from 16 pixels to the image size"),
            (self.crop % DAENet(self.channels, self.unshuffle).multiple == 0,
             f"crop must be a multiple of {DAENet(self.channels, self.unshuffle).multiple}"),
            (0 <= self.sigma_min <= self.sigma_max <= 255, "need 0 <= sigma min <= sigma max <= 255"),
            (0 < self.photons_min <= self.photons_max, "need 0 < photons min <= photons max"),
            (0 <= self.poisson_share <= 1, "poisson share must be from 0 to 1"),
            (0 < self.val_fraction < 0.5, "validation fraction must be between 0 and 0.5"),
            (self.limit is None or self.limit >= 4, "images per split (limit) must be at least 4, or none for all"),
        ]
        problems = [message for ok, message in checks if not ok]
        if problems:  # every problem at once, so a form is fixed in one go
            raise ConfigError("; ".join(problems))
        return self

    def to_dict(self) -> dict:
        """Plain data only (lists, not tuples), as checkpoints and config.json require."""
        return {**asdict(self), "channels": list(self.channels)}

    @classmethod
    def from_dict(cls, d: dict) -> "DAETrainConfig":
        known = {f.name for f in fields(cls)}
        out = cls(**{k: v for k, v in d.items() if k in known})
        out.channels = tuple(out.channels)
        return out


DAE_RUN_FLAGS = (
    Flag("data", "--data", "data folder (required unless --resume); only its TRAIN images are used"),
    Flag("layout", "--layout", "data set layout", choices=LAYOUTS),
    Flag("skip_unreadable", "--skip-unreadable", "train on the TRAIN films that can be read and name the others in "
                                                 "the log (by default one unreadable film stops the run)", kind="bool"),
    Flag("runs_dir", "--runs-dir", "where run folders go (default: $COVID_CORE_RUNS or ./runs)"),
    Flag("run_id", "--run-id", "name of the run folder (default: date-dae-random)"),
    Flag("out", "--out", "also copy the best checkpoint here (e.g. weights/dae.pt)"),
)
DAE_FLAGS = (  # the recipe, in the order a model card shows it
    Flag("epochs", "--epochs", "epochs of --steps-per-epoch steps each", int),
    Flag("steps_per_epoch", "--steps-per-epoch", "optimiser steps per epoch", int),
    Flag("batch_size", "--batch-size", "crops per step", int),
    Flag("crop", "--crop", "side of the random training crops, pixels", int),
    Flag("lr", "--lr", "peak learning rate of Adam (one-cycle cosine schedule)", float),
    Flag("image_size", "--image-size", "images are cached at this side first", int),
    Flag(("sigma_min", "sigma_max"), "--sigma-range", "Gaussian sigma range on the 0-255 scale", float),
    Flag(("photons_min", "photons_max"), "--photons-range", "Poisson photon counts at full intensity (log-uniform)",
         float),
    Flag("poisson_share", "--poisson-share", "share of crops with Poisson noise", float),
    Flag("channels", "--channels", "U-Net channels per level", int, kind="list"),
    Flag("unshuffle", "--unshuffle", "pixel-unshuffle factor before the U-Net (1 = none)", int),
    Flag("val_fraction", "--val-fraction", "share of TRAIN held out for validation (grouped by patient)", float),
    Flag("val_images", "--val-images", "validation images whose fixed crops are scored each epoch", int),
    Flag("limit", "--limit", "use at most N images per split (quick experiments)", int),
    Flag("seed", "--seed", "random seed (split, init, crops, noise)", int),
)


def blind_noise(clean: torch.Tensor, config: DAETrainConfig, generator: torch.Generator) -> torch.Tensor:
    """Corrupt float Bx1xHxW in [0, 1], one random noise kind and level per image; clipped to [0, 1]."""
    b = clean.shape[0]
    u = torch.rand(b, 1, 1, 1, generator=generator)
    sigma = (config.sigma_min + (config.sigma_max - config.sigma_min) * u) / 255.0
    gaussian = clean + sigma * torch.randn(clean.shape, generator=generator)
    # Log-uniform photon counts: dose spans orders of magnitude.
    lo, hi = math.log(config.photons_min), math.log(config.photons_max)
    photons = torch.exp(lo + (hi - lo) * torch.rand(b, 1, 1, 1, generator=generator))
    poisson = torch.poisson(clean * photons, generator=generator) / photons
    use_poisson = torch.rand(b, 1, 1, 1, generator=generator) < config.poisson_share
    return torch.where(use_poisson, poisson, gaussian).clamp_(0.0, 1.0)


def random_crops(images: np.ndarray, indices: np.ndarray, n: int, crop: int, generator: torch.Generator) -> torch.Tensor:
    """n random crops float nx1xcropxcrop in [0, 1] from uint8 NxSxS ``images`` rows in ``indices``."""
    s = images.shape[1]
    pick = indices[torch.randint(len(indices), (n,), generator=generator).numpy()]
    ys = torch.randint(s - crop + 1, (n,), generator=generator).numpy()
    xs = torch.randint(s - crop + 1, (n,), generator=generator).numpy()
    batch = np.stack([images[i, y:y + crop, x:x + crop] for i, y, x in zip(pick, ys, xs)])
    return torch.from_numpy(batch.astype(np.float32) / 255.0)[:, None]


def validation_set(images: np.ndarray, indices: np.ndarray, config: DAETrainConfig) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """[(noise name, clean float32 Nx128x128, noisy float32 Nx128x128)]: fixed centre crops and seeded noise."""
    s, c = images.shape[1], min(128, images.shape[1])
    top = (s - c) // 2
    clean = images[indices[: config.val_images], top:top + c, top:top + c].astype(np.float32) / 255.0
    out = []
    for kind, level in VAL_NOISE:
        noisy = np.stack([add_noise(img, kind, level, seed=i) for i, img in enumerate(clean)])
        out.append((f"{kind}:{level:g}", clean, noisy))
    return out


@torch.no_grad()
def validate(model: DAENet, val_set) -> dict:
    """{"<kind:level>": mean PSNR dB, ..., "mean": mean of those} on the fixed validation crops."""
    model.eval()
    scores = {}
    for name, clean, noisy in val_set:
        pad = -clean.shape[1] % model.multiple
        x = F.pad(torch.from_numpy(noisy)[:, None], (0, pad, 0, pad), mode="replicate")
        out = model(x)[:, 0, : clean.shape[1], : clean.shape[2]].clamp(0, 1).numpy()
        scores[name] = float(np.mean([psnr(c, o) for c, o in zip(clean, out)]))
    model.train()
    scores["mean"] = float(np.mean(list(scores.values())))
    return scores


def prepare_dae_data(config: DAETrainConfig, progress: bool = True):
    """(uint8 NxSxS images, train indices, validation indices, what the checkpoint records of the data set:
    {"data_fingerprint", "training_data"}); TEST is never read."""
    dataset = load_dataset(config.data, config.layout)
    train = dataset.table[dataset.table["split"] == "train"].reset_index(drop=True)
    # Stratify the patient-grouped validation split by finding (the DAE needs no labels).
    table = split_validation(train.assign(label=train["finding"]), config.val_fraction, config.seed)
    table = limit_per_split(table, config.limit, config.seed, splits=("train", "val"))
    _train_and_val(table, "TRAIN images")
    table, images, facts = readable_training_films(
        dataset, table, PreprocessConfig(image_size=config.image_size), config.skip_unreadable,
        advice="Fix or remove them, or train on the rest with --skip-unreadable", progress=progress)
    return (images, *_train_and_val(table, "readable TRAIN images"), facts)


def _train_and_val(table, what: str) -> tuple[np.ndarray, np.ndarray]:
    split = table["split"].to_numpy()
    train_idx, val_idx = np.flatnonzero(split == "train"), np.flatnonzero(split == "val")
    if len(train_idx) == 0 or len(val_idx) == 0:
        raise ConfigError(f"the data set needs {what} to train on and to carve a validation split from")
    return train_idx, val_idx


def run_dae(config: DAETrainConfig, on_epoch: Callable[[dict], bool | None] | None = None,
            should_stop: Callable[[], bool] | None = None, progress: bool = True, resume: str | None = None) -> Path:
    """Train the DAE; returns the best checkpoint path (``runs/<id>/best.pt``, best validation PSNR).

    ``on_epoch(row)`` gets each epoch's metrics; returning False stops. ``resume`` is a run
    folder whose config and ``last.pt`` are continued.
    """
    from tqdm import tqdm

    if resume:
        run_dir, config = open_run(config, resume, DAETrainConfig.from_dict, "dae")
    config.validate()
    torch.manual_seed(config.seed)
    if not resume:
        run_dir, config = open_run(config, None, DAETrainConfig.from_dict, "dae")
    run_dir.write_json("config.json", config.to_dict())
    run_dir.set_status("preparing", epoch=0, epochs=config.epochs, kind="dae")
    started = time.time()
    with run_dir.failure_recorded():
        images, train_idx, val_idx, data_facts = prepare_dae_data(config, progress)
    val_set = validation_set(images, val_idx, config)

    model = DAENet(config.channels, config.unshuffle)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=config.epochs * config.steps_per_epoch, pct_start=0.1,
        anneal_strategy="cos", div_factor=10.0, final_div_factor=100.0)
    generator = torch.Generator().manual_seed(config.seed)
    first_epoch, best_psnr, elapsed_before = 1, -math.inf, 0.0
    state = run_dir.resume_state() if resume else None
    if state is not None:
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        first_epoch, best_psnr = state["epoch"] + 1, state["best_psnr"]
        elapsed_before = state.get("training_time_s", 0.0)
    model.train()
    cancelled = False
    for epoch in range(first_epoch, config.epochs + 1):
        if should_stop is not None and should_stop():
            cancelled = True
            break
        t0, total = time.perf_counter(), 0.0
        bar = tqdm(range(config.steps_per_epoch), desc=f"epoch {epoch}/{config.epochs}", unit="batch",
                   disable=not progress, dynamic_ncols=True)
        for step in bar:
            clean = random_crops(images, train_idx, config.batch_size, config.crop, generator)
            noisy = blind_noise(clean, config, generator)
            loss = F.mse_loss(model(noisy), clean)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += float(loss.detach())
            bar.set_postfix(loss=f"{total / (step + 1):.5f}")
            if (step + 1) % 10 == 0:
                run_dir.set_status("running", epoch=epoch, epochs=config.epochs, step=step + 1,
                                   steps=config.steps_per_epoch, loss=total / (step + 1))
            if should_stop is not None and should_stop():
                cancelled = True
                break
        bar.close()
        if cancelled:
            break
        scores = validate(model, val_set)
        improved = scores["mean"] > best_psnr
        best_psnr = max(best_psnr, scores["mean"])
        seconds = time.perf_counter() - t0
        train_time = elapsed_before + time.time() - started
        row = {"epoch": epoch, "train_loss": total / config.steps_per_epoch,
               **{f"val_psnr_{k}": v for k, v in scores.items()}, "lr": optimizer.param_groups[0]["lr"],
               "seconds": seconds, "images_per_s": config.steps_per_epoch * config.batch_size / max(seconds, 1e-9),
               "best": improved}
        if improved:
            atomic_save(dae_checkpoint(model, train_config=config.to_dict(), metrics={"val_psnr": scores},
                                       **data_facts, epoch=epoch, training_time_s=round(train_time, 1),
                                       hardware=hardware_description(), torch_version=str(torch.__version__),
                                       created=time.strftime("%Y-%m-%dT%H:%M:%S%z")), run_dir.best_checkpoint)
        atomic_save({"state_dict": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "scheduler": scheduler.state_dict(), "generator": generator.get_state(), "epoch": epoch,
                     "best_psnr": best_psnr, "training_time_s": train_time}, run_dir.last_checkpoint)
        run_dir.append_metrics(row)
        run_dir.set_status("running", epoch=epoch, epochs=config.epochs, step=0, steps=config.steps_per_epoch)
        if on_epoch is not None and on_epoch(row) is False:
            break
    if not run_dir.best_checkpoint.is_file():
        run_dir.set_status("cancelled" if cancelled else "failed", error="no epoch finished")
        return run_dir.best_checkpoint
    run_dir.publish(config.out)
    run_dir.write_json("result.json", {"best_val_psnr": best_psnr,
                                       "training_time_s": elapsed_before + time.time() - started})
    run_dir.set_status("cancelled" if cancelled else "finished", checkpoint=str(run_dir.best_checkpoint))
    return run_dir.best_checkpoint
