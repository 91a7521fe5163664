"""Classifier training as a small package: ``config`` (settings and their flags), ``loop`` (one epoch, one scoring
pass), ``adversary`` (the optional source head), ``group_dro`` (the optional worst-group loss),
``source_contrast`` (the optional contrast across sources), ``mix_style`` (the optional style mixing across
sources), ``source_prior`` (the optional source-only expert), ``distributed`` (devices, torchrun), ``classifier`` (a
run from folder to checkpoint) and ``finalize`` (calibration, threshold, TEST and shortcut figures)."""

from ..augment import augment_batch
from .classifier import prepare_data, run, training_table
from .config import RUN_FLAGS, TRAIN_FLAGS, TrainConfig
from .distributed import pick_device
from .finalize import finalize, fit_classifier_ood, per_source_metrics
from .loop import CachedXrays, evaluate, train_one_epoch

__all__ = ["RUN_FLAGS", "TRAIN_FLAGS", "CachedXrays", "TrainConfig", "augment_batch", "evaluate", "finalize",
           "fit_classifier_ood", "per_source_metrics", "pick_device", "prepare_data", "run", "train_one_epoch",
           "training_table"]
