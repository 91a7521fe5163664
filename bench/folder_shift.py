"""Would a folder of films, tested as a group, show that it comes from a hospital the model never saw?

One film's familiarity score flags only a part of an unseen hospital's films (docs/shortcuts.md). A folder holds
many films of one hospital, and a two-sample test of their familiarity scores against the VALIDATION films'
scores can notice a shift that no single film shows (Rabanser et al., "Failing loudly", NeurIPS 2019). A folder
from the training sources must not trip it, whichever source it comes from (the COVID-19 collection's films are
less familiar than the children's), so a folder counts as new only when it is less familiar (one-sided) than every
training source's own VALIDATION films (sources with at least 20) and than all of them together: the largest
p-value of those tests must fall below alpha.

For each checkpoint, folders of n films drawn at random (``--draws`` per size) from TEST (all, each source, each
class: in distribution), and for a leave-one-source-out checkpoint (``bench/shortcut_ablation.py``) from the held-out
source's unseen TRAIN films, and a new hospital's mix: half its unseen normal films, half TEST's COVID-19 films.
Prints the share of folders called new at alpha 0.01, by the Kolmogorov-Smirnov / Mann-Whitney tests.

    python bench/folder_shift.py --data DATA_DIR --checkpoints weights/resnet18.pt \\
        runs/ablation-160/resnet18-160-12-s0-group_without_nih.pt
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from shortcut_ablation import unseen_films

SIZES = (10, 20, 42, 100)
MIN_REFERENCE = 20


def scored_splits(path: str, data: str) -> dict:
    """Familiarity scores of the checkpoint's own VALIDATION and TEST films (with their sources and labels), and of
    the held-out source's unseen TRAIN films when it was trained without one."""
    from covid_core.checkpoint import load_checkpoint_dict, load_classifier
    from covid_core.inference import score_pixels
    from covid_core.training import TrainConfig, prepare_data

    clf = load_classifier(path)
    config = TrainConfig.from_dict({**load_checkpoint_dict(path)["train_config"], "data": data})
    table, images, _, _ = prepare_data(config, progress=False)
    scores = score_pixels(clf, images, orientation=False).ood
    split = table["split"].to_numpy()
    out = {name: {"score": scores[split == name], "source": table["source"].to_numpy()[split == name],
                  "label": table["label"].to_numpy()[split == name]} for name in ("val", "test")}
    held = config.holdout_source
    if held:
        films, labels = unseen_films(clf, data, held)
        out["unseen"] = {"score": score_pixels(clf, films, orientation=False).ood, "label": labels, "source": held}
    return out


def references(val: dict) -> list[np.ndarray]:
    refs = [val["score"][val["source"] == s] for s in sorted(set(val["source"]))]
    return [r for r in refs if len(r) >= MIN_REFERENCE] + [val["score"]]


def p_values(folder: np.ndarray, refs: list[np.ndarray]) -> tuple[float, float]:
    """The largest one-sided p-value (the folder less familiar) over the references: Kolmogorov-Smirnov, Mann-Whitney."""
    from scipy import stats

    ks = max(stats.ks_2samp(folder, r, alternative="less").pvalue for r in refs)
    mw = max(stats.mannwhitneyu(folder, r, alternative="greater").pvalue for r in refs)
    return ks, mw


def folders(s: dict) -> dict[str, object]:
    """{name: scores to draw from, or a function drawing a folder of n films}."""
    test = s["test"]
    out = {"TEST, all": test["score"]}
    out.update({f"TEST, source {src}": test["score"][test["source"] == src] for src in sorted(set(test["source"]))})
    out.update({f"TEST, class {c}": test["score"][test["label"] == c] for c in sorted(set(test["label"]))})
    if "unseen" in s:
        u = s["unseen"]
        out[f"unseen {u['source']}, all"] = u["score"]
        out.update({f"unseen {u['source']}, {c}": u["score"][u["label"] == c] for c in sorted(set(u["label"]))})
        normals, covid = u["score"][u["label"] == "normal"], test["score"][test["label"] == "covid19"]
        if len(normals) and len(covid):
            def mix(n, rng, normals=normals, covid=covid):
                if n // 2 > len(normals) or n - n // 2 > len(covid):
                    return None
                return np.concatenate([rng.choice(normals, n // 2, replace=False),
                                       rng.choice(covid, n - n // 2, replace=False)])
            out[f"new hospital: unseen {u['source']} normals + TEST COVID-19, half each"] = mix
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--checkpoints", nargs="+", default=["weights/resnet18.pt"])
    p.add_argument("--draws", type=int, default=300)
    p.add_argument("--alpha", type=float, default=0.01)
    args = p.parse_args()

    print(f"Share of random folders called a new hospital at alpha {args.alpha} (Kolmogorov-Smirnov / Mann-Whitney; "
          f"{args.draws} folders per size; '-' where there are too few films)\n")
    print("| checkpoint | folder drawn from | films | " + " | ".join(f"n = {n}" for n in SIZES) + " |")
    print("|---|---|---|" + "---|" * len(SIZES))
    for path in args.checkpoints:
        t0 = time.time()
        s = scored_splits(path, args.data)
        refs = references(s["val"])
        rng = np.random.default_rng(0)
        for name, pool in folders(s).items():
            cells = []
            for n in SIZES:
                draw = pool if callable(pool) else (
                    lambda n, rng, pool=pool: rng.choice(pool, n, replace=False) if len(pool) >= n else None)
                if draw(n, rng) is None:
                    cells.append("-")
                    continue
                hits = np.array([[pv < args.alpha for pv in p_values(draw(n, rng), refs)] for _ in range(args.draws)])
                cells.append(" / ".join(f"{h:.2f}" for h in hits.mean(0)))
            size = "" if callable(pool) else str(len(pool))
            print(f"| {path.rsplit('/', 1)[-1]} | {name} | {size} | " + " | ".join(cells) + " |")
        print(f"<!-- {path}: {time.time() - t0:.0f} s; references: VALIDATION films by source (n = "
              f"{', '.join(str(len(r)) for r in refs[:-1])}) and all {len(refs[-1])} -->")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
