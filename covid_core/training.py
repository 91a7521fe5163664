"""Train and evaluate classifiers: ``run(config, on_epoch=...)`` serves train.py and the app.

Shaped like torchvision's references/classification/train.py: ``train_one_epoch``,
``evaluate``, ``run``. Multi-process data-parallel training works under ``torchrun``
(DistributedDataParallel, gloo on CPU, NCCL on GPU).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from . import __version__
from .augment import AUGMENTATION_CHOICES, augment_batch
from .balance import BALANCE_CHOICES, WEIGHTED_SAMPLING, class_weights, group_sample_weights
from .cache import load_or_build
from .checkpoint import atomic_save, classifier_checkpoint, load_checkpoint_dict
from .datasets import load_dataset, split_validation
from .errors import CheckpointError, ConfigError
from .inference import calibrated_probabilities, logits_and_features
from .metrics import choose_threshold, classification_metrics, fit_temperature, rates_at_threshold, roc_points
from .models import build_model, get_spec, head_parameters
from .ood import fit_ood
from .preprocess import EQUALIZE_CHOICES, FIT_CHOICES, PreprocessConfig, normalize
from .runs import RunDir, default_runs_dir, new_run_id
from .shortcuts import shortcut_report
from .targets import COVID_CLASS, class_names, check_target


@dataclass
class TrainConfig:
    """Every setting of a training run (saved as runs/<id>/config.json and in the checkpoint)."""

    data: str = ""
    layout: str = "auto"
    target: str = "3class"
    model: str = "resnet18"
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    image_size: int | None = None
    fit: str = "pad"
    equalize: str = "none"
    augment: bool = True
    augmentation: str = "light"
    pretrained: str = "none"
    freeze_epochs: int = 0
    seed: int = 0
    val_fraction: float = 0.15
    patience: int = 5
    balance: str = "loss"
    label_smoothing: float = 0.0
    ema_decay: float = 0.0
    covid_sensitivity: float = 0.95
    workers: int = 0
    limit: int | None = None
    device: str = "auto"
    runs_dir: str = ""
    run_id: str | None = None
    out: str | None = None

    def validate(self) -> "TrainConfig":
        get_spec(self.model)
        check_target(self.target)
        checks = [
            (isinstance(self.epochs, int) and 1 <= self.epochs <= 1000, "epochs must be a whole number from 1 to 1000"),
            (isinstance(self.batch_size, int) and 1 <= self.batch_size <= 1024, "batch size must be from 1 to 1024"),
            (0 < self.lr <= 1, "learning rate must be above 0 and at most 1"),
            (0 <= self.weight_decay <= 1, "weight decay must be from 0 to 1"),
            (self.image_size is None or 32 <= self.image_size <= 1024, "image size must be from 32 to 1024"),
            (self.fit in FIT_CHOICES, f"fit must be one of: {', '.join(FIT_CHOICES)}"),
            (self.equalize in EQUALIZE_CHOICES, f"equalize must be one of: {', '.join(EQUALIZE_CHOICES)}"),
            (self.augmentation in AUGMENTATION_CHOICES,
             f"augmentation must be one of: {', '.join(AUGMENTATION_CHOICES)}"),
            (self.pretrained in ("none", "imagenet"), "pretrained must be one of: none, imagenet"),
            (0 <= self.freeze_epochs < self.epochs or self.freeze_epochs == 0, "freeze epochs must be fewer than epochs"),
            (0 < self.val_fraction < 0.5, "validation fraction must be between 0 and 0.5"),
            (self.patience >= 1, "patience must be at least 1"),
            (self.balance in BALANCE_CHOICES, f"balance must be one of: {', '.join(BALANCE_CHOICES)}"),
            (0 <= self.label_smoothing < 0.5, "label smoothing must be from 0 to 0.5"),
            (self.ema_decay == 0 or 0.5 <= self.ema_decay < 1, "EMA decay must be 0 (off) or from 0.5 to below 1"),
            (0.5 <= self.covid_sensitivity < 1, "COVID-19 sensitivity target must be from 0.5 to below 1"),
            (0 <= self.workers <= 32, "workers must be from 0 to 32"),
            (self.limit is None or self.limit >= 8, "images per split (limit) must be at least 8, or none for all"),
            (self.device in ("auto", "cpu", "cuda", "mps") or re.fullmatch(r"cuda:\d{1,2}", self.device),
             "device must be one of: auto, cpu, cuda, mps"),
        ]
        problems = [message for ok, message in checks if not ok]
        if problems:  # every problem at once, so a form is fixed in one go
            raise ConfigError("; ".join(problems))
        return self

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def preprocess_config(self) -> PreprocessConfig:
        size = self.image_size or get_spec(self.model).default_image_size
        return PreprocessConfig(image_size=size, fit=self.fit, equalize=self.equalize)


def pick_device(name: str = "auto") -> torch.device:
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


class CachedXrays(Dataset):
    """Items (uint8 1xSxS tensor, label) read from the image cache; augmentation happens per batch
    in the training step (:func:`augment_batch`), where it costs one grid_sample for the whole batch."""

    def __init__(self, images: np.ndarray, indices: np.ndarray, labels: np.ndarray):
        self.images, self.indices, self.labels = images, np.asarray(indices), np.asarray(labels)

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        return torch.from_numpy(np.array(self.images[self.indices[i]]))[None], int(self.labels[i])


def _distributed() -> tuple[int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def _setup_distributed(device: torch.device):
    rank, world = _distributed()
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend)
        torch.set_num_threads(max(1, (os.cpu_count() or 2) // world))
    return rank, world


def _barrier(world: int):
    if world > 1:
        torch.distributed.barrier()


def train_one_epoch(model, loader, optimizer, scheduler, loss_fn, config: PreprocessConfig, device, *,
                    epoch: int, epochs: int, augment: bool = True, augmentation: str = "light",
                    progress: bool = True, ema=None,
                    on_step: Callable | None = None, should_stop: Callable | None = None) -> dict:
    """One pass over ``loader``; returns {"loss", "images", "seconds", "data_wait_share"}.

    ``ema`` (a :class:`torch.optim.swa_utils.AveragedModel`) is updated after every optimiser step.
    """
    from tqdm import tqdm

    model.train()
    total_loss, seen, waited = 0.0, 0, 0.0
    start = time.perf_counter()
    bar = tqdm(loader, desc=f"epoch {epoch}/{epochs}", unit="batch", disable=not progress, dynamic_ncols=True)
    tick = time.perf_counter()
    for step, (x_u8, y) in enumerate(bar):
        waited += time.perf_counter() - tick
        x = x_u8.to(device, non_blocking=True).float().div_(255.0)
        if augment:
            x = augment_batch(x, augmentation)
        x = normalize(x, config).contiguous(memory_format=torch.channels_last)
        y = y.to(device, non_blocking=True)
        with torch.autocast(device.type, enabled=device.type == "cuda"):
            loss = loss_fn(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        if ema is not None:
            ema.update_parameters(getattr(model, "module", model))
        total_loss += float(loss.detach()) * len(y)
        seen += len(y)
        bar.set_postfix(loss=f"{total_loss / seen:.4f}")
        if on_step is not None:
            on_step(step + 1, len(loader), total_loss / seen)
        if should_stop is not None and should_stop():
            break
        tick = time.perf_counter()
    bar.close()
    seconds = time.perf_counter() - start
    return {"loss": total_loss / max(seen, 1), "images": seen, "seconds": seconds,
            "data_wait_share": waited / max(seconds, 1e-9)}


def evaluate(model, images_u8, labels, classes, config: PreprocessConfig, device, temperature: float = 1.0,
             batch_size: int = 64) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray]:
    """(metrics dict, calibrated probabilities NxC, logits NxC, penultimate features NxD) on uint8 NxSxS images."""
    logits, feats = logits_and_features(getattr(model, "module", model), images_u8, config, batch_size, device)
    probs = calibrated_probabilities(logits, temperature)
    return classification_metrics(labels, probs, classes), probs, logits, feats.get("penultimate")


def fit_classifier_ood(model, spec, images_u8, labels, idx: dict, config: PreprocessConfig, device) -> dict:
    """The checkpoint's ``ood`` entry: Gaussians fitted on the TRAIN rows, thresholds on the VAL rows (see ood.py)."""
    model = getattr(model, "module", model)
    layer = spec.target_layer(model)
    _, train_feats = logits_and_features(model, images_u8[idx["train"]], config, 64, device, layer)
    _, val_feats = logits_and_features(model, images_u8[idx["val"]], config, 64, device, layer)
    return fit_ood(train_feats, labels[idx["train"]], val_feats)


