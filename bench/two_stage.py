"""Would a normal/pneumonia model guard the COVID-19 verdict against the hospital shortcut? Two stages, measured.

The 3-class model separates normal from COVID-19 across hospitals: nearly every adult normal film comes from NIH
and every COVID-19 film from the COVID-19 collections, so an adult film unlike NIH's can pass for COVID-19. A
normal/pneumonia model (``--target pneumonia``; COVID-19 counts as pneumonia) learns "is anything wrong" mostly
inside sources that hold both answers (NIH adults, Kermany children). The two stages together:

    p(normal) = pA(normal);  p(pneumonia), p(COVID-19) = pA(pneumonia) x the 3-class model's own split of it

Prints, for the 3-class model alone and for the two stages, TEST accuracy, macro AUC, calibration error, the
within-source AUCs and COVID-19 sensitivity / PPV at the threshold that keeps 90% VALIDATION sensitivity; then,
for a pair trained without NIH (``--holdout-source nih``), NIH's TRAIN films, which neither model saw: normal vs
pneumonia AUC, their normals against TEST's COVID-19 films (the new-hospital goal's question), and the share given
a wrong COVID-19 verdict (the 3-class model's familiarity check withholds the same films for both).

    python bench/two_stage.py --data DATA --three weights/resnet18.pt --pneumonia P.pt \\
        [--three-without-nih T.pt --pneumonia-without-nih Q.pt]

Both models of a pair must share the input settings and the validation split (same seed and fraction; the split is
stratified by finding, so it is the same for both targets).
"""

from __future__ import annotations

import argparse

import numpy as np

CLASSES = ["normal", "pneumonia", "covid19"]


def combine(p3: np.ndarray, pa: np.ndarray) -> np.ndarray:
    """Two-stage probabilities (normal, pneumonia, covid19): the normal/pneumonia model's p(normal), and its
    p(pneumonia) shared between pneumonia and COVID-19 as the 3-class model shares its own."""
    normal = pa[:, 0]
    pneumonia, covid = p3[:, 1], p3[:, 2]
    covid_share = covid / np.clip(pneumonia + covid, 1e-12, None)
    return np.stack([normal, (1 - normal) * (1 - covid_share), (1 - normal) * covid_share], axis=1)


def load_pair(three: str, pneumonia: str):
    from covid_core.checkpoint import load_classifier

    clf3, clfa = load_classifier(three), load_classifier(pneumonia)
    if list(clf3.classes) != CLASSES or list(clfa.classes) != ["normal", "pneumonia"]:
        raise SystemExit(f"{three} must be a 3-class model and {pneumonia} a normal/pneumonia model")
    cfg3, cfga = (c.metadata.get("train_config") or {} for c in (clf3, clfa))
    for key in ("seed", "val_fraction", "holdout_source"):
        if (cfg3.get(key) or None) != (cfga.get(key) or None):
            raise SystemExit(f"the two models differ in {key}: {cfg3.get(key)!r} and {cfga.get(key)!r}")
    if clf3.preprocess != clfa.preprocess:
        raise SystemExit("the two models prepare their input differently; train them with the same settings")
    return clf3, clfa


def probabilities(clf, images: np.ndarray) -> np.ndarray:
    from covid_core.inference import score_pixels

    return score_pixels(clf, images, orientation=False).probs


def val_and_test(clf3, clfa, data: str):
    """(the 3-class table's VALIDATION and TEST rows, 3-class probabilities, two-stage probabilities)."""
    from covid_core.cache import load_or_build
    from covid_core.datasets import load_dataset, split_as_trained, without_source_in_training

    cfg = clf3.metadata.get("train_config") or {}
    table = without_source_in_training(load_dataset(data).for_target("3class"), cfg.get("holdout_source") or "")
    table = split_as_trained(table, cfg)
    table = table[table["split"] != "train"].reset_index(drop=True)
    images = load_or_build(table["path"].tolist(), clf3.preprocess, progress=False)
    p3 = probabilities(clf3, images)
    return table, p3, combine(p3, probabilities(clfa, images))


