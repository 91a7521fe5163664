"""Normal adults of hospitals a model never saw, against COVID-19 films: the new-hospital goal's question, asked of
a model that knows one hospital's normal adults (NIH's), as the shipped models do.

The only normal adults in this data from outside NIH are the COVID-19 collections' 18 films (`cohen` and
`figure1`, 15 patients; publications and case sites of many hospitals). A checkpoint trained with
``--holdout-source cohen:normal,figure1:normal`` (bench/shortcut_ablation.py's row
``group_without_collection_normals``) saw none of them, nor any other film of their patients. Each checkpoint's
p(COVID-19) of those 18 films is ranked against TEST's 60 COVID-19 films: AUC with a 95% interval that resamples
patients (the site report's own, ``covid_core.site_figures.figures``), the share of the normals most probably COVID-19,
withheld by the familiarity or orientation check, and given a COVID-19 positive verdict at the model's stored
threshold (nothing withheld, and as the product would give them). A checkpoint trained with those films is
scored too, marked "seen": its figures are flattered by having learned them.

    python bench/unseen_adult_normals.py --data DATA_DIR --checkpoints weights/resnet18.pt \
        runs/ablation-160/resnet18-160-12-s{0,1,2}-group_without_collection_normals.pt
"""

from __future__ import annotations

import argparse

import numpy as np

HELD = "cohen:normal,figure1:normal"


def figures(checkpoint: str, data: str) -> dict:
    from covid_core.cache import load_or_build
    from covid_core.checkpoint import load_classifier
    from covid_core.datasets import holdout_films, load_dataset
    from covid_core.inference import score_pixels
    from covid_core.site_figures import figures as site_figures
    from shortcut_ablation import familiarity_withheld  # bench/ is on sys.path

    clf = load_classifier(checkpoint)
    table = load_dataset(data).for_target(clf.target)
    is_normal = holdout_films(table, HELD)
    normals = table[is_normal]
    covid = table[(table["label"] == "covid19") & (table["split"] == "test")]
    held = (clf.metadata.get("train_config") or {}).get("holdout_source") or ""
    left_out = holdout_films(table, held, whole_patients=True)[is_normal]
    seen = not left_out[(normals["split"] == "train").to_numpy()].all()
    normal_scores = score_pixels(clf, load_or_build(normals["path"].tolist(), clf.preprocess, progress=False))
    covid_films = load_or_build(covid["path"].tolist(), clf.preprocess, progress=False)
    withheld = familiarity_withheld(clf, normal_scores)
    p_normal = normal_scores.probs[:, list(clf.classes).index("covid19")]
    p_covid = score_pixels(clf, covid_films, orientation=False).probs[:, list(clf.classes).index("covid19")]
    y = np.r_[np.zeros(len(p_normal), bool), np.ones(len(p_covid), bool)]
    score = np.r_[p_normal, p_covid]
    threshold = float(clf.threshold["value"])
    patients = np.r_[normals["patient"].to_numpy(), covid["patient"].to_numpy()]
    auc = site_figures(y, score, score >= threshold, patients)["auc"]
    called = np.asarray(clf.classes)[normal_scores.probs.argmax(1)]
    return {"checkpoint": checkpoint, "seen": seen,
            "normals": len(p_normal), "covid": len(p_covid), "auc": auc,
            "most_probably_covid": float((called == "covid19").mean()),
            "positive_nothing_withheld": float((p_normal >= threshold).mean()),
            "withheld": float(withheld.mean()), "positive": float(((p_normal >= threshold) & ~withheld).mean()),
            "median_p_covid_normals": float(np.median(p_normal)), "median_p_covid_covid": float(np.median(p_covid))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--checkpoints", nargs="+", required=True)
    args = ap.parse_args()
    print("| checkpoint | normals seen in training | collection normals vs TEST COVID-19 AUC (95% CI) | normals most "
          "probably COVID-19 | normals positive, nothing withheld | normals withheld | normals given a wrong "
          "positive verdict | median p(COVID-19): normals / COVID-19 |")
    print("|---|---|---|---|---|---|---|---|")
    for checkpoint in args.checkpoints:
        f = figures(checkpoint, args.data)
        a = f["auc"]
        interval = "" if a.get("low") is None else f" ({a['low']:.2f}-{a['high']:.2f})"
        print(f"| {checkpoint} | {'yes' if f['seen'] else 'no'} | {a['value']:.3f}{interval} | "
              f"{f['most_probably_covid']:.3f} | {f['positive_nothing_withheld']:.3f} | {f['withheld']:.3f} | "
              f"{f['positive']:.3f} | {f['median_p_covid_normals']:.3f} / {f['median_p_covid_covid']:.3f} |",
              flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