def per_source_metrics(table, probs: np.ndarray, classes) -> dict:
    """{source: {"n", "accuracy", "true": {class: n}, "predicted": {class: n}}} for confound checks."""
    out = {}
    pred = np.asarray(classes)[probs.argmax(1)]
    for source in sorted(table["source"].unique()):
        m = (table["source"] == source).to_numpy()
        true = table["label"].to_numpy()[m]
        out[source] = {"n": int(m.sum()), "accuracy": float((pred[m] == true).mean()),
                       "true": {c: int((true == c).sum()) for c in classes},
                       "predicted": {c: int((pred[m] == c).sum()) for c in classes},
                       "confusion": {t: {c: int(((true == t) & (pred[m] == c)).sum()) for c in classes}
                                     for t in classes if (true == t).any()}}
    return out


def prepare_data(config: TrainConfig, progress: bool = True, rank: int = 0, world: int = 1):
    """(table with split train/val/test and label_idx, uint8 images aligned with it, PreprocessConfig, fingerprint)."""
    dataset = load_dataset(config.data, config.layout)
    table = split_validation(dataset.for_target(config.target), config.val_fraction, config.seed)
    if config.limit:
        rng = np.random.default_rng(config.seed)
        keep = []
        for split in ("train", "val", "test"):
            idx = np.flatnonzero(table["split"].to_numpy() == split)
            keep.extend(rng.permutation(idx)[: config.limit])
        table = table.iloc[sorted(keep)].reset_index(drop=True)
    pre = config.preprocess_config()
    paths = table["path"].tolist()
    if rank == 0:
        images = load_or_build(paths, pre, progress=progress)
    _barrier(world)
    if rank != 0:
        images = load_or_build(paths, pre, progress=False)
    return table, images, pre, dataset.fingerprint()


