"""Would averaging each film's scores over a few shifted, turned and zoomed copies (test-time augmentation) help?

Each film is scored as it is and as 8 copies moved within the ``light`` training augmentation's range (rotation
+/-5 degrees, zoom 0.94 and 1.06, shift +/-4% across and down; never flipped: left and right matter on a chest
film); the copies' logits are averaged. For a fair comparison both rows refit the temperature on VALIDATION (the
split the checkpoint was trained with) and choose the COVID-19 threshold there as training does (the checkpoint's
``covid_sensitivity``), so the single-view row reproduces the stored ones. Printed per checkpoint and row: the
two VALIDATION within-source AUCs that are not saturated and their mean (rule 1 of docs/shortcuts.md), TEST macro
AUC, calibration error, the within-source AUCs, COVID-19 sensitivity / PPV; with ``--unseen S`` (every checkpoint
trained with ``--holdout-source S``) also the leave-one-source-out figures of bench/shortcut_ablation.py on S's
TRAIN films (rule 2), with the familiarity check of the film as it is, as the product withholds.

    python bench/test_time_augmentation.py --data DATA_DIR --checkpoints weights/resnet18.pt weights/cnn.pt
    python bench/test_time_augmentation.py --data DATA_DIR --unseen nih --checkpoints WITHOUT_NIH_S0.pt ...
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

#: (degrees, zoom, shift across, shift down; shifts as a share of the side) of each copy; the first is the film.
VIEWS = ((0, 1.0, 0, 0), (-5, 1.0, 0, 0), (5, 1.0, 0, 0), (0, 0.94, 0, 0), (0, 1.06, 0, 0),
         (0, 1.0, -0.04, 0), (0, 1.0, 0.04, 0), (0, 1.0, 0, -0.04), (0, 1.0, 0, 0.04))


def moved(images_u8: np.ndarray, degrees: float, zoom: float, dx: float, dy: float) -> np.ndarray:
    """uint8 NxSxS -> the same films turned, zoomed and shifted as training's augmentation moves them."""
    import torch
    from torch.nn import functional as F

    if (degrees, zoom, dx, dy) == (0, 1.0, 0, 0):
        return images_u8
    x = torch.as_tensor(np.array(images_u8))[:, None].float()
    a = math.radians(degrees)
    cos, sin = math.cos(a) / zoom, math.sin(a) / zoom
    theta = torch.tensor([[cos, -sin, 2 * dx], [sin, cos, 2 * dy]], dtype=torch.float32).expand(len(x), 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return out[:, 0].round().clamp(0, 255).to(torch.uint8).numpy()


def view_logits(clf, images_u8: np.ndarray) -> np.ndarray:
    """views x N x classes: the raw logits of each copy."""
    from covid_core.inference import logits_and_features

    return np.stack([logits_and_features(clf.model, moved(images_u8, *v), clf.preprocess, device=clf.device)[0]
                     for v in VIEWS])


def calibrated(clf, val_logits: np.ndarray, val_labels: np.ndarray) -> tuple[float, dict]:
    """(temperature, COVID-19 threshold) fitted on VALIDATION logits by training's own operating_point."""
    from covid_core.training.finalize import operating_point

    sensitivity = (clf.metadata.get("train_config") or {}).get("covid_sensitivity", 0.95)
    t, threshold, _ = operating_point(val_logits, val_labels, clf.classes, "covid19", sensitivity)
    return t, threshold


def figures(clf, logits: dict, tables: dict, unseen) -> dict:
    """One row's figures from its logits per split ("val", "test", and "unseen", "covid" with ``unseen``)."""
    from covid_core.inference import calibrated_probabilities
    from covid_core.metrics import classification_metrics, rates_at_threshold
    from covid_core.shortcuts import within_source_aucs
    from shortcut_ablation import figures_from_probabilities

    classes = list(clf.classes)
    t, thr = calibrated(clf, logits["val"], tables["val"]["label_idx"].to_numpy())
    p = {k: calibrated_probabilities(v, t) for k, v in logits.items()}
    val = within_source_aucs(tables["val"], p["val"], classes)
    test = within_source_aucs(tables["test"], p["test"], classes)
    m = classification_metrics(tables["test"]["label_idx"].to_numpy(), p["test"], classes)
    ci = classes.index("covid19")
    r = rates_at_threshold(tables["test"]["label"].to_numpy() == "covid19", p["test"][:, ci], thr["value"])

    def auc(d, key):
        return (d.get(key) or {}).get("auc")
    out = {"temperature": t, "threshold": thr["value"],
           "val_nih": auc(val, "nih_normal_vs_pneumonia"), "val_covid": auc(val, "cohen_covid_vs_other_pneumonia"),
           "test_macro": m["macro_auc"], "test_ece": m.get("ece"), "test_nih": auc(test, "nih_normal_vs_pneumonia"),
           "test_covid": auc(test, "cohen_covid_vs_other_pneumonia"),
           "sens_ppv": f"{r['sensitivity']:.3f} / {r['ppv']:.3f} ({r['fp']})"}
    pair = [v for v in (out["val_nih"], out["val_covid"]) if v is not None]
    out["rule1"] = float(np.mean(pair)) if pair else None
    if unseen is not None:
        labels, withheld = unseen
        out.update(figures_from_probabilities(p["unseen"], classes, labels, withheld, thr["value"], p["covid"]))
    return out


def checkpoint_rows(path: str, data: str, source: str) -> dict[str, dict]:
    """{"single view": figures, "mean of 9 views": figures} of one checkpoint."""
    from covid_core.cache import load_or_build
    from covid_core.checkpoint import load_classifier
    from covid_core.datasets import load_dataset, split_as_trained, without_source_in_training
    from covid_core.inference import score_pixels
    from shortcut_ablation import covid_test_films, familiarity_withheld, not_held_out, unseen_films

    clf = load_classifier(path)
    cfg = clf.metadata.get("train_config") or {}
    if source and (why := not_held_out(clf, path, source)):
        raise SystemExit(why)
    table = split_as_trained(without_source_in_training(load_dataset(data).for_target(clf.target),
                                                        cfg.get("holdout_source") or ""), cfg)
    tables = {s: table[table["split"] == s].reset_index(drop=True) for s in ("val", "test")}
    images = {s: load_or_build(t["path"].tolist(), clf.preprocess, progress=False) for s, t in tables.items()}
    unseen = None
    if source:
        images["unseen"], labels = unseen_films(clf, data, source)
        images["covid"] = covid_test_films(clf, data)
        unseen = (labels, familiarity_withheld(clf, score_pixels(clf, images["unseen"])))
    views = {s: view_logits(clf, x) for s, x in images.items()}
    return {"single view": figures(clf, {s: v[0] for s, v in views.items()}, tables, unseen),
            f"mean of {len(VIEWS)} views": figures(clf, {s: v.mean(0) for s, v in views.items()}, tables, unseen)}


COLUMNS = {"rule1": "VAL rule 1 (mean of the two)", "val_nih": "VAL NIH n/p", "val_covid": "VAL COVID vs other",
           "test_macro": "TEST macro AUC", "test_ece": "TEST ECE", "test_nih": "TEST NIH n/p",
           "test_covid": "TEST COVID vs other", "sens_ppv": "COVID sens / PPV (FP)", "threshold": "threshold"}
UNSEEN_COLUMNS = {"unseen_normal_vs_pneumonia": "unseen n/p AUC",
                  "unseen_normal_vs_covid": "unseen normals vs TEST COVID-19 AUC",
                  "unseen_normals_called_covid": "unseen normals most probably COVID-19",
                  "unseen_withheld": "unseen withheld",
                  "unseen_wrong_positive": "unseen given a wrong COVID-19 verdict"}


def cell(v) -> str:
    return "n/a" if v is None else v if isinstance(v, str) else f"{v:.3f}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--checkpoints", nargs="+", default=["weights/resnet18.pt"])
    ap.add_argument("--unseen", default="", help="the source every checkpoint was trained without")
    args = ap.parse_args()
    columns = {**COLUMNS, **(UNSEEN_COLUMNS if args.unseen else {})}
    print("| checkpoint | scoring | " + " | ".join(columns.values()) + " | s |")
    print("|---|---|" + "---|" * len(columns) + "---|")
    for path in args.checkpoints:
        start = time.perf_counter()
        rows = checkpoint_rows(path, args.data, args.unseen)
        seconds = time.perf_counter() - start
        for name, f in rows.items():
            print(f"| {Path(path).name} | {name} | " + " | ".join(cell(f.get(k)) for k in columns)
                  + f" | {seconds:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
