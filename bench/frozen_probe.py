"""A linear classifier on a frozen backbone's features: do self-supervised features carry the disease to an unseen
hospital when no label ever shaped them?

Fine-tuning lets the labels, and with them the sources, reshape every layer. Here the backbone stays as
``bench/self_supervised.py`` left it (or random, the control), and only a logistic regression (standardised
features, group-balanced sample weights, C chosen on VALIDATION macro AUC) learns the three classes from the
TRAIN films of a run with ``--holdout-source``. Printed: VALIDATION and TEST macro AUC, TEST's within-source AUCs,
and on the held-out source's TRAIN films (unseen) normal vs pneumonia AUC, their normals against TEST's COVID-19
films, the share of normals most probably COVID-19 and the share of films that would get a COVID-19 positive
verdict at the threshold the product would choose (the highest VALIDATION specificity with 90% of its COVID-19 films
positive; nothing withheld: this probe has no familiarity score).

    python bench/frozen_probe.py --data ../shared/data/coronahack-mini --holdout-source nih \
        --backbones none runs/ssl/resnet18-simclr-without-nih.pt
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from covid_core.balance import group_sample_weights  # noqa: E402
from covid_core.metrics import binary_auc, choose_threshold, classification_metrics  # noqa: E402
from covid_core.models import build_model  # noqa: E402
from covid_core.preprocess import to_model_input  # noqa: E402
from covid_core.shortcuts import within_source_aucs  # noqa: E402
from covid_core.training.classifier import prepare_data  # noqa: E402
from covid_core.training.config import TrainConfig  # noqa: E402
from covid_core.training.finalize import split_indices  # noqa: E402

CLASSES = ["normal", "pneumonia", "covid19"]


def features(backbone: str, images: np.ndarray, pre, seed: int) -> np.ndarray:
    torch.manual_seed(seed)
    model = build_model("resnet18", 3, None if backbone == "none" else backbone)
    model.fc = nn.Identity()
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(images), 64):
            out.append(model(to_model_input(images[i:i + 64], pre)).numpy())
    return np.concatenate(out)


def probe_figures(backbone: str, args) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    config = TrainConfig(data=args.data, image_size=args.image_size, seed=args.seed,
                         holdout_source=args.holdout_source)
    table, images, pre, _ = prepare_data(config, progress=False)
    full, full_images, _, _ = prepare_data(TrainConfig(data=args.data, image_size=args.image_size, seed=args.seed),
                                           progress=False)
    unseen = ((full["source"] == args.holdout_source) & (full["split"] != "test")).to_numpy()
    started = time.time()
    feats = features(backbone, np.concatenate([images, full_images[unseen]]), pre, args.seed)
    seen_f, unseen_f = feats[:len(images)], feats[len(images):]
    labels = table["label_idx"].to_numpy()
    unseen_labels = full["label_idx"].to_numpy()[unseen]
    idx = split_indices(table)
    scaler = StandardScaler().fit(seen_f[idx["train"]])
    x, xu = scaler.transform(seen_f), scaler.transform(unseen_f)
    weights = group_sample_weights(labels[idx["train"]], table["source"].to_numpy()[idx["train"]])
    best = None
    for c in (0.001, 0.01, 0.1, 1.0):
        head = LogisticRegression(C=c, max_iter=3000).fit(x[idx["train"]], labels[idx["train"]],
                                                          sample_weight=weights)
        val = classification_metrics(labels[idx["val"]], head.predict_proba(x[idx["val"]]), CLASSES)["macro_auc"]
        if best is None or val > best[0]:
            best = (val, c, head)
    val_auc, c, head = best
    probs, unseen_probs = head.predict_proba(x), head.predict_proba(xu)
    covid = CLASSES.index("covid19")
    threshold = choose_threshold(labels[idx["val"]] == covid, probs[idx["val"], covid], 0.90)["value"]
    test = idx["test"]
    within = within_source_aucs(table.iloc[test], probs[test], CLASSES)

    normal_u = unseen_labels == 0
    test_covid = test[labels[test] == covid]
    return {"backbone": backbone, "C": c, "seconds": round(time.time() - started, 1),
            "val_macro_auc": val_auc, "test_macro_auc": classification_metrics(labels[test], probs[test],
                                                                               CLASSES)["macro_auc"],
            **{f"test_{key}": within[key]["auc"] for key in ("nih_normal_vs_pneumonia",
                                                              "cohen_covid_vs_other_pneumonia") if key in within},
            "unseen_n": int(len(unseen_labels)),
            "unseen_normal_vs_pneumonia": binary_auc(~normal_u, 1 - unseen_probs[:, 0]),
            "unseen_normal_vs_covid": binary_auc(np.r_[np.zeros(normal_u.sum(), bool), np.ones(len(test_covid), bool)],
                                                 np.r_[unseen_probs[normal_u, covid], probs[test_covid, covid]]),
            "unseen_normals_called_covid": float((unseen_probs[normal_u].argmax(1) == covid).mean()),
            "unseen_positive_nothing_withheld": float((unseen_probs[:, covid] >= threshold).mean()),
            "test_covid_sensitivity": float((probs[test_covid, covid] >= threshold).mean())}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--holdout-source", default="nih")
    p.add_argument("--backbones", nargs="+", required=True, help="weights files, or none for a random backbone")
    p.add_argument("--image-size", type=int, default=160)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    for backbone in args.backbones:
        print(json.dumps(probe_figures(backbone, args)), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
