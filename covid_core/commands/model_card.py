"""Write a classifier's model card (weights/<name>.md) from its checkpoint's metadata.

With --data, first re-evaluates TEST (as `evaluate` does, and VALIDATION too when --data is the data set the
checkpoint was trained on: the same fingerprint), adds the normal-vs-pneumonia analysis, per-source results, the
texture swaps (covid_core.shortcuts.texture_swap) and the per-class Grad-CAM thorax share, and
stores them in the checkpoint under `card`; the TEST rates at the operating threshold (`threshold.test`) are
refreshed from the same evaluation, with their counts. A checkpoint from before the data set it was trained on was
recorded (`training_data`) gains that record when --data is that data set (the same fingerprint).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..outputs import output_file


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="classifier checkpoint (.pt)")
    p.add_argument("--data", default=None, help="data folder to (re)compute TEST results, per-source and thorax shares")
    p.add_argument("--out", default=None, help="markdown file (default: the checkpoint's path with .md)")
    p.add_argument("--cam-limit", type=int, default=40, help="images per class for the Grad-CAM thorax share")


def build_card_section(checkpoint: str, data: str, cam_limit: int = 40) -> dict:
    """The `card` dict: TEST and VALIDATION metrics, normal-vs-pneumonia, thorax share per class."""
    from ..checkpoint import load_classifier
    from ..explain import heatmap_description, mean_heatmaps_and_thorax_share
    from ..evaluation import covid_calls_at_threshold, pair_metrics
    from .evaluate import evaluate_checkpoint

    metrics, table, probs = evaluate_checkpoint(checkpoint, data, progress=False,
                                                advice="Fix or remove them: a card's TEST figures count every film")
    table = table[table["split"] == "test"]
    card = {"test": metrics, "normal_vs_pneumonia": pair_metrics(table["label_idx"].to_numpy(), probs, metrics["classes"])}
    classifier = load_classifier(checkpoint)
    if trained_on(classifier.metadata, data) is not None:
        # VALIDATION carved from TRAIN as the run carved it, re-measured (with its intervals); on another data set
        # that carving could hold films the model was trained on, so it is left as training measured it
        card["val"] = evaluate_checkpoint(checkpoint, data, split="val", progress=False,
                                          advice="Fix or remove them: a card's VALIDATION figures count every film")[0]
    threshold = classifier.threshold
    if threshold.get("class") in metrics["classes"]:
        covid = threshold["class"]
        card["covid_calls_at_threshold"] = covid_calls_at_threshold(
            table, probs[:, metrics["classes"].index(covid)], threshold["value"], covid)
        if "source" in table.columns:
            from ..cache import load_or_build
            from ..shortcuts import texture_swap

            test = table.reset_index(drop=True)
            images = load_or_build(test["path"].tolist(), classifier.preprocess, progress=False)
            card["texture_swap"] = texture_swap(classifier, test, images)
    shares = mean_heatmaps_and_thorax_share(classifier, data, split="test", limit=cam_limit).thorax_share
    card["thorax_share"] = {c: float(v) for c, v in shares.items() if v is not None}
    card["thorax_n"], card["thorax_sample"] = cam_limit, "seeded random"
    card["thorax_heatmap"] = heatmap_description(classifier)
    from ..decode import decode_image
    from ..ood import has_ood
    from ..ood_check import ood_check

    if has_ood(classifier.ood):
        test_xrays = [decode_image(p).pixels for p in table["path"]]
        card["ood_check"] = ood_check(classifier, test_xrays)
        card["ood_new_source"] = ood_leave_one_source_out(classifier, data)
    return card


def ood_leave_one_source_out(classifier, data: str) -> dict:
    """covid_core.ood.leave_one_source_out on the checkpoint's own TRAIN / VALIDATION / TEST films."""
    from ..cache import load_or_build
    from ..datasets import load_dataset, split_as_trained
    from ..inference import logits_and_features
    from ..ood import leave_one_source_out

    cfg = classifier.metadata.get("train_config") or {}
    table = split_as_trained(load_dataset(data).for_target(classifier.target), cfg)
    if "source" not in table:
        return {}
    images = load_or_build(table["path"].tolist(), classifier.preprocess, progress=False)
    _, feats = logits_and_features(classifier.model, images, classifier.preprocess, device=classifier.device,
                                   spatial_layer=classifier.spec.feature_layer(classifier.model))
    split, sources = table["split"].to_numpy(), table["source"].astype(str).to_numpy()

    def rows(name):
        m = split == name
        return {k: v[m] for k, v in feats.items()}, sources[m]

    (train_f, train_s), (val_f, val_s), (test_f, test_s) = rows("train"), rows("val"), rows("test")
    labels = table["label_idx"].to_numpy()[split == "train"]
    return leave_one_source_out(train_f, labels, train_s, val_f, val_s, test_f, test_s)


def trained_on(ckpt: dict, data: str):
    """(data set, training table) of ``data`` read as the checkpoint's training settings read their data, when it is
    the data set the checkpoint was trained on (the same fingerprint); else None."""
    from ..errors import DatasetError
    from ..training import TrainConfig, training_table

    cfg = ckpt.get("train_config")
    if not isinstance(cfg, dict) or not ckpt.get("data_fingerprint"):
        return None
    try:
        dataset, table = training_table(TrainConfig.from_dict({**cfg, "data": data}))
    except DatasetError:  # not readable as the training settings read their data: so not that data set
        return None
    return (dataset, table) if dataset.fingerprint() == ckpt["data_fingerprint"] else None


def training_data_from(ckpt: dict, data: str) -> dict | None:
    """The ``training_data`` record a checkpoint from before it was kept would hold, rebuilt from ``data`` when that is
    the data set it was trained on, with the films its training settings used; else None."""
    from ..training_data import training_data_record

    found = trained_on(ckpt, data)
    return None if found is None else training_data_record(found[0].root, found[0].layout, found[1])


def main(args: argparse.Namespace) -> int:
    from ..checkpoint import atomic_save, load_checkpoint_dict
    from ..cards.classifier import card_markdown
    from ..cards.dae import dae_card_markdown

    path = Path(args.checkpoint)
    ckpt = load_checkpoint_dict(path)
    out = output_file(args.out or path.with_suffix(".md"))
    for note in ckpt.get("damaged_sections") or []:
        print(f"warning: not in the card, damaged or laid out by another version: {note}", file=sys.stderr)
    if str(ckpt.get("format", "")).startswith("covid_core.dae"):
        out.write_text(dae_card_markdown(ckpt, path.name))
        print(f"wrote {out}")
        return 0
    if args.data:
        section = build_card_section(str(path), args.data, args.cam_limit)
        ckpt["card"] = {**ckpt.get("card", {}), **section}
        if "training_data" not in ckpt:
            record = training_data_from(ckpt, args.data)
            if record is None:
                print(f"note: {args.data} is not the data set this checkpoint was trained on (another fingerprint), "
                      "so the card cannot say which data set that was", file=sys.stderr)
            else:
                ckpt["training_data"] = record
        measured = section["test"].get("at_threshold")
        if measured and ckpt.get("threshold"):
            # The TEST rates at the stored threshold, measured again: older checkpoints gain their counts and NPV.
            ckpt["threshold"]["test"] = {k: v for k, v in measured.items() if k not in ("class", "threshold")}
        atomic_save(ckpt, path)
    out.write_text(card_markdown(ckpt, path.name, f"weights/{path.name}"))
    print(f"wrote {out}")
    return 0
