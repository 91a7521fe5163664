"""Does a classifier read the hospital's look instead of the lungs? TEST films given another film's Fourier
amplitude spectrum.

Each TEST film of a group (NIH adult normals, NIH adult pneumonias, Kermany child normals, COVID-19 films) keeps
its own phase, which carries the anatomy and any lesion, and takes the whole amplitude spectrum of a film drawn
from a donor group: the sharpness, noise texture, contrast and framing that a hospital's machines and habits
leave on every film (``covid_core.shortcuts.texture_swap``). A donor from the film's own group is the control:
it changes the spectrum without changing the hospital. The figure is the share of the group's films called
COVID-19 positive at the model's operating threshold.

A model that reads the lungs gives each row about the same share whichever the donor. A model that has learned
"an adult film that does not look like NIH's is COVID-19" calls NIH normals positive once they carry another
source's spectrum, which is how a new hospital's normal adult films look to it. The model card shows the pairs
in ``covid_core.shortcuts.CARD_SWAPS``; this prints every group with every donor.

A model trained with ``--amplitude-mix`` has seen this kind of change in training, so for it this checks whether
it learned to ignore it; it is not a held-out test. The held-out tests are the leave-one-source-out rows of
``bench/shortcut_ablation.py`` and a site's own films.

    python bench/spectrum_swap.py --data DATA_DIR --checkpoints weights/resnet18.pt runs/x.pt
"""

from __future__ import annotations

import argparse

DONORS = ("NIH normal", "Kermany normal", "COVID-19")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--checkpoints", nargs="+", required=True)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    from covid_core.cache import load_or_build
    from covid_core.checkpoint import load_classifier
    from covid_core.datasets import load_dataset
    from covid_core.shortcuts import SWAP_GROUPS, texture_swap

    print("share of each TEST group called COVID-19 positive: as is, and with the amplitude spectrum of a film from "
          "each donor group (own phase kept)")
    print("| checkpoint | films | n | as is | " + " | ".join(f"{d} spectrum" for d in DONORS) + " |")
    print("|---|---|---|---|" + "---|" * len(DONORS))
    for path in args.checkpoints:
        clf = load_classifier(path)
        if clf.threshold.get("class") not in clf.classes:
            p.error(f"{path}: needs a checkpoint with a COVID-19 class")
        table = load_dataset(args.data).for_target(clf.target)
        table = table[table["split"] == "test"].reset_index(drop=True)
        images = load_or_build(table["path"].tolist(), clf.preprocess, progress=False)
        rows = texture_swap(clf, table, images, [(g, d) for g in SWAP_GROUPS for d in DONORS], args.seed)
        for group in SWAP_GROUPS:
            mine = {r["donor"]: r for r in rows if r["films"] == group}
            if mine:
                first = next(iter(mine.values()))
                print(f"| {path} | {group} | {first['n']} | {100 * first['as_is']:.0f}% | "
                      + " | ".join(f"{100 * mine[d]['swapped']:.0f}%" if d in mine else "n/a" for d in DONORS) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