def rule_one(table, probs: np.ndarray) -> str:
    """docs/shortcuts.md's rule 1 on VALIDATION: NIH normal vs pneumonia, COVID-19 collection COVID-19 vs other
    pneumonia, and their mean (n/a where the split holds no NIH film)."""
    from covid_core.shortcuts import within_source_aucs

    val = (table["split"] == "val").to_numpy()
    within = within_source_aucs(table[val].reset_index(drop=True), probs[val], CLASSES)
    aucs = [(within.get(k) or {}).get("auc") for k in ("nih_normal_vs_pneumonia", "cohen_covid_vs_other_pneumonia")]
    text = [f"{a:.3f}" if a is not None else "n/a" for a in aucs]
    mean = f"{np.mean(aucs):.3f}" if None not in aucs else "n/a"
    return f"{text[0]} | {text[1]} | {mean}"


def unseen_rows(three: str, clf3, clfa, data: str, table, p3: np.ndarray, p2: np.ndarray) -> list[str]:
    """Rows of the unseen-NIH table for the 3-class model alone and for the two stages."""
    from covid_core.inference import score_pixels
    from ensemble import val_threshold
    from shortcut_ablation import (covid_test_films, familiarity_withheld, figures_from_probabilities,
                                   not_held_out, unseen_films)

    why = not_held_out(clf3, three, "nih")
    if why:
        raise SystemExit(why)
    images, labels = unseen_films(clf3, data, "nih")
    covid_images = covid_test_films(clf3, data)
    own = score_pixels(clf3, images)
    withheld = familiarity_withheld(clf3, own)
    covid3 = probabilities(clf3, covid_images)
    unseen = {"3-class alone": (own.probs, covid3),
              "two stages": (combine(own.probs, probabilities(clfa, images)),
                             combine(covid3, probabilities(clfa, covid_images)))}
    rows = []
    for (name, (probs, covid)), val_probs in zip(unseen.items(), (p3, p2)):
        threshold = val_threshold(table, val_probs, CLASSES)
        f = figures_from_probabilities(probs, CLASSES, labels, withheld, threshold, covid)
        rows.append(f"| {name} | {len(labels)} | {f['unseen_normal_vs_pneumonia']:.3f} | "
                    f"{f['unseen_normal_vs_covid']:.3f} | {f['unseen_withheld']:.3f} | "
                    f"{f['unseen_wrong_positive']:.3f} | {threshold:.4f} |")
    return rows


def main() -> int:
    from ensemble import report

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--three", default="weights/resnet18.pt", help="the 3-class model")
    p.add_argument("--pneumonia", required=True, help="a normal/pneumonia model trained like --three")
    p.add_argument("--three-without-nih", help="a 3-class model trained with --holdout-source nih")
    p.add_argument("--pneumonia-without-nih", help="a normal/pneumonia model trained like --three-without-nih")
    args = p.parse_args()
    if bool(args.three_without_nih) != bool(args.pneumonia_without_nih):
        p.error("give both --three-without-nih and --pneumonia-without-nih, or neither")
    pairs = [("all sources", args.three, args.pneumonia)]
    if args.three_without_nih:
        pairs.append(("without NIH", args.three_without_nih, args.pneumonia_without_nih))
    for title, three, pneumonia in pairs:
        clf3, clfa = load_pair(three, pneumonia)
        table, p3, p2 = val_and_test(clf3, clfa, args.data)
        print(f"\n{title}: {three} + {pneumonia}\n")
        print("| model | TEST accuracy | macro AUC | ECE | NIH n/p | Kermany n/p | COVID vs other | COVID sens / PPV |")
        print("|---|---|---|---|---|---|---|---|")
        print(report("3-class alone", p3, table, CLASSES))
        print(report("two stages", p2, table, CLASSES))
        print("\n| model | VALIDATION NIH n/p | VALIDATION COVID vs other | rule 1 mean |\n|---|---|---|---|")
        print(f"| 3-class alone | {rule_one(table, p3)} |\n| two stages | {rule_one(table, p2)} |")
        if title == "without NIH":
            print("\nNIH's TRAIN films, unseen by both models:\n")
            print("| model | films | normal vs pneumonia AUC | normals vs TEST COVID-19 AUC | withheld | "
                  "given a wrong COVID-19 verdict | threshold |")
            print("|---|---|---|---|---|---|---|")
            print("\n".join(unseen_rows(three, clf3, clfa, args.data, table, p3, p2)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
