"""After the last epoch: calibrate, choose the COVID-19 threshold, fit the familiarity score, score TEST
and the shortcut figures (texture swaps included), and write them into the best checkpoint."""

from __future__ import annotations

import time

import numpy as np
import torch

from .. import __version__
from ..checkpoint import Classifier, atomic_save, load_checkpoint_dict
from ..evaluation import macro_auc_interval, per_source_metrics
from ..inference import calibrated_probabilities, logits_and_features
from ..metrics import choose_threshold, classification_metrics, fit_temperature, rates_at_threshold, roc_points
from ..models import build_model, get_spec
from ..ood import fit_ood
from ..preprocess import PreprocessConfig
from ..runs import RunDir, hardware_description
from ..shortcuts import shortcut_report, texture_swap
from ..targets import COVID_CLASS
from .config import TrainConfig
from .loop import evaluate


def fit_classifier_ood(model, spec, images_u8, labels, idx: dict, config: PreprocessConfig, device) -> dict:
    """The checkpoint's ``ood`` entry: Gaussians fitted on the TRAIN rows, thresholds on the VAL rows (see ood.py)."""
    model = getattr(model, "module", model)
    layer = spec.feature_layer(model)
    _, train_feats = logits_and_features(model, images_u8[idx["train"]], config, 64, device, layer)
    _, val_feats = logits_and_features(model, images_u8[idx["val"]], config, 64, device, layer)
    return fit_ood(train_feats, labels[idx["train"]], val_feats)


def class_counts(table) -> dict:
    return {s: {str(k): int(v) for k, v in table[table.split == s]["label"].value_counts().items()}
            for s in ("train", "val", "test")}


def operating_point(val_logits: np.ndarray, val_labels: np.ndarray, classes, covid: str | None,
                    min_sensitivity: float) -> tuple[float, dict, np.ndarray]:
    """(temperature, COVID-19 threshold, calibrated VALIDATION probabilities) as training fits them on VALIDATION:
    the temperature first, then the lowest threshold that keeps ``min_sensitivity`` of the ``covid`` class's films
    ({} without that class)."""
    labels = np.array(val_labels)  # a copy: torch warns of a read-only array
    temperature = fit_temperature(torch.as_tensor(val_logits), torch.as_tensor(labels))
    val_probs = calibrated_probabilities(val_logits, temperature)
    threshold = {}
    if covid in classes:
        ci = list(classes).index(covid)
        threshold = {"class": covid, **choose_threshold(labels == ci, val_probs[:, ci],
                                                        min_sensitivity=min_sensitivity)}
    return temperature, threshold, val_probs


def split_indices(table) -> dict[str, np.ndarray]:
    split = table["split"].to_numpy()
    return {s: np.flatnonzero(split == s) for s in ("train", "val", "test")}


def finalize(run_dir: RunDir, config: TrainConfig, table, images, pre, classes, device,
             training_time_s: float, cancelled: bool = False, prepare_s: float | None = None) -> None:
    """Calibrate, set the threshold and OOD score on VALIDATION, evaluate TEST, rewrite best.pt.

    ``training_time_s`` (time so far) grows by this step's own time; ``timing`` in the checkpoint splits it
    into data preparation (decode + cache), each epoch, and this calibration/evaluation step.
    """
    from dataclasses import asdict

    finalize_started = time.time()
    if not run_dir.best_checkpoint.is_file():
        run_dir.set_status("cancelled" if cancelled else "failed", error="no epoch finished")
        return
    run_dir.set_status("evaluating")
    ckpt = load_checkpoint_dict(run_dir.best_checkpoint)
    model = build_model(config.model, len(classes)).to(device)
    model.load_state_dict(ckpt["state_dict"])
    labels = table["label_idx"].to_numpy()
    idx = split_indices(table)

    _, _, val_logits, val_features = evaluate(model, images[idx["val"]], labels[idx["val"]], classes, pre, device)
    covid = COVID_CLASS.get(config.target)
    temperature, threshold, val_probs = operating_point(val_logits, labels[idx["val"]], classes, covid,
                                                        config.covid_sensitivity)
    val_metrics = classification_metrics(labels[idx["val"]], val_probs, classes)
    ood = fit_classifier_ood(model, get_spec(config.model), images, labels, idx, pre, device)

    val_metrics["shortcuts"] = shortcut_report(table.iloc[idx["val"]].reset_index(drop=True), val_probs, classes,
                                               val_features)
    metrics = {"val": val_metrics}
    if len(idx["test"]):
        test_metrics, test_probs, _, test_features = evaluate(model, images[idx["test"]], labels[idx["test"]],
                                                                 classes, pre, device, temperature)
        test_table = table.iloc[idx["test"]]
        test_metrics.update(macro_auc_interval(test_table, test_probs))
        test_metrics["per_source"] = per_source_metrics(test_table, test_probs, classes)
        test_metrics["shortcuts"] = shortcut_report(test_table.reset_index(drop=True), test_probs, classes,
                                                    test_features)
        if threshold:
            ci = classes.index(covid)
            threshold["test"] = rates_at_threshold(labels[idx["test"]] == ci, test_probs[:, ci], threshold["value"])
        metrics["test"] = test_metrics
        metrics["test_roc"] = roc_points(labels[idx["test"]], test_probs, classes)
        swaps = texture_swap(Classifier(model=model.eval(), spec=get_spec(config.model), classes=tuple(classes),
                                        target=config.target, preprocess=pre, temperature=temperature,
                                        threshold=threshold, ood=ood),
                             test_table.reset_index(drop=True), images[idx["test"]])
        if swaps:  # where `model-card --data` keeps them, so a new run's card and Models page show them too
            ckpt["card"] = {**(ckpt.get("card") or {}), "texture_swap": swaps}
    finalize_s = time.time() - finalize_started
    training_time_s += finalize_s
    timing = {"prepare_s": None if prepare_s is None else round(prepare_s, 1), "finalize_s": round(finalize_s, 1),
              "epoch_s": [round(float(r.get("seconds", 0.0)), 1) for r in run_dir.metrics()]}
    ckpt.update(metrics=metrics, temperature=temperature, threshold=threshold, ood=ood, timing=timing,
                class_counts=class_counts(table), created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                package_version=__version__, training_time_s=round(training_time_s, 1),
                hardware=hardware_description(device), torch_version=str(torch.__version__),
                train_config=asdict(config))
    atomic_save(ckpt, run_dir.best_checkpoint)
    summary = {k: metrics.get("test", metrics["val"]).get(k) for k in ("n", "accuracy", "macro_auc", "ece")}
    run_dir.write_json("result.json", {"metrics": metrics, "temperature": temperature, "threshold": threshold,
                                       "training_time_s": training_time_s})
    if not cancelled:  # a cancelled run keeps its best-so-far in the run folder only
        run_dir.publish(config.out)
    run_dir.set_status("cancelled" if cancelled else "finished", summary=summary,
                       checkpoint=str(run_dir.best_checkpoint))
