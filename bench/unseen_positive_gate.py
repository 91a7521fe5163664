"""Could a stricter familiarity rule for positive verdicts stop an unseen hospital's wrong COVID-19 verdicts?

The idea: give a COVID-19 positive verdict only to a film that lies as close to the COVID-19 training films (the
familiarity score's COVID-19 class mean, in each of its feature spaces) as real COVID-19 films do. This script
measures whether that can work before anyone builds it: for a leave-one-source-out checkpoint (from
``bench/shortcut_ablation.py``), it compares the distance to the COVID-19 mean of

- the held-out source's TRAIN films that get a positive verdict (all wrong: that source holds no COVID-19), with
- TEST's COVID-19 films that get a positive verdict (right ones),

and prints, for cut-offs at the 90th, 95th and 98th percentile of the right ones, the share of wrong positives that
would still pass. Distances are in units of each feature space's familiarity threshold (1.0 = the threshold).

    python bench/unseen_positive_gate.py --data DATA_DIR --source nih \\
        --checkpoint runs/ablation-160/resnet18-160-12-s0-group_without_nih.pt
"""

from __future__ import annotations

import argparse

import numpy as np

from shortcut_ablation import not_held_out, unseen_films


def distances_to_class(clf, images: np.ndarray, class_index: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(calibrated probabilities NxC, {feature space: N distances to the class mean / that space's threshold}),
    from the familiarity score's own per-class distances (``covid_core.ood.class_distances``)."""
    from covid_core.inference import calibrated_probabilities, logits_and_features
    from covid_core.ood import class_distances

    logits, feats = logits_and_features(clf.model, images, clf.preprocess,
                                        spatial_layer=clf.spec.feature_layer(clf.model))
    out = {part["name"]: class_distances(part, feats[part["name"]])[:, class_index] / part["threshold"]
           for part in clf.ood["parts"]}
    return calibrated_probabilities(logits, clf.temperature), out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--source", required=True)
    p.add_argument("--checkpoint", required=True)
    args = p.parse_args()

    from covid_core.cache import load_or_build
    from covid_core.checkpoint import load_classifier
    from covid_core.datasets import load_dataset

    clf = load_classifier(args.checkpoint)
    problem = not_held_out(clf, args.checkpoint, args.source)
    if problem:
        p.error(problem)
    if not clf.ood.get("parts") or "covid19" not in clf.classes:
        p.error("needs a 3-class checkpoint with a current familiarity score")
    covid, threshold = clf.classes.index("covid19"), clf.threshold["value"]

    unseen, _ = unseen_films(clf, args.data, args.source)
    test = load_dataset(args.data).for_target(clf.target)
    test = test[test["split"] == "test"].reset_index(drop=True)
    test_images = load_or_build(test["path"].tolist(), clf.preprocess, progress=False)
    probs_u, dist_u = distances_to_class(clf, unseen, covid)
    probs_t, dist_t = distances_to_class(clf, test_images, covid)
    wrong = probs_u[:, covid] >= threshold
    right = (test["label"].to_numpy() == "covid19") & (probs_t[:, covid] >= threshold)
    print(f"{args.checkpoint}: {wrong.sum()} of {len(unseen)} unseen {args.source} films get a (wrong) positive "
          f"verdict; {right.sum()} TEST COVID-19 films a right one")
    print("| feature space | wrong positives: distance percentiles 10 / 50 / 90 | right positives: 10 / 50 / 90 | "
          "wrong positives kept at the right ones' 90th / 95th / 98th percentile |")
    print("|---|---|---|---|")
    for name in dist_u:
        a, b = dist_u[name][wrong], dist_t[name][right]
        kept = [float(np.mean(a <= np.percentile(b, q))) for q in (90, 95, 98)]
        print(f"| {name} | {' / '.join(f'{v:.2f}' for v in np.percentile(a, [10, 50, 90]))} | "
              f"{' / '.join(f'{v:.2f}' for v in np.percentile(b, [10, 50, 90]))} | "
              f"{' / '.join(f'{100 * k:.0f}%' for k in kept)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
