"""One epoch of training and one scoring pass, as in torchvision's references/classification/train.py."""

from __future__ import annotations

import contextlib
import time
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from ..augment import augment_batch, mix_across_sources, random_window
from ..inference import calibrated_probabilities, logits_and_features
from ..metrics import classification_metrics
from ..models import model_features
from ..preprocess import PreprocessConfig, normalize
from .adversary import UNKNOWN_SOURCE
from .source_contrast import source_contrast_loss



class CachedXrays(Dataset):
    """Items (uint8 1xSxS tensor, label, source code) read from the image cache; augmentation happens per batch
    in the training step (:func:`augment_batch`), where it costs one grid_sample for the whole batch."""

    def __init__(self, images: np.ndarray, indices: np.ndarray, labels: np.ndarray, sources: np.ndarray | None = None):
        self.images, self.indices, self.labels = images, np.asarray(indices), np.asarray(labels)
        self.sources = np.full(len(self.indices), UNKNOWN_SOURCE) if sources is None else np.asarray(sources)

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, i):
        return (torch.from_numpy(np.array(self.images[self.indices[i]]))[None], int(self.labels[i]),
                int(self.sources[i]))


def train_one_epoch(model, loader, optimizer, scheduler, loss_fn, config: PreprocessConfig, device, *,
                    epoch: int, epochs: int, augment: bool = True, augmentation: str = "light",
                    amplitude_mix: float = 0.0, random_conv: float = 0.0, source_mix: float = 0.0,
                    patch_crop: float = 0.0, progress: bool = True, ema=None, adversary=None, group_dro=None,
                    source_contrast: float = 0.0, mix_style=None, source_prior=None,
                    on_step: Callable | None = None, should_stop: Callable | None = None) -> dict:
    """One pass over ``loader``; returns {"loss" (the classification loss), "images", "seconds",
    "data_wait_share"}, and "source_loss" with an ``adversary`` (a
    :class:`~covid_core.training.adversary.SourceAdversary` whose loss is added to the objective). With
    ``group_dro`` (a :class:`~covid_core.training.group_dro.GroupDRO`) the objective's classification part is
    its weighted group loss instead of ``loss_fn``'s mean, which is still what "loss" reports. With
    ``source_contrast`` that weight times :func:`~covid_core.training.source_contrast.source_contrast_loss` is
    added, and reported as "contrast_loss". With ``mix_style`` (a
    :class:`~covid_core.training.mix_style.MixStyle` hooked into the model) each forward pass mixes styles across
    the batch's sources. With ``source_prior`` (a :class:`~covid_core.training.source_prior.SourcePrior`) the
    loss reads the logits plus the log of p(class | source), and "loss" reports that.

    ``ema`` (a :class:`torch.optim.swa_utils.AveragedModel`) is updated after every optimiser step.
    """
    from tqdm import tqdm

    model.train()
    total_loss, source_loss, contrast_loss, seen, waited = 0.0, 0.0, 0.0, 0, 0.0
    start = time.perf_counter()
    with_features = adversary is not None or source_contrast > 0
    bar = tqdm(loader, desc=f"epoch {epoch}/{epochs}", unit="batch", disable=not progress, dynamic_ncols=True)
    tick = time.perf_counter()
    for step, (x_u8, y, source) in enumerate(bar):
        waited += time.perf_counter() - tick
        x = x_u8.to(device, non_blocking=True).float().div_(255.0)
        if augment:
            x = mix_across_sources(augment_batch(x, augmentation, amplitude_mix, random_conv), y, source, source_mix)
            x = random_window(x, patch_crop)
        x = normalize(x, config).contiguous(memory_format=torch.channels_last)
        y, source = y.to(device, non_blocking=True), source.to(device, non_blocking=True)
        with (torch.autocast(device.type, enabled=device.type == "cuda"),
              mix_style.batch(source) if mix_style is not None else contextlib.nullcontext()):
            logits, features = model_features(model, x) if with_features else (model(x), None)
            if source_prior is not None:
                logits = source_prior.adjust(logits, source)
            loss = objective = loss_fn(logits, y)
            if group_dro is not None:
                objective = group_dro.loss(logits, y, source)
            if adversary is not None:
                adv = adversary.loss(features["penultimate"], y, source,
                                     progress=(epoch - 1 + step / len(loader)) / epochs)
                source_loss += float(adv.detach()) * len(y)
                objective = objective + adv
            if source_contrast > 0:
                contrast = source_contrast_loss(features["penultimate"], y, source)
                contrast_loss += float(contrast.detach()) * len(y)
                objective = objective + source_contrast * contrast
        optimizer.zero_grad(set_to_none=True)
        objective.backward()
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
    stats = {"loss": total_loss / max(seen, 1), "images": seen, "seconds": seconds,
             "data_wait_share": waited / max(seconds, 1e-9)}
    if adversary is not None:
        stats["source_loss"] = source_loss / max(seen, 1)
    if source_contrast > 0:
        stats["contrast_loss"] = contrast_loss / max(seen, 1)
    return stats


def evaluate(model, images_u8, labels, classes, config: PreprocessConfig, device, temperature: float = 1.0,
             batch_size: int = 64) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray]:
    """(metrics dict, calibrated probabilities NxC, logits NxC, penultimate features NxD) on uint8 NxSxS images."""
    logits, feats = logits_and_features(getattr(model, "module", model), images_u8, config, batch_size, device)
    probs = calibrated_probabilities(logits, temperature)
    return classification_metrics(labels, probs, classes), probs, logits, feats.get("penultimate")