def _class_counts(table) -> dict:
    return {s: {str(k): int(v) for k, v in table[table.split == s]["label"].value_counts().items()}
            for s in ("train", "val", "test")}


def _resume_state(run: RunDir) -> dict | None:
    if not run.last_checkpoint.is_file():
        return None
    try:
        return load_checkpoint_dict(run.last_checkpoint)
    except CheckpointError:
        return None


def run(config: TrainConfig, on_epoch: Callable[[dict], bool | None] | None = None,
        should_stop: Callable[[], bool] | None = None, progress: bool = True, resume: str | None = None) -> Path:
    """Train a classifier; returns the path of the best checkpoint (``runs/<id>/best.pt``).

    ``on_epoch(row)`` is called with each epoch's metrics; returning False stops training.
    ``resume`` is a run folder whose config and ``last.pt`` are continued.
    """
    if resume:
        run_dir, saved = RunDir.for_resume(resume)
        config = TrainConfig.from_dict(saved)
    config.validate()
    if _distributed()[1] > 1 and config.balance in WEIGHTED_SAMPLING:
        raise ConfigError(f"--balance {config.balance} draws samples with weights, which several processes "
                          "(torchrun) cannot share; use --balance loss (class-weighted loss) with torchrun")
    device = pick_device(config.device)
    rank, world = _setup_distributed(device)
    is_main = rank == 0
    torch.manual_seed(config.seed)
    classes = class_names(config.target)

    if not resume:
        config.runs_dir = config.runs_dir or str(default_runs_dir())
        config.run_id = config.run_id or new_run_id(config.model)
        if is_main:
            run_dir = RunDir.create(config.runs_dir, config.run_id)
        _barrier(world)
        run_dir = RunDir(Path(config.runs_dir) / config.run_id)
    if is_main:
        run_dir.write_json("config.json", asdict(config))
        run_dir.set_status("preparing", epoch=0, epochs=config.epochs, kind="classifier")
    with run_dir.failure_recorded(enabled=is_main):
        _train(config, run_dir, is_main, rank, world, device, classes, on_epoch, should_stop, progress, resume)
    _barrier(world)
    if world > 1:
        torch.distributed.destroy_process_group()
    return run_dir.best_checkpoint


