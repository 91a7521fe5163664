"""Which familiarity score notices a hospital it was not fitted on? Leave-one-source-out, on one checkpoint.

For each source S with TEST films: the score is refitted on the TRAIN films of the other sources (threshold at a
percentile of the other sources' VALIDATION films), then the share of S's TEST films it flags is printed. The
first column ("in distribution") is the share of all TEST films flagged when every source is fitted: the price
paid in withheld verdicts. Methods:

- ``mahalanobis class``: the shipped score (covid_core.ood): Gaussians per class, shared covariance, on the
  penultimate and the 2x2-pooled spatial features; the larger ratio to its threshold decides;
- ``mahalanobis source+class``: the same with one Gaussian per (source, class) group;
- ``knn k`` (Sun et al., ICML 2022): distance to the k-th nearest TRAIN film, cosine, on both feature sets.

The network itself saw every source in training, so each figure is a lower bound for a truly new hospital.

    python bench/familiarity_methods.py --data DATA_DIR [--model weights/resnet18.pt] [--percentile 98]
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def features(checkpoint: str, data: str):
    from covid_core.cache import load_or_build
    from covid_core.checkpoint import load_classifier
    from covid_core.datasets import load_dataset, split_as_trained
    from covid_core.inference import logits_and_features

    clf = load_classifier(checkpoint)
    cfg = clf.metadata.get("train_config") or {}
    table = split_as_trained(load_dataset(data).for_target(clf.target), cfg)
    images = load_or_build(table["path"].tolist(), clf.preprocess, progress=False)
    _, feats = logits_and_features(clf.model, images, clf.preprocess, device=clf.device,
                                   spatial_layer=clf.spec.feature_layer(clf.model))
    return feats, table["split"].to_numpy(), table["source"].astype(str).to_numpy(), table["label_idx"].to_numpy()


def mahalanobis(groups: str):
    from covid_core.ood import fit_ood, ood_scores

    def method(feats, train, val, test, sources, labels, percentile):
        if groups == "class":
            g = labels[train]
        else:
            keys = np.char.add(sources[train].astype(str), labels[train].astype(str))
            g = np.unique(keys, return_inverse=True)[1]
        stats = fit_ood({k: v[train] for k, v in feats.items()}, g, {k: v[val] for k, v in feats.items()}, percentile)
        return ood_scores(stats, {k: v[test] for k, v in feats.items()}) > stats["threshold"]
    return method


def knn(k: int):
    def method(feats, train, val, test, sources, labels, percentile):
        both = np.concatenate([f / np.linalg.norm(f, axis=1, keepdims=True).clip(1e-9) for f in
                               (feats["penultimate"], feats["spatial"])], 1)

        def distance(rows):
            return -np.sort(both[rows] @ both[train].T, 1)[:, -k]

        return distance(test) > np.percentile(distance(val), percentile)
    return method


METHODS = {"mahalanobis class": mahalanobis("class"), "mahalanobis source+class": mahalanobis("source+class"),
           "knn 1": knn(1), "knn 10": knn(10)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--model", default="weights/resnet18.pt")
    p.add_argument("--percentile", type=float, default=98.0)
    args = p.parse_args()
    start = time.time()
    feats, split, sources, labels = features(args.model, args.data)
    held = sorted(set(sources[split == "test"]))
    print(f"{args.model}: features of {len(split)} films in {time.time() - start:.0f} s; threshold at the "
          f"{args.percentile:g}th percentile of VALIDATION")
    print("| method | in distribution (all TEST) | " + " | ".join(f"{s} unseen ({(sources[split == 'test'] == s).sum()})"
                                                        for s in held) + " |")
    print("|---|---|" + "---|" * len(held))
    for name, method in METHODS.items():
        cells = []
        for source in [None, *held]:
            keep = sources != source
            flagged = method(feats, np.flatnonzero((split == "train") & keep), np.flatnonzero((split == "val") & keep),
                             np.flatnonzero((split == "test") & (keep if source is None else ~keep)), sources, labels,
                             args.percentile)
            cells.append(f"{flagged.mean():.3f}")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
