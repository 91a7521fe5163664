"""What site validation is worth: validate on half of a "site"'s patients, measure on the other half.

The "site" is built from the data set's TEST films of the adult sources (NIH normals and pneumonias, and the
COVID-19 collections' films): adults, as at a hospital, never seen in training. Its patients are split in two
halves (seeded). ``validate-site`` runs on half A (timed: the goal is under 2 minutes for 100 films); half B is
then scored with and without the site file, and the script prints COVID-19 sensitivity and specificity on B
with 95% intervals and the gain, with a paired interval (bootstrap over the films of half B). These sources
were in the model's TRAIN split, so this measures the mechanics and the size of the gain on familiar
hospitals.

With ``--unseen SOURCE`` the site is a hospital the model never saw: every film of SOURCE (both splits; the model
must have been trained with ``--holdout-source SOURCE``) and TEST's COVID-19 films, which SOURCE lacks. It then
also prints whether the half A report warns that the model is poor there, and the share of half B's films given a
wrong verdict (a withheld verdict is not wrong). Caveat: the COVID-19 films come from sources the model was trained
on, so what tells SOURCE's films from them (the hospital) gives the COVID-19 answer away here, which it would not
at a real hospital; a head fitted on the features can learn that, so its figures are an upper bound.

    python bench/site_validation.py --data DATA_DIR [--model weights/resnet18.pt] [--seed 0]
    python bench/site_validation.py --data DATA_DIR --unseen nih --model WITHOUT_NIH.pt

The films are copied to a temporary folder (deleted at the end), never into the project.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SITE_SOURCES = ("nih", "cohen", "figure1")


def site_table(data: str, target: str, unseen: str = ""):
    """The films of the "site": TEST's films of the adult sources, or with ``unseen`` every film of that source (as
    a ``--holdout-source`` value names them) and TEST's COVID-19 films."""
    from covid_core.datasets import holdout_films, load_dataset
    from covid_core.targets import COVID_CLASS

    table = load_dataset(data).for_target(target)
    if not unseen:
        return table[(table.split == "test") & table.source.isin(SITE_SOURCES)].reset_index(drop=True)
    held = holdout_films(table, unseen)
    covid = (table.split == "test").to_numpy() & (table.label == COVID_CLASS[target]).to_numpy() & ~held
    return table[held | covid].reset_index(drop=True)


def copy_films(rows, folder: Path) -> None:
    """Copy the films of ``rows`` into ``folder``/<label>/, the layout validate-site reads."""
    for row in rows.itertuples():
        (folder / row.label).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(row.path, folder / row.label / row.filename)