def _train(config: TrainConfig, run_dir: RunDir, is_main: bool, rank: int, world: int, device, classes,
           on_epoch, should_stop, progress: bool, resume) -> None:
    """The body of :func:`run` once its run folder exists: data, model, the epoch loop and :func:`finalize`."""
    started = time.time()
    table, images, pre, fingerprint = prepare_data(config, progress and is_main, rank, world)
    prepare_s = time.time() - started
    split = table["split"].to_numpy()
    labels = table["label_idx"].to_numpy()
    idx = {s: np.flatnonzero(split == s) for s in ("train", "val", "test")}
    if len(idx["train"]) == 0 or len(idx["val"]) == 0:
        raise ConfigError("the data set needs training images to train on and to carve a validation split from")

    model = build_model(config.model, len(classes), None if config.pretrained == "none" else config.pretrained)
    model.to(device).to(memory_format=torch.channels_last)
    train_model = model
    if world > 1:
        train_model = nn.parallel.DistributedDataParallel(model)

    weights = class_weights(labels[idx["train"]], len(classes))
    loss_weight = torch.tensor(weights, dtype=torch.float32, device=device) if config.balance == "loss" else None
    loss_fn = nn.CrossEntropyLoss(weight=loss_weight, label_smoothing=config.label_smoothing)

    train_set = CachedXrays(images, idx["train"], labels[idx["train"]])
    sampler = None
    if world > 1:
        sampler = torch.utils.data.distributed.DistributedSampler(train_set, world, rank, shuffle=True, seed=config.seed)
    elif config.balance in WEIGHTED_SAMPLING:
        w = (weights[labels[idx["train"]]] if config.balance == "sampler" else
             group_sample_weights(labels[idx["train"]], table["source"].to_numpy()[idx["train"]]))
        sampler = torch.utils.data.WeightedRandomSampler(w, len(w), generator=torch.Generator().manual_seed(config.seed))
    steps_per_epoch = -(-len(train_set) // (config.batch_size * world))
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=config.epochs * steps_per_epoch, pct_start=0.15,
        anneal_strategy="cos", div_factor=10.0, final_div_factor=100.0)

    # With --ema-decay the exponential moving average of the weights (and of BatchNorm's statistics) is what
    # validation scores, early stopping watches and the checkpoint keeps; the raw weights only train.
    ema = None
    if config.ema_decay:
        from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay), use_buffers=True)
    scored = ema.module if ema is not None else model

    first_epoch, best_score, bad_epochs, history = 1, [-1.0, float("-inf")], 0, []
    state = _resume_state(run_dir) if resume else None
    if state is not None:
        model.load_state_dict(state["state_dict"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        first_epoch, best_score, bad_epochs = state["epoch"] + 1, list(state["best_score"]), state["bad_epochs"]
        history = run_dir.metrics()[: state["epoch"]]
    if resume and is_main:
        # A kill between the metrics line and last.pt leaves rows last.pt does not know: drop them.
        history = run_dir.keep_metrics_through(state["epoch"] if state is not None else 0)
    val_u8 = images[idx["val"]]
    stop = False
    for epoch in range(first_epoch, config.epochs + 1):
        if stop or (should_stop is not None and should_stop()):
            break
        head_only = epoch <= config.freeze_epochs
        head = set(map(id, head_parameters(model)))
        for p in model.parameters():
            p.requires_grad_(not head_only or id(p) in head)
        if sampler is not None and hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        loader = DataLoader(train_set, batch_size=config.batch_size, shuffle=sampler is None, sampler=sampler,
                            num_workers=config.workers, drop_last=len(train_set) > config.batch_size,
                            generator=torch.Generator().manual_seed(config.seed * 1000 + epoch),
                            persistent_workers=False, pin_memory=device.type == "cuda")

        def on_step(step, total, loss, epoch=epoch):
            if is_main and (step % 10 == 0 or step == total):
                run_dir.set_status("running", epoch=epoch, epochs=config.epochs, step=step, steps=total, loss=loss)

        stats = train_one_epoch(train_model, loader, optimizer, scheduler, loss_fn, pre, device, epoch=epoch,
                                epochs=config.epochs, augment=config.augment, augmentation=config.augmentation, progress=progress and is_main,
                                ema=ema, on_step=on_step,
                                should_stop=should_stop)
        val_metrics, *_ = evaluate(scored, val_u8, labels[idx["val"]], classes, pre, device)
        # Early stopping watches macro AUC (accuracy when validation has a single class); ties, common once
        # AUC saturates, go to the lower validation loss.
        auc = val_metrics["macro_auc"] if val_metrics["macro_auc"] is not None else (val_metrics["accuracy"] or 0.0)
        score = [round(auc, 4), -val_metrics["nll"]]
        improved = score > best_score
        if improved:
            best_score, bad_epochs = score, 0
        else:
            bad_epochs += 1
        row = {"epoch": epoch, "train_loss": stats["loss"], "val_loss": val_metrics["nll"],
               "val_accuracy": val_metrics["accuracy"],
               "val_macro_auc": val_metrics["macro_auc"], "val_ece": val_metrics["ece"],
               "lr": optimizer.param_groups[0]["lr"], "seconds": stats["seconds"],
               "images_per_s": stats["images"] * world / max(stats["seconds"], 1e-9),
               "data_wait_share": stats["data_wait_share"], "best": improved}
        history.append(row)
        if is_main:
            # The metrics line goes first: a kill before last.pt is written repeats this epoch on resume
            # (keep_metrics_through drops the orphan line) instead of losing its row.
            run_dir.append_metrics(row)
            if improved:
                atomic_save(classifier_checkpoint(scored, model_name=config.model, target=config.target,
                                                  classes=classes, preprocess=pre, train_config=asdict(config),
                                                  metrics={"val": val_metrics}, data_fingerprint=fingerprint,
                                                  epoch=epoch), run_dir.best_checkpoint)
            atomic_save({"state_dict": model.state_dict(), "optimizer": optimizer.state_dict(),
                         "scheduler": scheduler.state_dict(), "rng": torch.get_rng_state(), "epoch": epoch,
                         "best_score": best_score, "bad_epochs": bad_epochs,
                         **({"ema": ema.state_dict()} if ema is not None else {})}, run_dir.last_checkpoint)
            run_dir.set_status("running", epoch=epoch, epochs=config.epochs, step=0, steps=steps_per_epoch)
        if on_epoch is not None and on_epoch(row) is False:
            stop = True
        if bad_epochs >= config.patience:
            if is_main:
                print(f"early stopping: validation macro AUC has not improved for {bad_epochs} epochs", flush=True)
            stop = True
    cancelled = should_stop is not None and should_stop()
    if is_main:
        finalize(run_dir, config, table, images, pre, fingerprint, classes, device,
                 training_time_s=time.time() - started, cancelled=cancelled, prepare_s=prepare_s)


def finalize(run_dir: RunDir, config: TrainConfig, table, images, pre, fingerprint, classes, device,
             training_time_s: float, cancelled: bool = False, prepare_s: float | None = None) -> None:
    """Calibrate, set the threshold and OOD score on VALIDATION, evaluate TEST, rewrite best.pt.

    ``training_time_s`` (time so far) grows by this step's own time; ``timing`` in the checkpoint splits it
    into data preparation (decode + cache), each epoch, and this calibration/evaluation step.
    """
    finalize_started = time.time()
    if not run_dir.best_checkpoint.is_file():
        run_dir.set_status("cancelled" if cancelled else "failed", error="no epoch finished")
        return
    run_dir.set_status("evaluating")
    ckpt = load_checkpoint_dict(run_dir.best_checkpoint)
    model = build_model(config.model, len(classes)).to(device)
    model.load_state_dict(ckpt["state_dict"])
    split, labels = table["split"].to_numpy(), table["label_idx"].to_numpy()
    idx = {s: np.flatnonzero(split == s) for s in ("train", "val", "test")}

    _, _, val_logits, val_features = evaluate(model, images[idx["val"]], labels[idx["val"]], classes, pre, device)
    temperature = fit_temperature(torch.as_tensor(val_logits), torch.as_tensor(labels[idx["val"]]))
    val_probs = calibrated_probabilities(val_logits, temperature)
    val_metrics = classification_metrics(labels[idx["val"]], val_probs, classes)
    threshold = {}
    covid = COVID_CLASS.get(config.target)
    if covid in classes:
        ci = classes.index(covid)
        threshold = {"class": covid, **choose_threshold(labels[idx["val"]] == ci, val_probs[:, ci],
                                                        min_sensitivity=config.covid_sensitivity)}
    ood = fit_classifier_ood(model, get_spec(config.model), images, labels, idx, pre, device)

    val_metrics["shortcuts"] = shortcut_report(table.iloc[idx["val"]].reset_index(drop=True), val_probs, classes,
                                               val_features)
    metrics = {"val": val_metrics}
    if len(idx["test"]):
        test_metrics, test_probs, _, test_features = evaluate(model, images[idx["test"]], labels[idx["test"]],
                                                                 classes, pre, device, temperature)
        test_table = table.iloc[idx["test"]]
        test_metrics["per_source"] = per_source_metrics(test_table, test_probs, classes)
        test_metrics["shortcuts"] = shortcut_report(test_table.reset_index(drop=True), test_probs, classes,
                                                    test_features)
        if threshold:
            ci = classes.index(covid)
            threshold["test"] = rates_at_threshold(labels[idx["test"]] == ci, test_probs[:, ci], threshold["value"])
        metrics["test"] = test_metrics
        metrics["test_roc"] = roc_points(labels[idx["test"]], test_probs, classes)
    hardware = f"{torch.cuda.get_device_name(0)}" if device.type == "cuda" else \
        f"CPU x{os.cpu_count()} ({torch.get_num_threads()} threads) on {socket.gethostname()}"
    finalize_s = time.time() - finalize_started
    training_time_s += finalize_s
    timing = {"prepare_s": None if prepare_s is None else round(prepare_s, 1), "finalize_s": round(finalize_s, 1),
              "epoch_s": [round(float(r.get("seconds", 0.0)), 1) for r in run_dir.metrics()]}
    ckpt.update(metrics=metrics, temperature=temperature, threshold=threshold, ood=ood, timing=timing,
                class_counts=_class_counts(table), created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                package_version=__version__, training_time_s=round(training_time_s, 1), hardware=hardware,
                torch_version=str(torch.__version__), train_config=asdict(config))
    atomic_save(ckpt, run_dir.best_checkpoint)
    summary = {k: metrics.get("test", metrics["val"]).get(k) for k in ("n", "accuracy", "macro_auc", "ece")}
    run_dir.write_json("result.json", {"metrics": metrics, "temperature": temperature, "threshold": threshold,
                                       "training_time_s": training_time_s})
    if config.out and not cancelled:  # a cancelled run keeps its best-so-far in the run folder only
        out = Path(config.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        shutil.copyfile(run_dir.best_checkpoint, tmp)
        os.replace(tmp, out)
    run_dir.set_status("cancelled" if cancelled else "finished", summary=summary,
                       checkpoint=str(run_dir.best_checkpoint))
