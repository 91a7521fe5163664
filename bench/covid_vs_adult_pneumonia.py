"""Can this data teach a classifier to tell COVID-19 from other pneumonia in adults? The COVID-19 PPV ceiling.

In coronahack-mini the adult films with a non-COVID pneumonia come from two places: 391 NIH films (one US
hospital) and 48 films of the COVID-19 image collection (source 'cohen', among them SARS and ARDS, whose chest
films look like COVID-19's). Every COVID-19 film comes from the COVID-19 collections. A model that calls
COVID-19 on "adult film with opacities, not from NIH" scores well on everything else and fails exactly on the
cohen non-COVID films, which is what caps COVID-19 PPV. This script measures
how far apart the two groups are for a classifier checkpoint, on TRAIN + VALIDATION only:

  own score  the checkpoint's calibrated p(COVID-19) within the adult pneumonia films (COVID-19 vs other): AUC,
             and how many non-COVID ones reach its operating threshold, per split (VALIDATION and TEST films
             are only scored, never fitted on);
  probe      a logistic regression on the checkpoint's penultimate features, fitted and scored by 5-fold
             cross-validation grouped by patient (repeated over 5 seeds), on TRAIN + VALIDATION films: AUC and
             specificity at 95% sensitivity. The same probe on paediatric normal vs pneumonia (Kermany films,
             where the data set has hundreds of each) is the baseline printed beside it;
  ceiling    the TEST PPV that specificity allows at 95% COVID-19 sensitivity if every other TEST film were
             classified right: 0.95 n_covid / (0.95 n_covid + (1 - specificity) n_adult_non_covid).

Both probe figures are optimistic, so the ceiling is too: the features were learned on these very TRAIN films,
and the probe's regularisation (C = 0.01) is the best of 0.01, 0.1 and 1 on the adult task.

    python bench/covid_vs_adult_pneumonia.py --data ../shared/data/coronahack-mini [--model weights/resnet18.pt]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

ADULT_SOURCES = ("cohen", "figure1", "nih")  # every adult source: the COVID-19 collections and NIH
SENSITIVITY = 0.95


def probe_cv(features: np.ndarray, y: np.ndarray, groups: np.ndarray, repeats: int = 5, folds: int = 5) -> dict:
    """Patient-grouped cross-validated logistic-regression probe: {"auc", "auc_sd", "specificity"}.

    specificity: the share of negatives scored below the 5th percentile of the positives' scores (that is, at
    95% sensitivity), pooled over the out-of-fold scores of each repeat, then averaged over repeats.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedGroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    aucs, specs = [], []
    for seed in range(repeats):
        scores = np.zeros(len(y))
        for train, held in StratifiedGroupKFold(folds, shuffle=True, random_state=seed).split(features, y, groups):
            probe = make_pipeline(StandardScaler(), LogisticRegression(C=0.01, class_weight="balanced", max_iter=5000))
            probe.fit(features[train], y[train])
            scores[held] = probe.predict_proba(features[held])[:, 1]
        aucs.append(roc_auc_score(y, scores))
        cut = np.quantile(scores[y == 1], 1 - SENSITIVITY)
        specs.append(float((scores[y == 0] < cut).mean()))
    return {"auc": float(np.mean(aucs)), "auc_sd": float(np.std(aucs)), "specificity": float(np.mean(specs))}


