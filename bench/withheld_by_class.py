"""Which films get no verdict? The familiarity check's withheld share per class and per source on TEST.

Diagnose (and `predict`, and a site's figures "counting only the films that get a verdict") withholds the verdict
of a film unlike the training X-rays or one that looks more familiar rotated or inverted. If that falls more often
on one class, the verdicts given are not a random sample: a COVID-19 film withheld is a COVID-19 film the model
neither finds nor misses. This prints, for one checkpoint and the TEST split, the share withheld per class (split
into unfamiliar and turned) and per (source, class) group, with counts.

    python bench/withheld_by_class.py --data DATA_DIR [--model weights/resnet18.pt]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from shortcut_ablation import familiarity_withheld

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    from covid_core.checkpoint import load_classifier
    from covid_core.datasets import load_dataset
    from covid_core.decode import decode_image
    from covid_core.inference import score_pixels
    from covid_core.preprocess import prepare_pixels

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", default=str(REPO / "weights" / "resnet18.pt"))
    args = ap.parse_args()
    started = time.perf_counter()
    clf = load_classifier(args.model)
    table = load_dataset(args.data).for_target(clf.target)
    table = table[table.split == "test"].reset_index(drop=True)
    pixels = np.stack([prepare_pixels(decode_image(Path(p).read_bytes(), p).pixels, clf.preprocess)[0]
                       for p in table.path])
    scores = score_pixels(clf, pixels, orientation=True)
    if scores.ood is None:
        print(f"{args.model} has no familiarity score: every film gets a verdict")
        return 0
    table["withheld"] = familiarity_withheld(clf, scores)
    table["unfamiliar"] = scores.ood > clf.ood["threshold"]
    print(f"{Path(args.model).name}, TEST ({len(table)} films), scored in {time.perf_counter() - started:.0f} s")
    print("| class | films | withheld | unlike the training X-rays | turned (and not unlike) |")
    print("|---|---|---|---|---|")

    def share(rows, column):
        return f"{100 * rows[column].mean():.1f}% ({int(rows[column].sum())})"

    for label, rows in table.groupby("label"):
        turned = rows.assign(turned=rows.withheld & ~rows.unfamiliar)
        print(f"| {label} | {len(rows)} | {share(rows, 'withheld')} | {share(rows, 'unfamiliar')} | "
              f"{share(turned, 'turned')} |")
    print(f"| all | {len(table)} | {share(table, 'withheld')} | {share(table, 'unfamiliar')} | |")
    if "source" in table:
        print("\n| source | class | films | withheld |")
        print("|---|---|---|---|")
        for (source, label), rows in table.groupby(["source", "label"]):
            print(f"| {source} | {label} | {len(rows)} | {share(rows, 'withheld')} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
