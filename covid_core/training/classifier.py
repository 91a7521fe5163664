"""Train a classifier: ``run(config, on_epoch=...)`` serves train.py and the app.

Shaped like torchvision's references/classification/train.py: :func:`run` prepares the run folder and the
data, :func:`~covid_core.training.loop.train_one_epoch` trains, :func:`~covid_core.training.finalize.finalize`
calibrates and scores. Multi-process data-parallel training works under ``torchrun``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ..balance import WEIGHTED_SAMPLING, class_weights, group_sample_weights
from ..checkpoint import atomic_save, classifier_checkpoint
from ..datasets import limit_per_split, load_dataset, split_validation, without_source_in_training
from ..digests import file_sha256
from ..errors import ConfigError
from ..models import build_model, get_spec, head_parameters, is_weights_file, last_linear
from ..runs import RunDir, open_run
from ..targets import class_names
from ..training_data import readable_training_films
from . import distributed
from .adversary import SourceAdversary, source_codes
from .group_dro import GroupDRO
from .mix_style import MixStyle
from .source_prior import SourcePrior
from .config import TrainConfig
from .finalize import finalize, split_indices
from .loop import CachedXrays, evaluate, train_one_epoch


def training_table(config: TrainConfig):
    """(the data set, its films as a run with ``config`` uses them: split train/val/test, with label_idx), before
    any film is decoded."""
    dataset = load_dataset(config.data, config.layout)
    table = without_source_in_training(dataset.for_target(config.target), config.holdout_source)
    table = split_validation(table, config.val_fraction, config.seed, by=config.val_strata)
    return dataset, limit_per_split(table, config.limit, config.seed)


def prepare_data(config: TrainConfig, progress: bool = True, rank: int = 0, world: int = 1):
    """(table with split train/val/test and label_idx, uint8 images aligned with it, PreprocessConfig, what the
    checkpoint records of the data set: {"data_fingerprint", "training_data"})."""
    dataset, table = training_table(config)
    pre = config.preprocess_config()
    advice = "Fix or remove them, or train on the rest with --skip-unreadable (the Train form's \"Leave out " \
             "unreadable films\")"
    if rank == 0:
        table_used, images, facts = readable_training_films(dataset, table, pre, config.skip_unreadable, advice,
                                                            progress=progress)
    distributed.barrier(world)
    if rank != 0:  # the unreadable films were noted in the cache by rank 0: nothing is decoded twice
        table_used, images, facts = readable_training_films(dataset, table, pre, config.skip_unreadable, advice,
                                                            progress=False, announce=False)
    return table_used, images, pre, facts


def ema_decay_for(decay: float, total_steps: int) -> float:
    """The weight-averaging decay a run uses: ``decay``, capped so that the average spans at most half of the
    run's ``total_steps`` (1 / (1 - decay) <= total_steps / 2)."""
    return max(0.0, min(decay, 1.0 - 2.0 / max(total_steps, 1)))


def run(config: TrainConfig, on_epoch: Callable[[dict], bool | None] | None = None,
        should_stop: Callable[[], bool] | None = None, progress: bool = True, resume: str | None = None) -> Path:
    """Train a classifier; returns the path of the best checkpoint (``runs/<id>/best.pt``).

    ``on_epoch(row)`` is called with each epoch's metrics; returning False stops training.
    ``resume`` is a run folder whose config and ``last.pt`` are continued.
    """
    state = None  # the state saved after the last finished epoch of a resumed run, if any can be read
    if resume:
        run_dir, config = open_run(config, resume, TrainConfig.from_dict, config.model)
        state = run_dir.resume_state()
    # Once an epoch is saved, the run's own weights hold the starting file's: resuming no longer needs the file.
    in_run = state is not None and is_weights_file(config.pretrained)
    (replace(config, pretrained="none") if in_run else config).validate()
    device = distributed.pick_device(config.device)
    rank, world = distributed.setup(device)
    is_main = rank == 0
    torch.manual_seed(config.seed)
    if not resume:
        if is_main:
            run_dir, config = open_run(config, None, TrainConfig.from_dict, config.model)
        config.run_id = distributed.from_rank_zero(config.run_id, world)  # a random id is drawn once, by rank 0
        if not is_main:
            run_dir, config = open_run(config, None, TrainConfig.from_dict, config.model, create=False)
    if is_main:
        run_dir.write_json("config.json", asdict(config))
        run_dir.set_status("preparing", epoch=0, epochs=config.epochs, kind="classifier")
    with run_dir.failure_recorded(enabled=is_main):
        _Training(config, run_dir, rank, world, device, progress).fit(on_epoch, should_stop, resume, state)
    distributed.teardown(world)
    return run_dir.best_checkpoint


