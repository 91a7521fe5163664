"""The classifier's training settings (:class:`TrainConfig`) and their command-line flags (:data:`TRAIN_FLAGS`)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields

from ..augment import AUGMENTATION_CHOICES
from ..balance import BALANCE_CHOICES
from ..datasets import LAYOUTS, VAL_STRATA, stored_val_strata
from ..errors import ConfigError
from ..flags import MAX_BATCH, SEED_RULE, Flag, valid_seed
from ..models import get_spec, list_models
from ..preprocess import EQUALIZE_CHOICES, FIT_CHOICES, PreprocessConfig
from ..targets import TARGETS, check_target


@dataclass
class TrainConfig:
    """Every setting of a training run (saved as runs/<id>/config.json and in the checkpoint).

    The defaults are the recipe that docs/shortcuts.md chose from its tables (source-and-class balance, weight
    averaging, COVID-19 threshold at 90% VALIDATION sensitivity); the shipped models use it.
    """

    data: str = ""
    layout: str = "auto"
    skip_unreadable: bool = False
    target: str = "3class"
    model: str = "resnet18"
    epochs: int = 12
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    image_size: int | None = None
    fit: str = "pad"
    equalize: str = "none"
    augment: bool = True
    augmentation: str = "light"
    amplitude_mix: float = 0.0
    random_conv: float = 0.0
    source_mix: float = 0.0
    patch_crop: float = 0.0
    pretrained: str = "none"
    freeze_epochs: int = 0
    seed: int = 0
    val_fraction: float = 0.15
    val_strata: str = "finding"
    patience: int = 5
    balance: str = "group"
    label_smoothing: float = 0.0
    ema_decay: float = 0.99
    source_adversary: float = 0.0
    group_dro: float = 0.0
    source_contrast: float = 0.0
    mix_style: float = 0.0
    source_prior: float = 0.0
    holdout_source: str = ""
    covid_sensitivity: float = 0.90
    workers: int = 0
    limit: int | None = None
    device: str = "auto"
    runs_dir: str = ""
    run_id: str | None = None
    out: str | None = None

    def validate(self, resumed: bool = False) -> "TrainConfig":
        """Self, or ConfigError naming the first setting out of range. ``resumed``: the run continues from its own
        checkpoint, so a pretrained weights file no longer there does not matter."""
        get_spec(self.model)
        check_target(self.target)
        checks = [
            (isinstance(self.epochs, int) and 1 <= self.epochs <= 1000, "epochs must be a whole number from 1 to 1000"),
            (isinstance(self.batch_size, int) and 1 <= self.batch_size <= MAX_BATCH,
             f"batch size must be from 1 to {MAX_BATCH}"),
            (0 < self.lr <= 1, "learning rate must be above 0 and at most 1"),
            (0 <= self.weight_decay <= 1, "weight decay must be from 0 to 1"),
            (self.image_size is None or 32 <= self.image_size <= 1024, "image size must be from 32 to 1024"),
            (self.fit in FIT_CHOICES, f"fit must be one of: {', '.join(FIT_CHOICES)}"),
            (self.equalize in EQUALIZE_CHOICES, f"equalize must be one of: {', '.join(EQUALIZE_CHOICES)}"),
            (self.augmentation in AUGMENTATION_CHOICES,
             f"augmentation must be one of: {', '.join(AUGMENTATION_CHOICES)}"),
            (0 <= self.amplitude_mix <= 1, "amplitude mix must be a share from 0 (off) to 1"),
            (0 <= self.random_conv <= 1, "random convolution must be a share from 0 (off) to 1"),
            (0 <= self.source_mix <= 1, "source mix must be a share from 0 (off) to 1"),
            (self.patch_crop == 0 or 0.25 <= self.patch_crop < 1,
             "patch crop must be 0 (off) or a share of the side from 0.25 to below 1"),
            (self.augment or not (self.amplitude_mix or self.random_conv or self.source_mix or self.patch_crop),
             "amplitude mix, random convolution, source mix and patch crop are part of augmentation: turn "
             "augmentation on, or set them to 0"),
            (resumed or self.pretrained in ("none", "imagenet")
             or (isinstance(self.pretrained, str) and os.path.isfile(self.pretrained)),
             "pretrained must be none, imagenet, or the path of a weights file that exists"),
            (0 <= self.freeze_epochs < self.epochs or self.freeze_epochs == 0, "freeze epochs must be fewer than epochs"),
            (0 < self.val_fraction < 0.5, "validation fraction must be between 0 and 0.5"),
            (self.val_strata in VAL_STRATA, f"the validation split is stratified by one of {', '.join(VAL_STRATA)}"),
            (self.patience >= 1, "patience must be at least 1"),
            (valid_seed(self.seed), SEED_RULE),
            (self.balance in BALANCE_CHOICES, f"balance must be one of: {', '.join(BALANCE_CHOICES)}"),
            (0 <= self.label_smoothing < 0.5, "label smoothing must be from 0 to 0.5"),
            (self.ema_decay == 0 or 0.5 <= self.ema_decay < 1, "EMA decay must be 0 (off) or from 0.5 to below 1"),
            (0 <= self.source_adversary <= 10, "source adversary weight must be from 0 (off) to 10"),
            (0 <= self.group_dro <= 1, "group DRO step must be from 0 (off) to 1"),
            (0 <= self.source_contrast <= 10, "source contrast weight must be from 0 (off) to 10"),
            (0 <= self.mix_style <= 1, "MixStyle must be a share from 0 (off) to 1"),
            (0 <= self.source_prior <= 1, "source prior weight must be from 0 (off) to 1"),
            (isinstance(self.holdout_source, str) and len(self.holdout_source) <= 100,
             "the held-out sources must be source names (or source:class), comma-separated, of at most 100 "
             "characters in all"),
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
        d = {**d, "val_strata": stored_val_strata(d)}
        return cls(**{k: v for k, v in d.items() if k in known})

    def preprocess_config(self) -> PreprocessConfig:
        size = self.image_size or get_spec(self.model).default_image_size
        return PreprocessConfig(image_size=size, fit=self.fit, equalize=self.equalize)


# Where the data is and where the run goes: given to every run, never part of a model's recipe.
RUN_FLAGS = (
    Flag("data", "--data", "data folder (required unless --resume)"),
    Flag("layout", "--layout", "data set layout", choices=LAYOUTS),
    Flag("skip_unreadable", "--skip-unreadable", "train on the films that can be read, and name the others in the "
                                                 "log and the model card (by default one unreadable film stops the "
                                                 "run before it starts)", kind="bool"),
    Flag("device", "--device", "auto (CUDA, else MPS, else CPU), cpu, cuda, mps"),
    Flag("workers", "--workers", "DataLoader worker processes", int),
    Flag("runs_dir", "--runs-dir", "where run folders go (default: $COVID_CORE_RUNS or ./runs)"),
    Flag("run_id", "--run-id", "name of the run folder (default: date-model-random)"),
    Flag("out", "--out", "also copy the best checkpoint to this path"),
)

# The recipe, in the order a reader of a model card expects. epochs, batch size, learning rate, image size,
# limit and seed also serve the denoiser (train.py --task denoise), which has its own defaults.
TRAIN_FLAGS = (
    Flag("model", "--model", "architecture", choices=tuple(list_models())),
    Flag("target", "--target", "3class: normal/pneumonia/covid19; covid: positive/negative; pneumonia: "
                               "normal/pneumonia", choices=tuple(TARGETS)),
    Flag("image_size", "--image-size", "model input side in pixels (default: the model's own, e.g. 160 for "
                                       "resnet18, 128 for cnn)", int),
    Flag("epochs", "--epochs", "maximum epochs", int, shared=True),
    Flag("batch_size", "--batch-size", "images per step per process", int, shared=True),
    Flag("lr", "--lr", "peak learning rate, one-cycle cosine schedule", float, shared=True),
    Flag("weight_decay", "--weight-decay", "AdamW weight decay", float),
    Flag("fit", "--fit", "pad (keep whole image), crop to square, thorax (crop to the estimated lung fields), or "
                         "mask (crop as thorax, then black out everything outside the ellipse inscribed in that box)",
         choices=FIT_CHOICES),
    Flag("equalize", "--equalize", "contrast equalisation per film", choices=EQUALIZE_CHOICES),
    Flag("augment", "--augment", "small rotations/shifts/zoom and brightness/contrast changes (never flips)",
         kind="bool"),
    Flag("augmentation", "--augmentation", "light: small geometry and contrast changes; strong: also gamma, "
                                           "blur/sharpen, noise, lost resolution and erased borders and corners "
                                           "(where hospital markers sit)", choices=AUGMENTATION_CHOICES),
    Flag("amplitude_mix", "--amplitude-mix", "share of each batch that takes part of another film's Fourier "
                                             "amplitude spectrum, keeping its own phase (AmpMix), so sharpness, "
                                             "noise and contrast texture cannot name the hospital; 0 = off", float),
    Flag("random_conv", "--random-conv", "share of each batch passed through a random convolution mixed with the "
                                         "film (RandConv: new local texture and sharpness, same shapes); 0 = off",
         float),
    Flag("source_mix", "--source-mix", "share of each batch blended with a film of the same class from another "
                                       "source in provenance.csv, the class kept (LISA's intra-label mixup), so "
                                       "what tells the sources apart stops predicting the class; 0 = off", float),
    Flag("patch_crop", "--patch-crop", "train on a random square window of this share of each film's side, at its "
                                       "own scale (patch-based training: local lung texture, not the film's "
                                       "outline or corner text); the whole film is read at inference; 0 = off",
         float),
    Flag("pretrained", "--pretrained", "start from other weights: imagenet (torchvision's, downloaded or from "
                                       "the torch hub cache), or the path of a weights file of the same "
                                       "architecture (e.g. from bench/self_supervised.py; its head is not used)",
         str),
    Flag("freeze_epochs", "--freeze-epochs", "train only the head for the first N epochs", int),
    Flag("val_fraction", "--val-fraction", "share of TRAIN held out for validation (grouped by patient, "
                                           "stratified)", float),
    Flag("val_strata", "--val-strata", "what the validation split is stratified by: finding (normal, pneumonia, "
                                       "COVID-19: the same films for every target) or label (the target's classes)",
         choices=VAL_STRATA),
    Flag("patience", "--patience", "early stopping: epochs without val AUC gain", int),
    Flag("balance", "--balance", "imbalance: weighted loss by class, weighted sampler by class, weighted sampler "
                                 "by (source, class) group from provenance.csv (counters source confounds), or "
                                 "nothing", choices=BALANCE_CHOICES),
    Flag("label_smoothing", "--label-smoothing", "cross-entropy label smoothing", float),
    Flag("ema_decay", "--ema-decay", "keep an exponential moving average of the weights with this decay per step "
                                     "(e.g. 0.99) and validate and save it instead of the raw weights; 0 = off. "
                                     "A short run lowers the decay so that the average spans at most half of its "
                                     "steps", float),
    Flag("source_adversary", "--source-adversary", "weight of a domain-adversarial source head (gradient "
                                                   "reversal, conditioned on the class) that penalises features "
                                                   "naming the film's source from provenance.csv; 0 = off", float),
    Flag("group_dro", "--group-dro", "step size of group distributionally robust training (Group DRO): the "
                                     "loss of each (source, class) group from provenance.csv is weighted, each "
                                     "weight growing with its group's loss, so that easy groups, where the "
                                     "source gives the class away, cannot carry the mean; 0 = off",
         float),
    Flag("source_contrast", "--source-contrast", "weight of a contrastive loss on the penultimate features that "
                                                 "draws each film towards the films of its class from other "
                                                 "sources in provenance.csv, against its own source's films "
                                                 "(Correct-n-Contrast's positives); 0 = off", float),
    Flag("mix_style", "--mix-style", "share of each batch whose early feature maps take a mix of their own "
                                     "channel means and deviations (their style) and those of a film from "
                                     "another source in provenance.csv (MixStyle), so a hospital's style "
                                     "cannot name the class; 0 = off", float),
    Flag("source_prior", "--source-prior", "weight of p(class | source) from provenance.csv added to the logits "
                                           "in training only (a product of experts with a source-only model), so "
                                           "the network earns nothing for what the source alone predicts; "
                                           "0 = off", float),
    Flag("holdout_source", "--holdout-source", "leave this source (provenance.csv) out of TRAIN and VALIDATION; "
                                               "TEST keeps its films, so its within-source figures measure a "
                                               "source the model never saw. Several: comma-separated; one class "
                                               "of a source: source:class (e.g. cohen:normal)"),
    Flag("covid_sensitivity", "--covid-sensitivity", "the COVID-19 operating threshold is the one with the highest "
                                                     "VALIDATION specificity among those that keep validation "
                                                     "sensitivity at or above this", float),
    Flag("limit", "--limit", "use at most N images per split (quick experiments)", int),
    Flag("seed", "--seed", "random seed (splits, init, augmentation, order)", int),
)
