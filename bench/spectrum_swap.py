"""Does a classifier read the hospital's image texture instead of the lungs? TEST films given another film's
Fourier amplitude spectrum.

Each TEST film of a group (NIH adult normals, NIH adult pneumonias, Kermany child normals, COVID-19 films) keeps
its own phase, which carries the anatomy and any lesion, and takes the whole amplitude spectrum of a film drawn
from a donor group: the sharpness, noise texture and contrast that a hospital's machines and processing leave on
every film (``covid_core.augment.blend_amplitude`` with lam = 1). A donor from the film's own group is the
control: it changes the texture as much without changing the hospital. The figure is the share of the group's
films called COVID-19 positive at the model's operating threshold.

A model that reads the lungs gives each row about the same share whichever the donor. A model that has learned
"an adult film without NIH's texture is COVID-19" calls NIH normals positive once they carry another source's
texture, which is what a new hospital's normal adult films look like to it.

A model trained with ``--amplitude-mix`` has seen this kind of change in training, so for it this is a check that
it learned the invariance, not a held-out test; the leave-one-source-out rows of ``bench/shortcut_ablation.py``
and a site's own films are the held-out tests. The last column is a milder change not used in training:
histogram matching to a film of the first other donor group (``skimage.exposure.match_histograms``).

    python bench/spectrum_swap.py --data DATA_DIR --checkpoints weights/resnet18.pt runs/x.pt
"""

from __future__ import annotations

import argparse

import numpy as np

GROUPS = {  # name -> (sources, class)
    "NIH normal": (("nih",), "normal"),
    "NIH pneumonia": (("nih",), "pneumonia"),
    "Kermany normal": (("kermany",), "normal"),
    "COVID-19": (("cohen", "figure1"), "covid19"),
}
DONORS = ("NIH normal", "Kermany normal", "COVID-19")


def group_members(table, name: str) -> np.ndarray:
    sources, label = GROUPS[name]
    return np.flatnonzero(table["source"].isin(sources).to_numpy() & (table["label"].to_numpy() == label))


def with_donor_amplitude(films: np.ndarray, donors: np.ndarray) -> np.ndarray:
    """uint8 NxSxS films with the amplitude spectra of uint8 NxSxS donors, each keeping its own phase."""
    import torch

    from covid_core.augment import blend_amplitude

    x = torch.from_numpy(films).float().div(255)[:, None]
    d = torch.from_numpy(donors).float().div(255)[:, None]
    return (blend_amplitude(x, d, 1.0)[:, 0] * 255).round().byte().numpy()


def with_donor_histogram(films: np.ndarray, donors: np.ndarray) -> np.ndarray:
    from skimage.exposure import match_histograms

    return np.stack([match_histograms(f, d).round().astype(np.uint8) for f, d in zip(films, donors)])


def positive_share(clf, films: np.ndarray) -> float:
    from covid_core.inference import predict_pixels

    probs, _ = predict_pixels(clf, films)
    return float(np.mean(probs[:, clf.classes.index("covid19")] >= clf.threshold["value"]))


def swap_rows(clf, table, images: np.ndarray, seed: int = 0) -> list[dict]:
    """One row per group: n, the share called positive as is, with each donor group's amplitude, and with the
    first other donor group's histogram. A film's donor is drawn from the donor group without the film itself."""
    rng = np.random.default_rng(seed)
    rows = []
    for name in GROUPS:
        members = group_members(table, name)
        films = images[members]
        row = {"group": name, "n": len(members), "as is": positive_share(clf, films)}
        for donor in DONORS:
            pool = group_members(table, donor)
            picks = np.array([rng.choice(pool[pool != m]) for m in members])
            row[donor] = positive_share(clf, with_donor_amplitude(films, images[picks]))
        other = next(d for d in DONORS if d != name)
        picks = rng.choice(group_members(table, other), len(members))
        row["histogram"] = (other, positive_share(clf, with_donor_histogram(films, images[picks])))
        rows.append(row)
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--checkpoints", nargs="+", required=True)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    from covid_core.cache import load_or_build
    from covid_core.checkpoint import load_classifier
    from covid_core.datasets import load_dataset

    print("share of each TEST group called COVID-19 positive: as is, with the amplitude spectrum of a film from "
          "each donor group (own phase kept), and with the histogram of a film from the first other donor group")
    print("| checkpoint | group | films | as is | " + " | ".join(f"{d} texture" for d in DONORS) + " | histogram |")
    print("|---|---|---|---|" + "---|" * len(DONORS) + "---|")
    for path in args.checkpoints:
        clf = load_classifier(path)
        if "covid19" not in clf.classes:
            p.error(f"{path}: needs a 3-class checkpoint")
        table = load_dataset(args.data).for_target(clf.target)
        table = table[table["split"] == "test"].reset_index(drop=True)
        images = load_or_build(table["path"].tolist(), clf.preprocess, progress=False)
        for r in swap_rows(clf, table, images, args.seed):
            donor, share = r["histogram"]
            print(f"| {path} | {r['group']} | {r['n']} | {100 * r['as is']:.0f}% | "
                  + " | ".join(f"{100 * r[d]:.0f}%" for d in DONORS) + f" | {100 * share:.0f}% ({donor}) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
