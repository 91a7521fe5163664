"""Can the classifier's head be kept from reading the source? Erase the source from the penultimate features
within each class, refit the head, and score it as the shipped head is scored.

The network's backbone stays as trained. Its penultimate features of the TRAIN films (the split the checkpoint was
trained with) are standardised; inside each class, the directions along which the sources differ are projected
out ("mean": the differences between each source's class mean and the class mean, the class means themselves kept;
"inlp": iterative nullspace projection after Ravfogel et al., ACL 2020, a linear probe naming the source inside
each class, its weight directions removed, K rounds). A multinomial logistic head, group-balanced as
``--balance group`` balances, is then fitted on the erased TRAIN features, its temperature and COVID-19 threshold
(90% sensitivity) on VALIDATION. The "none" row refits the head on the same features without erasing anything:
the control for everything but the erasure.

For a checkpoint trained on every source: TEST macro AUC, calibration error, the within-source AUCs, COVID-19
sensitivity / PPV, and the source probe on the erased TEST features. For one trained with ``--holdout-source S``
(``--unseen S``): the held-out source's TRAIN films, which that network never saw, scored as
``bench/shortcut_ablation.py`` scores them (normal vs pneumonia AUC, its normals against TEST's COVID-19 films,
wrong COVID-19 verdicts with the familiarity check on, whose features the erasure does not change).

    python bench/source_erasure.py --data DATA_DIR --checkpoint weights/resnet18.pt
    python bench/source_erasure.py --data DATA_DIR --checkpoint WITHOUT_NIH.pt --unseen nih
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

MIN_GROUP = 8  # films of one source inside one class needed to estimate that source's direction


def _groups(labels: np.ndarray, sources: np.ndarray):
    """(class, rows of that class, the sources inside it with at least MIN_GROUP films)."""
    for c in np.unique(labels):
        rows = labels == c
        kept = [s for s in np.unique(sources[rows]) if (sources[rows] == s).sum() >= MIN_GROUP]
        if len(kept) > 1:
            yield c, rows, kept


def _orthonormal(directions: list[np.ndarray]) -> np.ndarray:
    u, s, _ = np.linalg.svd(np.stack(directions, 1), full_matrices=False)
    return u[:, s > 1e-6 * s.max()]


def mean_directions(x: np.ndarray, labels: np.ndarray, sources: np.ndarray) -> np.ndarray:
    """D x K orthonormal: inside each class, each source's mean minus the class mean."""
    directions = []
    for _, rows, kept in _groups(labels, sources):
        centre = x[rows].mean(0)
        directions += [x[rows & (sources == s)].mean(0) - centre for s in kept]
    return _orthonormal(directions)


def inlp_directions(x: np.ndarray, labels: np.ndarray, sources: np.ndarray, rounds: int, seed: int = 0) -> np.ndarray:
    """D x K orthonormal: ``rounds`` times, a linear probe per class names the source of class-centred features
    (sources balanced), and its weight directions are projected out before the next round."""
    from sklearn.linear_model import LogisticRegression

    basis = np.zeros((x.shape[1], 0))
    for _ in range(rounds):
        found = []
        for _, rows, kept in _groups(labels, sources):
            inside = rows & np.isin(sources, kept)
            z = x[inside] - x[inside].mean(0)
            z = z - (z @ basis) @ basis.T
            probe = LogisticRegression(C=0.1, max_iter=2000, class_weight="balanced", random_state=seed)
            probe.fit(z, sources[inside])
            found += list(probe.coef_)
        basis = _orthonormal([*basis.T, *found])
    return basis


def erase(x: np.ndarray, basis: np.ndarray) -> np.ndarray:
    return x - (x @ basis) @ basis.T


def fit_head(x: np.ndarray, labels: np.ndarray, sources: np.ndarray, n_classes: int, c: float):
    from sklearn.linear_model import LogisticRegression

    from covid_core.balance import group_sample_weights

    head = LogisticRegression(C=c, max_iter=5000)
    head.fit(x, labels, sample_weight=group_sample_weights(labels, sources))
    assert list(head.classes_) == list(range(n_classes))
    return head


def calibrated(head, x: np.ndarray, temperature: float) -> np.ndarray:
    from covid_core.inference import calibrated_probabilities

    return calibrated_probabilities(head.decision_function(x), temperature)


def features(clf, table) -> np.ndarray:
    from covid_core.cache import load_or_build
    from covid_core.inference import logits_and_features

    images = load_or_build(table["path"].tolist(), clf.preprocess, progress=False)
    return logits_and_features(clf.model, images, clf.preprocess, device=clf.device)[1]["penultimate"]