STARTING_WEIGHTS_FILE = "starting_weights.json"  # in the run folder: the weights file a run started from


@dataclass
class _State:
    first_epoch: int = 1
    best_score: tuple = (-1.0, float("-inf"))
    bad_epochs: int = 0


class _Training:
    """One run's data, model, optimiser and state, from :func:`run`'s folder to :func:`finalize`."""

    def __init__(self, config: TrainConfig, run_dir: RunDir, rank: int, world: int, device, progress: bool):
        self.config, self.run_dir, self.world, self.device = config, run_dir, world, device
        self.is_main, self.rank = rank == 0, rank
        self.progress = progress and self.is_main
        self.classes = class_names(config.target)
        self.started = time.time()
        self.table, self.images, self.pre, self.data_facts = prepare_data(config, self.progress, rank, world)
        self.prepare_s = time.time() - self.started
        self.labels = self.table["label_idx"].to_numpy()
        self.idx = split_indices(self.table)
        if len(self.idx["train"]) == 0 or len(self.idx["val"]) == 0:
            raise ConfigError("the data set needs training images to train on and to carve a validation split from")

    def _build(self, resume, from_saved_epoch: bool) -> None:
        config, train = self.config, self.idx["train"]
        from_file = is_weights_file(config.pretrained)
        self.model = build_model(config.model, len(self.classes), None if config.pretrained == "none" or (
            from_file and from_saved_epoch) else config.pretrained)  # a saved epoch's weights replace the file's
        if from_file:  # the file and its digest, for the checkpoint and card
            self.data_facts = {**self.data_facts, "starting_weights": self._starting_weights(resume, from_saved_epoch)}
        self.model.to(self.device).to(memory_format=torch.channels_last)
        self.train_model = nn.parallel.DistributedDataParallel(self.model) if self.world > 1 else self.model

        weights = class_weights(self.labels[train], len(self.classes))
        loss_weight = (torch.tensor(weights, dtype=torch.float32, device=self.device)
                       if config.balance == "loss" else None)
        self.loss_fn = nn.CrossEntropyLoss(weight=loss_weight, label_smoothing=config.label_smoothing)
        sources = self.table["source"].to_numpy()[train]
        codes = None
        self.adversary = None
        if any((config.source_adversary, config.source_mix, config.group_dro, config.source_contrast,
                config.mix_style, config.source_prior)):
            codes, names = source_codes(sources)
        self.group_dro = (GroupDRO(len(names), len(self.classes), config.group_dro, config.label_smoothing)
                          .to(self.device) if config.group_dro else None)
        if config.source_adversary:
            n_features = last_linear(self.model).in_features
            self.adversary = SourceAdversary(n_features, len(self.classes), len(names),
                                             config.source_adversary).to(self.device)
        self.train_set = CachedXrays(self.images, train, self.labels[train], codes)
        self.sampler = None
        w = np.ones(len(train))
        if config.balance in WEIGHTED_SAMPLING:
            w = (weights[self.labels[train]] if config.balance == "sampler" else
                 group_sample_weights(self.labels[train], sources))
            self.sampler = (distributed.WeightedShardSampler(w, self.rank, self.world, config.seed) if self.world > 1
                            else torch.utils.data.WeightedRandomSampler(
                                w, len(w), generator=torch.Generator().manual_seed(config.seed)))
        elif self.world > 1:
            self.sampler = torch.utils.data.distributed.DistributedSampler(self.train_set, self.world, self.rank,
                                                                           shuffle=True, seed=config.seed)
        self.source_prior = (SourcePrior.from_sampling(w, self.labels[train], codes, len(names), len(self.classes),
                                                       config.source_prior).to(self.device)
                             if config.source_prior else None)
        self.steps_per_epoch = -(-len(self.train_set) // (config.batch_size * self.world))
        parameters = list(self.model.parameters())
        if self.adversary is not None:
            parameters += list(self.adversary.parameters())
        self.optimizer = torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.OneCycleLR(
            self.optimizer, max_lr=config.lr, total_steps=config.epochs * self.steps_per_epoch, pct_start=0.15,
            anneal_strategy="cos", div_factor=10.0, final_div_factor=100.0)
        # With --ema-decay the exponential moving average of the weights (and of BatchNorm's statistics) is what
        # validation scores, early stopping watches and the checkpoint keeps; the raw weights only train.
        # The average spans about 1 / (1 - decay) steps; a short run (a small data set, few epochs) would keep
        # mostly its first, untrained weights, so the decay is capped to span at most half of the run's steps.
        # Every run in docs/ and weights/ (0.99 over 220 steps or more) is below the cap.
        self.ema = None
        if config.ema_decay:
            from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

            decay = ema_decay_for(config.ema_decay, config.epochs * self.steps_per_epoch)
            self.ema = AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(decay),
                                     use_buffers=True)
        self.scored = self.ema.module if self.ema is not None else self.model
        # After the average's copy, so that only the trained model carries the hooks.
        self.mix_style = (MixStyle(get_spec(config.model).style_layers(self.model), config.mix_style)
                          if config.mix_style else None)

    def _starting_weights(self, resume, from_saved_epoch: bool) -> dict:
        """{"file", "sha256"} of the weights file the run started from, kept in the run folder when it starts. A
        resumed run keeps that record (its saved weights already hold the file's); one resumed before its first
        epoch was saved reads the file again, and refuses it if it changed since the run started."""
        file = self.config.pretrained
        recorded = self.run_dir.read_json(STARTING_WEIGHTS_FILE) if resume else None
        if recorded is not None and from_saved_epoch:
            return recorded
        if not Path(file).is_file():
            why = (f"this run's folder does not record it ({STARTING_WEIGHTS_FILE})" if from_saved_epoch else
                   "no saved epoch of this run holds its weights")
            raise ConfigError(f"the starting weights file {file} is gone, and {why}; restore the file to resume "
                              "the run")
        record = {"file": file, "sha256": file_sha256(file)}
        if recorded is not None and recorded.get("sha256") != record["sha256"]:
            raise ConfigError(f"the starting weights file {file} changed since this run started (sha256 "
                              f"{str(recorded.get('sha256'))[:16]}... then, {record['sha256'][:16]}... now); restore "
                              "it, or start a new run from the new file")
        if self.is_main and recorded is None:
            self.run_dir.write_json(STARTING_WEIGHTS_FILE, record)
        return record

    def _restore(self, resume, state) -> _State:
        """Continue from ``state`` (``last.pt``) when resuming; metrics rows of epochs it does not know are
        dropped."""
        if state is not None:
            self.model.load_state_dict(state["state_dict"])
            if self.ema is not None:
                self.ema.load_state_dict(state["ema"])
            if self.adversary is not None and "adversary" in state:
                self.adversary.load_state_dict(state["adversary"])
            if self.group_dro is not None and "group_dro" in state:
                self.group_dro.load_state_dict(state["group_dro"])
            if "sampler_rng" in state:  # the weighted sampler draws on from where the interrupted run stopped
                self.sampler.generator.set_state(state["sampler_rng"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["rng"])
        if resume and self.is_main:
            # A kill between the metrics line and last.pt leaves rows last.pt does not know: drop them.
            self.run_dir.keep_metrics_through(state["epoch"] if state is not None else 0)
        if state is None:
            return _State()
        return _State(state["epoch"] + 1, tuple(state["best_score"]), state["bad_epochs"])

    def _save(self, epoch: int, improved: bool, val_metrics: dict, s: _State) -> None:
        config = self.config
        if improved:
            atomic_save(classifier_checkpoint(self.scored, model_name=config.model, target=config.target,
                                              classes=self.classes, preprocess=self.pre, train_config=asdict(config),
                                              metrics={"val": val_metrics}, **self.data_facts,
                                              epoch=epoch), self.run_dir.best_checkpoint)
        extra = {"ema": self.ema.state_dict()} if self.ema is not None else {}
        if self.adversary is not None:
            extra["adversary"] = self.adversary.state_dict()
        if self.group_dro is not None:
            extra["group_dro"] = self.group_dro.state_dict()
        if isinstance(self.sampler, torch.utils.data.WeightedRandomSampler):
            extra["sampler_rng"] = self.sampler.generator.get_state()
        atomic_save({"state_dict": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                     "scheduler": self.scheduler.state_dict(), "rng": torch.get_rng_state(), "epoch": epoch,
                     "best_score": list(s.best_score), "bad_epochs": s.bad_epochs, **extra},
                    self.run_dir.last_checkpoint)

    def _loader(self, epoch: int) -> DataLoader:
        config = self.config
        if self.sampler is not None and hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)
        return DataLoader(self.train_set, batch_size=config.batch_size, shuffle=self.sampler is None,
                          sampler=self.sampler, num_workers=config.workers,
                          drop_last=len(self.train_set) > config.batch_size,
                          generator=torch.Generator().manual_seed(config.seed * 1000 + epoch),
                          persistent_workers=False, pin_memory=self.device.type == "cuda")

    def fit(self, on_epoch, should_stop, resume, state: dict | None) -> None:
        """Train from the start, or with ``state`` (:meth:`RunDir.resume_state` of a resumed run) from after its
        last saved epoch."""
        config, run_dir = self.config, self.run_dir
        self._build(resume, from_saved_epoch=state is not None)
        s = self._restore(resume, state)
        val_u8, val_labels = self.images[self.idx["val"]], self.labels[self.idx["val"]]
        stop = False
        for epoch in range(s.first_epoch, config.epochs + 1):
            if stop or (should_stop is not None and should_stop()):
                break
            head_only = epoch <= config.freeze_epochs
            head = set(map(id, head_parameters(self.model)))
            for p in self.model.parameters():
                p.requires_grad_(not head_only or id(p) in head)

            def on_step(step, total, loss, epoch=epoch):
                if self.is_main and (step % 10 == 0 or step == total):
                    run_dir.set_status("running", epoch=epoch, epochs=config.epochs, step=step, steps=total, loss=loss)

            stats = train_one_epoch(self.train_model, self._loader(epoch), self.optimizer, self.scheduler,
                                    self.loss_fn, self.pre, self.device, epoch=epoch, epochs=config.epochs,
                                    augment=config.augment, augmentation=config.augmentation,
                                    amplitude_mix=config.amplitude_mix, random_conv=config.random_conv,
                                    source_mix=config.source_mix, patch_crop=config.patch_crop,
                                    progress=self.progress, ema=self.ema, adversary=self.adversary,
                                    group_dro=self.group_dro, source_contrast=config.source_contrast,
                                    mix_style=self.mix_style, source_prior=self.source_prior,
                                    on_step=on_step, should_stop=should_stop)
            val_metrics, *_ = evaluate(self.scored, val_u8, val_labels, self.classes, self.pre, self.device)
            # Early stopping watches macro AUC (accuracy when validation has a single class); ties, common once
            # AUC saturates, go to the lower validation loss.
            auc = val_metrics["macro_auc"] if val_metrics["macro_auc"] is not None else (val_metrics["accuracy"] or 0.0)
            score = (round(auc, 4), -val_metrics["nll"])
            improved = score > s.best_score
            if improved:
                s.best_score, s.bad_epochs = score, 0
            else:
                s.bad_epochs += 1
            row = {"epoch": epoch, "train_loss": stats["loss"], "val_loss": val_metrics["nll"],
                   "val_accuracy": val_metrics["accuracy"],
                   "val_macro_auc": val_metrics["macro_auc"], "val_ece": val_metrics["ece"],
                   "lr": self.optimizer.param_groups[0]["lr"], "seconds": stats["seconds"],
                   "images_per_s": stats["images"] * self.world / max(stats["seconds"], 1e-9),
                   "data_wait_share": stats["data_wait_share"], "best": improved,
                   **{k: stats[k] for k in ("source_loss", "contrast_loss") if k in stats}}
            if self.is_main:
                # The metrics line goes first: a kill before last.pt is written repeats this epoch on resume
                # (keep_metrics_through drops the orphan line) instead of losing its row.
                run_dir.append_metrics(row)
                self._save(epoch, improved, val_metrics, s)
                run_dir.set_status("running", epoch=epoch, epochs=config.epochs, step=0, steps=self.steps_per_epoch)
            if on_epoch is not None and on_epoch(row) is False:
                stop = True
            if s.bad_epochs >= config.patience:
                if self.is_main:
                    print(f"early stopping: validation macro AUC has not improved for {s.bad_epochs} epochs", flush=True)
                stop = True
        cancelled = should_stop is not None and should_stop()
        if self.is_main:
            finalize(run_dir, config, self.table, self.images, self.pre, self.classes, self.device,
                     training_time_s=time.time() - self.started, cancelled=cancelled, prepare_s=self.prepare_s)