def ppv_ceiling(specificity: float, n_covid: int, n_other: int) -> float:
    """TEST PPV at 95% sensitivity when only the ``n_other`` adult non-COVID films can be false positives."""
    tp = SENSITIVITY * n_covid
    return tp / (tp + (1 - specificity) * n_other)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="coronahack-mini (needs provenance.csv for the sources)")
    parser.add_argument("--model", default=str(REPO / "weights" / "resnet18.pt"))
    args = parser.parse_args()

    from sklearn.metrics import roc_auc_score

    from covid_core.checkpoint import load_classifier
    from covid_core.inference import calibrated_probabilities, logits_and_features
    from covid_core.training import TrainConfig, prepare_data

    clf = load_classifier(args.model)
    if "covid19" not in clf.classes or "pneumonia" not in clf.classes:
        sys.exit(f"{args.model} has classes {clf.classes}; this measure needs a 3-class checkpoint")
    cfg = TrainConfig.from_dict({**clf.metadata.get("train_config", {}), "data": args.data, "limit": None})
    table, images, _, _ = prepare_data(cfg, progress=False)
    if set(table["source"].unique()) <= {"unknown"}:
        sys.exit("no provenance.csv beside the metadata: the image sources are unknown")
    adult_pneumonia = table["source"].isin(ADULT_SOURCES).to_numpy() & (table["label"] != "normal").to_numpy()
    is_covid = (table["label"] == "covid19").to_numpy()
    split = table["split"].to_numpy()
    logits, feats = logits_and_features(clf.model, images, clf.preprocess)
    p_covid = calibrated_probabilities(logits, clf.temperature)[:, clf.classes.index("covid19")]
    threshold = float(clf.threshold.get("value", 0.5))

    print(f"model {Path(args.model).name}; adult pneumonia films = sources {', '.join(ADULT_SOURCES)}, "
          f"true class covid19 or pneumonia")
    print(f"\nown score p(covid19), COVID-19 vs other adult pneumonia (operating threshold {threshold:.3f}):")
    print("| split | COVID-19 | other | AUC | other at or above the threshold |")
    print("| --- | --- | --- | --- | --- |")
    for s in ("train", "val", "test"):
        m = adult_pneumonia & (split == s)
        pos, neg = int((m & is_covid).sum()), int((m & ~is_covid).sum())
        auc = roc_auc_score(is_covid[m], p_covid[m]) if pos and neg else float("nan")
        called = int((p_covid[m & ~is_covid] >= threshold).sum())
        print(f"| {s} | {pos} | {neg} | {auc:.3f} | {called} of {neg} |")

    fitted = np.isin(split, ("train", "val"))
    x = feats["penultimate"]
    groups = table["patient"].to_numpy()
    m = adult_pneumonia & fitted
    adult = probe_cv(x[m], is_covid[m].astype(int), groups[m])
    kermany = (table["source"] == "kermany").to_numpy() & fitted
    child = probe_cv(x[kermany], (table["label"].to_numpy()[kermany] == "pneumonia").astype(int), groups[kermany])
    print("\nlinear probe on penultimate features, 5-fold CV grouped by patient, 5 repeats (TRAIN + VALIDATION):")
    print("| task | positives | negatives | CV AUC | specificity at 95% sensitivity |")
    print("| --- | --- | --- | --- | --- |")
    print(f"| adult: COVID-19 vs other pneumonia | {int((m & is_covid).sum())} | {int((m & ~is_covid).sum())} | "
          f"{adult['auc']:.3f} +- {adult['auc_sd']:.3f} | {adult['specificity']:.2f} |")
    kp = int((kermany & (table["label"] == "pneumonia").to_numpy()).sum())
    print(f"| baseline, paediatric: pneumonia vs normal | {kp} | {int(kermany.sum()) - kp} | "
          f"{child['auc']:.3f} +- {child['auc_sd']:.3f} | {child['specificity']:.2f} |")
    print(f"  ratio of the probe's AUC above chance, adult task / baseline: "
          f"{(adult['auc'] - 0.5) / max(child['auc'] - 0.5, 1e-9):.2f}")

    test = split == "test"
    n_covid, n_other = int((test & is_covid).sum()), int((test & adult_pneumonia & ~is_covid).sum())
    print(f"\nTEST holds {n_covid} COVID-19 films and {n_other} adult non-COVID pneumonias. At the probe's specificity "
          f"({adult['specificity']:.2f}) and 95% sensitivity, even with every other TEST film right, COVID-19 PPV "
          f"could reach at most {ppv_ceiling(adult['specificity'], n_covid, n_other):.3f} (goal 0.95).")


if __name__ == "__main__":
    main()