def row(name: str, basis: np.ndarray, feats: dict, tables: dict, classes: list[str], c: float, unseen=None) -> str:
    import torch

    from covid_core.metrics import (choose_threshold, classification_metrics, fit_temperature,
                                    rates_at_threshold)
    from covid_core.shortcuts import source_probe, within_source_aucs
    from shortcut_ablation import figures_from_probabilities

    ci = classes.index("covid19")
    x = {k: erase(v, basis) for k, v in feats.items()}
    y = {k: t["label_idx"].to_numpy() for k, t in tables.items()}
    head = fit_head(x["train"], y["train"], tables["train"]["source"].to_numpy(), len(classes), c)
    temperature = fit_temperature(torch.as_tensor(head.decision_function(x["val"])), torch.as_tensor(y["val"].copy()))
    p = {k: calibrated(head, x[k], temperature) for k in ("val", "test")}
    threshold = choose_threshold(y["val"] == ci, p["val"][:, ci], min_sensitivity=0.90)["value"]
    m = classification_metrics(y["test"], p["test"], classes)
    w = within_source_aucs(tables["test"], p["test"], classes)
    wv = within_source_aucs(tables["val"], p["val"], classes)
    r = rates_at_threshold(y["test"] == ci, p["test"][:, ci], threshold)
    probe = source_probe(x["test"], tables["test"]["source"].to_numpy(), tables["test"]["patient"].to_numpy())

    def auc(d, key):
        v = (d.get(key) or {}).get("auc")
        return "n/a" if v is None else f"{v:.3f}"

    keys = ("nih_normal_vs_pneumonia", "kermany_normal_vs_pneumonia", "cohen_covid_vs_other_pneumonia")
    cells = [name, str(basis.shape[1]), *(auc(wv, k) for k in keys), f"{m['macro_auc']:.3f}", f"{m['ece']:.3f}",
             *(auc(w, k) for k in keys), f"{r['sensitivity']:.3f} / {r['ppv']:.3f} ({r['fp']})",
             f"{probe['accuracy']:.3f}" if probe else "n/a"]
    if unseen is not None:
        films, labels, withheld, covid = unseen
        u = figures_from_probabilities(calibrated(head, erase(films, basis), temperature), classes, labels,
                                       withheld, threshold, calibrated(head, erase(covid, basis), temperature))
        cells += [f"{u['unseen_normal_vs_pneumonia']:.3f}", f"{u['unseen_normal_vs_covid']:.3f}",
                  f"{u['unseen_normals_called_covid']:.3f}", f"{u['unseen_withheld']:.3f}",
                  f"{u['unseen_wrong_positive']:.3f}"]
    return "| " + " | ".join(cells) + " |"


def unseen_films(clf, data: str, source: str, mean: np.ndarray, std: np.ndarray):
    """(standardised features, labels, withheld by the product's familiarity check, standardised features of
    TEST's COVID-19 films) for the held-out source's TRAIN films."""
    from covid_core.inference import score_pixels
    from shortcut_ablation import covid_test_films, familiarity_withheld
    from shortcut_ablation import unseen_films as films_of

    images, labels = films_of(clf, data, source)
    scores = score_pixels(clf, images, orientation=True)  # its penultimate features are the head's input too
    covid = score_pixels(clf, covid_test_films(clf, data), orientation=False)
    return ((scores.penultimate - mean) / std, labels, familiarity_withheld(clf, scores),
            (covid.penultimate - mean) / std)


def main() -> int:
    from covid_core.checkpoint import load_classifier
    from covid_core.datasets import load_dataset, split_as_trained, without_source_in_training

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--checkpoint", default="weights/resnet18.pt")
    ap.add_argument("--unseen", default="", help="the source the checkpoint was trained without")
    ap.add_argument("--inlp-rounds", default="1,2,4,8")
    ap.add_argument("--c", type=float, default=0.1, help="the head's inverse regularisation")
    args = ap.parse_args()
    clf = load_classifier(args.checkpoint)
    cfg = clf.metadata.get("train_config") or {}
    if (cfg.get("holdout_source") or "") != args.unseen:
        ap.error(f"{args.checkpoint} was trained without {cfg.get('holdout_source')!r}, not {args.unseen!r}")
    table = without_source_in_training(load_dataset(args.data).for_target(clf.target), args.unseen)
    table = split_as_trained(table, cfg)
    tables = {s: table[table["split"] == s].reset_index(drop=True) for s in ("train", "val", "test")}
    raw = {s: features(clf, t) for s, t in tables.items()}
    mean, std = raw["train"].mean(0), raw["train"].std(0) + 1e-6
    feats = {s: (v - mean) / std for s, v in raw.items()}
    labels, sources = tables["train"]["label_idx"].to_numpy(), tables["train"]["source"].to_numpy()
    unseen = unseen_films(clf, args.data, args.unseen, mean, std) if args.unseen else None
    classes = list(clf.classes)
    bases = {"none (head refit)": np.zeros((feats["train"].shape[1], 0)),
             "mean": mean_directions(feats["train"], labels, sources)}
    for k in (int(v) for v in args.inlp_rounds.split(",") if v):
        bases[f"inlp {k}"] = inlp_directions(feats["train"], labels, sources, k)
    head = ["erasure", "directions", "VAL NIH n/p", "VAL Kermany n/p", "VAL COVID vs other", "TEST macro AUC",
            "TEST ECE", "TEST NIH n/p", "TEST Kermany n/p", "TEST COVID vs other", "COVID sens / PPV (FP)",
            "source probe"]
    if unseen is not None:
        head += ["unseen n/p AUC", "unseen normals vs TEST COVID-19 AUC", "unseen normals most probably COVID-19",
                 "unseen withheld", "unseen given a wrong COVID-19 verdict"]
    print(f"{args.checkpoint}, head C = {args.c}")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for name, basis in bases.items():
        print(row(name, basis, feats, tables, classes, args.c, unseen), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