def build_halves(data: str, target: str, seed: int, work: Path, unseen: str = "") -> dict:
    table = site_table(data, target, unseen)
    patients = np.array(sorted(table.patient.astype(str).unique()))
    rng = np.random.default_rng(seed)
    half_a = set(rng.permutation(patients)[: len(patients) // 2])
    out = {}
    for name, members in (("A", half_a), ("B", set(patients) - half_a)):
        rows = table[table.patient.astype(str).isin(members)]
        copy_films(rows, work / name)
        out[name] = rows
    return out


def prepared(classifier, folder: Path):
    """(the folder's table for the classifier's target, its films prepared for the classifier)."""
    from covid_core.datasets import load_dataset
    from covid_core.decode import decode_image
    from covid_core.preprocess import prepare_pixels

    table = load_dataset(folder).for_target(classifier.target)
    return table, np.stack([prepare_pixels(decode_image(p).pixels, classifier.preprocess)[0] for p in table.path])


def decisions(classifier, folder: Path, films=None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(is COVID-19, positive verdict, withheld, file name) for every film of ``folder``, by the classifier as given;
    ``films``: the folder's ``prepared`` films, when they are already at hand."""
    from covid_core.inference import score_pixels
    from covid_core.targets import COVID_CLASS

    table, pixels = films or prepared(classifier, folder)
    s = score_pixels(classifier, pixels)
    site = classifier.site
    threshold = site.threshold if site is not None and site.threshold is not None else classifier.threshold["value"]
    withheld = (s.ood > classifier.ood["threshold"]) if s.ood is not None else np.zeros(len(table), bool)
    y = (table.label == COVID_CLASS[classifier.target]).to_numpy()
    return y, s.covid >= threshold, withheld, table.filename.to_numpy()


def rates(y, pos):
    return float(pos[y].mean()), float((~pos[~y]).mean())


def main() -> int:
    from covid_core.checkpoint import load_classifier
    from covid_core.datasets import holdout_parts
    from covid_core.site import validate_site
    from covid_core.site_file import load_classifier_at_site
    from covid_core.site_job import given_rates_text, poor_site_warning, sample_size_text

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--model", default=str(REPO / "weights" / "resnet18.pt"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--boot", type=int, default=2000)
    ap.add_argument("--unseen", default="", help="a source the model was trained without (its --holdout-source): "
                    "the site is that source's films and TEST's COVID-19 films")
    args = ap.parse_args()
    classifier = load_classifier(args.model)
    held = (classifier.metadata.get("train_config") or {}).get("holdout_source") or ""
    if args.unseen and not set(holdout_parts(args.unseen)) <= set(holdout_parts(held)):
        ap.error(f"{Path(args.model).name} was trained with --holdout-source {held or '(none)'!r}, so "
                 f"{args.unseen!r} is not unseen by it")
    work = Path(tempfile.mkdtemp(prefix="site_validation_"))
    try:
        halves = build_halves(args.data, classifier.target, args.seed, work, args.unseen)
        for name, rows in halves.items():
            print(f"half {name}: {len(rows)} films, {rows.patient.nunique()} patients, "
                  f"{rows.label.value_counts().to_dict()}")
        started = time.perf_counter()
        report = validate_site(classifier, work / "A", name="half A", seed=args.seed)
        seconds = time.perf_counter() - started
        site_file = work / "site.json"
        site_file.write_text(json.dumps(report))
        print(f"validate-site on half A: {report['films_used']} films in {seconds:.1f} s "
              f"({seconds / report['films_used'] * 100:.1f} s per 100 films; goal under 120 s)")
        for line in report["adapted"]:
            print(f"  adapted: {line}")
        for line in report["skipped"]:
            print(f"  not adapted: {line}")
        print(f"  the report's estimate: {given_rates_text(report) or 'every film gets a verdict'}")
        print(f"  films to know it closely: {sample_size_text(report) or 'these films are enough for +/-5 points'}")
        print(f"  warning before it is made active: {poor_site_warning(report) or 'none'}")
        y, shipped, shipped_withheld, _ = decisions(classifier, work / "B")
        _, local, local_withheld, _ = decisions(load_classifier_at_site(args.model, site=site_file), work / "B")
        rng = np.random.default_rng(args.seed)
        n = len(y)
        boot = {"shipped": [], "site": [], "gain": []}
        for _ in range(args.boot):
            i = rng.integers(0, n, n)
            if y[i].all() or not y[i].any():
                continue
            a, b = rates(y[i], shipped[i]), rates(y[i], local[i])
            boot["shipped"].append(a)
            boot["site"].append(b)
            boot["gain"].append((b[0] - a[0], b[1] - a[1]))

        def ci(values, k, signed=False):
            v = np.array(values)[:, k]
            fmt = "+.3f" if signed else ".3f"
            return f"({np.percentile(v, 2.5):{fmt}} to {np.percentile(v, 97.5):{fmt}})"

        for name, pos, withheld in (("shipped", shipped, shipped_withheld), ("with the site file", local, local_withheld)):
            sens, spec = rates(y, pos)
            key = "shipped" if name == "shipped" else "site"
            print(f"half B, {name}: COVID-19 sensitivity {sens:.3f} {ci(boot[key], 0)}, specificity {spec:.3f} "
                  f"{ci(boot[key], 1)}; verdicts given {100 * (1 - withheld.mean()):.0f}% of {n} films")
            sens, spec = rates(y[~withheld], pos[~withheld])
            print(f"  counting only the films that get a verdict: sensitivity {sens:.3f}, specificity {spec:.3f}")
            wrong = ~withheld & (pos != y)
            print(f"  wrong verdicts: {100 * wrong.mean():.1f}% of the films ({100 * wrong[~y].mean():.1f}% of the "
                  f"non-COVID-19 films given a positive one; withheld verdicts are not wrong)")
        g = np.array(boot["gain"]).mean(0)
        print(f"gain: sensitivity {g[0]:+.3f} {ci(boot['gain'], 0, True)}, specificity {g[1]:+.3f} "
              f"{ci(boot['gain'], 1, True)} "
              "(bootstrap over films of half B, paired)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
