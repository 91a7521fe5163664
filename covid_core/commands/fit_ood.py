"""Refit a classifier checkpoint's out-of-distribution score with the current method.

Rebuilds the checkpoint's own TRAIN/VALIDATION split from its stored training settings, refuses a data
folder whose fingerprint differs from the one it was trained on, fits the OOD score exactly as training
does at its end (Gaussians on TRAIN, thresholds on VALIDATION; see covid_core/ood.py) and rewrites the
checkpoint in place (atomically). The weights, temperature and threshold are left untouched. Use it on
checkpoints trained before the current OOD method; a new training run already does this.
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="classifier checkpoint (.pt), rewritten in place")
    p.add_argument("--data", required=True, help="the data folder the checkpoint was trained on")


def main(args: argparse.Namespace) -> int:
    import numpy as np

    from ..checkpoint import atomic_save, load_checkpoint_dict, load_classifier
    from ..errors import CheckpointError, DatasetError
    from ..training import TrainConfig, fit_classifier_ood, prepare_data

    ckpt = load_checkpoint_dict(args.checkpoint)
    classifier = load_classifier(args.checkpoint)
    if not ckpt.get("train_config"):
        raise CheckpointError(f"{args.checkpoint} stores no training settings, so its validation split is unknown")
    config = TrainConfig.from_dict({**ckpt["train_config"], "data": args.data})
    table, images, pre, facts = prepare_data(config, progress=False)
    fingerprint = facts["data_fingerprint"]
    if ckpt.get("data_fingerprint") and fingerprint != ckpt["data_fingerprint"]:
        raise DatasetError(f"{args.data} has fingerprint {fingerprint}, but {args.checkpoint} was trained on "
                           f"{ckpt['data_fingerprint']}; refit on the same data")
    split, labels = table["split"].to_numpy(), table["label_idx"].to_numpy()
    idx = {s: np.flatnonzero(split == s) for s in ("train", "val")}
    ood = fit_classifier_ood(classifier.model, classifier.spec, images, labels, idx, pre, classifier.device)
    ood["refitted_with"] = f"python -m covid_core fit-ood {args.checkpoint} --data {args.data}"
    ckpt["ood"] = ood
    atomic_save(ckpt, args.checkpoint)
    print(f"{args.checkpoint}: OOD score refitted on {len(idx['train'])} TRAIN and {len(idx['val'])} VALIDATION "
          f"images ({', '.join(p['name'] for p in ood['parts'])}); {100 * ood['val_flagged']:.1f}% of VALIDATION "
          "flagged")
    return 0
