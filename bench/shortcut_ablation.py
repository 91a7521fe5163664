"""Which training method makes a classifier read the lungs instead of the hospital? One row per method.

Each row trains with train.py on the same data, seed, size and schedule, then reads the figures that
training stored in the checkpoint (VALIDATION and TEST): macro AUC, the within-source AUCs (NIH adults
normal vs pneumonia, Kermany children normal vs pneumonia, COVID-19 collection COVID-19 vs other
pneumonia), the share of NIH adult pneumonias labelled pneumonia, COVID-19 sensitivity and PPV at the
operating threshold chosen on VALIDATION, calibration error, and the source probe's accuracy (a linear
probe predicting the source from the penultimate features, cross-validated by patient; lower is better).
Choose by the VALIDATION columns; TEST is there to report, not to choose.

    python bench/shortcut_ablation.py --data ../shared/data/coronahack-mini [--rows baseline,group,...]
        [--model resnet18 --image-size 128 --epochs 8] [--out docs/shortcut_ablation.md]

Rows already trained (their checkpoint exists under --work) are read, not trained again; a checkpoint's name holds
the model, size, epochs, seed and row, not --covid-sensitivity or --pretrained, so use another --work to compare
thresholds or starting weights.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

METHODS = {
    "baseline": ["--balance", "loss", "--augmentation", "light"],
    "group": ["--balance", "group", "--augmentation", "light"],
    "strong": ["--balance", "loss", "--augmentation", "strong"],
    "group_strong": ["--balance", "group", "--augmentation", "strong"],
    "group_clahe": ["--balance", "group", "--augmentation", "light", "--equalize", "clahe"],
    "group_adversary": ["--balance", "group", "--augmentation", "light", "--source-adversary", "0.5"],
    "group_adversary_1": ["--balance", "group", "--augmentation", "light", "--source-adversary", "1.0"],
    "group_hist": ["--balance", "group", "--augmentation", "light", "--equalize", "hist"],
    "group_hist_amplitude": ["--balance", "group", "--augmentation", "light", "--equalize", "hist",
                             "--amplitude-mix", "0.5"],
    "group_strong_clahe": ["--balance", "group", "--augmentation", "strong", "--equalize", "clahe"],
    "group_strong_hist": ["--balance", "group", "--augmentation", "strong", "--equalize", "hist"],
    "group_amplitude": ["--balance", "group", "--augmentation", "light", "--amplitude-mix", "0.5"],
    "group_amplitude_all": ["--balance", "group", "--augmentation", "light", "--amplitude-mix", "1.0"],
    "group_randconv": ["--balance", "group", "--augmentation", "light", "--random-conv", "0.5"],
    "group_sourcemix": ["--balance", "group", "--augmentation", "light", "--source-mix", "0.5"],
    "group_dro": ["--balance", "group", "--augmentation", "light", "--group-dro", "0.01"],
    "group_dro_01": ["--balance", "group", "--augmentation", "light", "--group-dro", "0.1"],
    "group_dro_wd": ["--balance", "group", "--augmentation", "light", "--group-dro", "0.01", "--weight-decay", "1.0"],
    "group_contrast": ["--balance", "group", "--augmentation", "light", "--source-contrast", "0.5"],
    "group_mixstyle": ["--balance", "group", "--augmentation", "light", "--mix-style", "0.5"],
    "group_prior": ["--balance", "group", "--augmentation", "light", "--source-prior", "1.0"],
    "group_prior_half": ["--balance", "group", "--augmentation", "light", "--source-prior", "0.5"],
    "group_average": ["--balance", "group", "--augmentation", "light", "--ema-decay", "0.996"],
    "group_patch": ["--balance", "group", "--augmentation", "light", "--patch-crop", "0.5"],
    "group_mask_patch": ["--balance", "group", "--augmentation", "light", "--fit", "mask", "--patch-crop", "0.5"],
    "group_hist_mask_patch": ["--balance", "group", "--augmentation", "light", "--equalize", "hist", "--fit", "mask",
                              "--patch-crop", "0.5"],
    "group_thorax": ["--balance", "group", "--augmentation", "light", "--fit", "thorax"],
    "group_mask": ["--balance", "group", "--augmentation", "light", "--fit", "mask"],
    "group_strong_thorax": ["--balance", "group", "--augmentation", "strong", "--fit", "thorax"],
    "group_strong_thorax_clahe": ["--balance", "group", "--augmentation", "strong", "--fit", "thorax",
                                  "--equalize", "clahe"],
}
# Leave one source out: "<method>_without_<source>" drops the source's TRAIN films and keeps its TEST films, so
# the source is a hospital the model never saw (its TRAIN films are scored too: see unseen_source_figures).
# "<method>_without_collection_normals": normal adults of hospitals the model never saw, in a model that knows NIH's
# normal adults (as the shipped ones do): the COVID-19 collections' 18 normal films and their patients' other films
# leave TRAIN; the collections' other patients stay.
HOLDOUTS = {"nih": "nih", "kermany": "kermany", "collection_normals": "cohen:normal,figure1:normal"}
ROWS = {**METHODS, **{f"{method}_without_{name}": [*flags, "--holdout-source", held]
                      for method, flags in METHODS.items() for name, held in HOLDOUTS.items()}}
QUESTIONS = ("nih_normal_vs_pneumonia", "kermany_normal_vs_pneumonia", "cohen_covid_vs_other_pneumonia")


def _f(v, digits=3):
    return "n/a" if v is None else f"{v:.{digits}f}"


def train_row(name: str, args, checkpoint: Path) -> float:
    cmd = [sys.executable, str(REPO / "train.py"), "--data", args.data, "--model", args.model,
           "--image-size", str(args.image_size), "--epochs", str(args.epochs), "--ema-decay", "0.99",
           "--covid-sensitivity", str(args.covid_sensitivity),
           "--seed", str(args.seed), "--runs-dir", str(Path(args.work) / "runs"), "--run-id", checkpoint.stem,
           "--out", str(checkpoint), "--quiet", *ROWS[name],
           *(["--pretrained", args.pretrained] if args.pretrained else [])]
    print("$ " + " ".join(cmd[1:]), flush=True)
    start = time.time()
    subprocess.run(cmd, check=True, cwd=REPO)
    return time.time() - start


def row_figures(checkpoint: Path) -> dict:
    from covid_core.checkpoint import load_checkpoint_dict

    ckpt = load_checkpoint_dict(checkpoint)
    val, test = ckpt["metrics"]["val"], ckpt["metrics"].get("test", {})
    thr = ckpt.get("threshold", {}).get("test", {})

    def within(split, key, field="auc"):
        return split.get("shortcuts", {}).get("within_source", {}).get(key, {}).get(field)

    probe = test.get("shortcuts", {}).get("source_probe") or {}
    nih_normal = (test.get("per_source", {}).get("nih", {}).get("confusion") or {}).get("normal") or {}
    return {
        "val_macro_auc": val.get("macro_auc"), "val_accuracy": val.get("accuracy"),
        **{f"val_{q}": within(val, q) for q in QUESTIONS},
        "test_accuracy": test.get("accuracy"), "test_macro_auc": test.get("macro_auc"), "test_ece": test.get("ece"),
        **{f"test_{q}": within(test, q) for q in QUESTIONS},
        "test_nih_pneumonia_called": within(test, "nih_normal_vs_pneumonia", "positive_called"),
        "covid_sensitivity": thr.get("sensitivity"), "covid_ppv": thr.get("ppv"), "covid_fp": thr.get("fp"),
        "nih_normals_called_covid": (nih_normal.get("covid19", 0) / sum(nih_normal.values())) if nih_normal else None,
        "probe_accuracy": probe.get("accuracy"), "probe_majority": probe.get("majority_share"),
        "training_time_s": ckpt.get("training_time_s"),
    }


def unseen_source_figures(checkpoint: Path, data: str, source: str) -> dict:
    """A leave-one-source-out row scored on the held-out source's TRAIN films, which that model never saw and which
    TEST does not hold: normal vs pneumonia AUC (score 1 - p(normal)), the share of normals whose most probable
    class is COVID-19, and, as the product would show them (familiarity check and orientation check included),
    the shares of films withheld and of films given a COVID-19 positive verdict, all wrong here (the held-out
    sources hold no COVID-19). These choose between recipes; TEST reports.

    Also the new-hospital goal's own question, as near as this data comes to it: COVID-19 vs normal AUC of
    p(COVID-19) between the unseen source's normals and TEST's COVID-19 films (no COVID-19 film comes from a
    source a model can be trained without, so those come from a seen source, which flatters the figure)."""
    from covid_core.checkpoint import load_classifier

    clf = load_classifier(checkpoint)
    images, labels = unseen_films(clf, data, source)
    return verdict_figures(clf, images, labels, covid_films=covid_test_films(clf, data))


def not_held_out(clf, checkpoint, source: str) -> str | None:
    """Why ``source``'s TRAIN films are not unseen by this checkpoint (it was not trained with
    ``--holdout-source source``), or None when they are."""
    held_out = (clf.metadata.get("train_config") or {}).get("holdout_source") or None
    if held_out == source:
        return None
    return (f"{checkpoint} was trained {'on every source' if held_out is None else f'without {held_out!r}'}, so "
            f"{source!r}'s TRAIN films are not unseen; use a checkpoint made with --holdout-source {source}")


def _films(clf, data: str, where) -> tuple[np.ndarray, np.ndarray]:
    """(preprocessed films, labels) of the data set's rows (for ``clf``'s target) that ``where(table)`` selects,
    prepared for ``clf``."""
    from covid_core.cache import load_or_build
    from covid_core.datasets import load_dataset

    table = load_dataset(data).for_target(clf.target)
    table = table[where(table)].reset_index(drop=True)
    return load_or_build(table["path"].tolist(), clf.preprocess, progress=False), table["label"].to_numpy()


def unseen_films(clf, data: str, source: str) -> tuple[np.ndarray, np.ndarray]:
    """(preprocessed films, labels) of a source's TRAIN split, prepared for ``clf``. For held-out classes of
    sources (``cohen:normal,figure1:normal``, as ``--holdout-source`` takes them), those classes' films of both
    splits: a model trained without them saw none, and TEST alone holds too few."""
    from covid_core.datasets import holdout_films

    def unseen(t):
        films = holdout_films(t, source)
        return films if ":" in source else films & (t["split"] == "train").to_numpy()
    return _films(clf, data, unseen)


def covid_test_films(clf, data: str) -> np.ndarray:
    """The preprocessed COVID-19 films of TEST, prepared for ``clf``."""
    return _films(clf, data, lambda t: (t["label"] == "covid19") & (t["split"] == "test"))[0]


def verdict_figures(clf, images: np.ndarray, labels: np.ndarray, familiarity: bool = True,
                    covid_films: np.ndarray | None = None) -> dict:
    """The unseen_* figures of ``unseen_source_figures`` for these films; ``familiarity=False`` withholds nothing
    (for a network whose features no longer match its familiarity reference). With ``covid_films``, also the AUC
    of p(COVID-19) between them and these films' normals."""
    from covid_core.inference import score_pixels

    scores = score_pixels(clf, images, orientation=familiarity)
    withheld = familiarity_withheld(clf, scores) if familiarity else np.zeros(len(labels), dtype=bool)
    covid_probs = None if covid_films is None else score_pixels(clf, covid_films, orientation=False).probs
    return figures_from_probabilities(scores.probs, list(clf.classes), labels, withheld, clf.threshold["value"],
                                      covid_probs)


def familiarity_withheld(clf, scores) -> np.ndarray:
    """The films the product withholds as unfamiliar or turned, from ``score_pixels(clf, ..., orientation=True)``."""
    withheld = scores.ood > clf.ood["threshold"]
    if scores.turned is not None:
        withheld |= scores.turned
    return withheld


def figures_from_probabilities(probs: np.ndarray, classes: list[str], labels: np.ndarray, withheld: np.ndarray,
                               threshold: float, covid_probs: np.ndarray | None = None) -> dict:
    """:func:`verdict_figures` from calibrated probabilities (N x classes) of the unseen films, the films the
    familiarity check withholds and the COVID-19 operating threshold; ``covid_probs``: those of the COVID-19
    films the unseen normals are ranked against."""
    from covid_core.metrics import binary_auc

    covid_index = classes.index("covid19")
    normal = labels == "normal"
    both = normal | (labels == "pneumonia")
    called = np.asarray(classes)[probs.argmax(1)]
    positive = (probs[:, covid_index] >= threshold) & ~withheld
    figures = {}
    if covid_probs is not None:
        figures["unseen_normal_vs_covid"] = binary_auc(
            np.r_[np.zeros(int(normal.sum()), bool), np.ones(len(covid_probs), bool)],
            np.r_[probs[normal, covid_index], covid_probs[:, covid_index]])
    return {**figures, "unseen_n": int(both.sum()),
            "unseen_normal_vs_pneumonia": binary_auc(~normal[both], 1.0 - probs[both, classes.index("normal")]),
            "unseen_normals_called_covid": float((called[normal] == "covid19").mean()) if normal.any() else None,
            "unseen_withheld": float(withheld[both].mean()),
            "unseen_wrong_positive": float(positive[both & (labels != "covid19")].mean())}


def print_table(rows: dict, first: str, columns: dict[str, str]) -> None:
    """Print ``rows`` ({name: figures}) as a markdown table: ``first`` heads the names, ``columns`` maps each other
    heading to the key of its figure (three decimals)."""
    print("| " + " | ".join([first, *columns]) + " |")
    print("|" + "---|" * (len(columns) + 1))
    for name, r in rows.items():
        print("| " + " | ".join([name, *(f"{r[key]:.3f}" for key in columns.values())]) + " |")


def checkpoint_path(name: str, args) -> Path:
    """Where a row's checkpoint goes: named after its model, budget, seed and row (also its run id)."""
    return Path(args.work) / f"{args.model}-{args.image_size}-{args.epochs}-s{args.seed}-{name}.pt"


def goals_text(names: list[str], args) -> str:
    """Which goals (covid_core.goals) each row's TEST figures miss; the new-hospital goal, which TEST cannot
    measure, is what the leave-one-source-out columns stand in for."""
    from covid_core.checkpoint import load_checkpoint_dict
    from covid_core.goals import NEW_HOSPITAL_GOALS, unmet_goals_text

    lines = ["Goals on TEST, not reached:"]
    for name in names:
        lines.append(f"- {name}: {unmet_goals_text(load_checkpoint_dict(checkpoint_path(name, args))) or 'none'}")
    return "\n".join(lines + [f"New hospital (the leave-one-source-out columns stand in for it): {NEW_HOSPITAL_GOALS}"])


def table(rows: dict, args) -> str:
    head = ("| method | flags | VAL macro AUC | VAL NIH n/p | VAL Kermany n/p | VAL COVID vs other | TEST acc | "
            "TEST macro AUC | TEST ECE | TEST NIH n/p | NIH pneum. called pneum. | TEST Kermany n/p | "
            "TEST COVID vs other | COVID sens / PPV (FP) | NIH normals most probably COVID-19 | source probe (majority) | "
            "train s |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for name, r in rows.items():
        lines.append(
            f"| {name} | `{' '.join(ROWS[name])}` | {_f(r['val_macro_auc'])} | "
            f"{_f(r['val_nih_normal_vs_pneumonia'])} | {_f(r['val_kermany_normal_vs_pneumonia'])} | "
            f"{_f(r['val_cohen_covid_vs_other_pneumonia'])} | {_f(r['test_accuracy'])} | {_f(r['test_macro_auc'])} | "
            f"{_f(r['test_ece'])} | {_f(r['test_nih_normal_vs_pneumonia'])} | {_f(r['test_nih_pneumonia_called'])} | "
            f"{_f(r['test_kermany_normal_vs_pneumonia'])} | {_f(r['test_cohen_covid_vs_other_pneumonia'])} | "
            f"{_f(r['covid_sensitivity'])} / {_f(r['covid_ppv'])} ({r['covid_fp']}) | {_f(r['nih_normals_called_covid'])} | "
            f"{_f(r['probe_accuracy'])} ({_f(r['probe_majority'])}) | {_f(r['training_time_s'], 0)} |")
    return "\n".join(lines)


def holdout_table(rows: dict) -> str:
    """The leave-one-source-out rows: the held-out source's TRAIN films (unseen; used to choose) and its TEST films."""
    head = ("| method | flags | unseen TRAIN films (normal + pneumonia) | unseen normal vs pneumonia AUC | unseen normals "
            "most probably COVID-19 | unseen withheld | unseen given a wrong COVID-19 verdict | TEST NIH n/p | TEST NIH normals most probably COVID-19 | TEST Kermany n/p | "
            "TEST macro AUC | COVID sens / PPV (FP) | source probe | unseen normals vs TEST COVID-19 AUC |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for name, r in rows.items():
        if "unseen_n" not in r:
            continue
        lines.append(f"| {name} | `{' '.join(ROWS[name])}` | {r['unseen_n']} | {_f(r['unseen_normal_vs_pneumonia'])} | "
                     f"{_f(r['unseen_normals_called_covid'])} | {_f(r['unseen_withheld'])} | "
                     f"{_f(r['unseen_wrong_positive'])} | {_f(r['test_nih_normal_vs_pneumonia'])} | "
                     f"{_f(r['nih_normals_called_covid'])} | {_f(r['test_kermany_normal_vs_pneumonia'])} | "
                     f"{_f(r['test_macro_auc'])} | {_f(r['covid_sensitivity'])} / {_f(r['covid_ppv'])} "
                     f"({r['covid_fp']}) | {_f(r['probe_accuracy'])} | {_f(r.get('unseen_normal_vs_covid'))} |")
    return "\n".join(lines) if len(lines) > 2 else ""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated, from: {', '.join(ROWS)}")
    p.add_argument("--model", default="resnet18")
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--covid-sensitivity", type=float, default=0.95,
                   help="VALIDATION sensitivity the COVID-19 threshold keeps (the shipped models use 0.90)")
    p.add_argument("--work", default=str(REPO / "runs" / "ablation"), help="where the rows' runs and checkpoints go")
    p.add_argument("--pretrained", default="", help="every row starts from these weights (train.py --pretrained; "
                                                    "checkpoint names do not hold it: use its own --work)")
    p.add_argument("--out", default=None, help="also write the table (markdown) here")
    args = p.parse_args()
    names = [n.strip() for n in args.rows.split(",") if n.strip()]
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        p.error(f"unknown rows {unknown}; choose from: {', '.join(ROWS)}")
    rows = {}
    for name in names:
        checkpoint = checkpoint_path(name, args)
        if not checkpoint.is_file():
            train_row(name, args, checkpoint)
        rows[name] = row_figures(checkpoint)
        flags = ROWS[name]
        if "--holdout-source" in flags:
            rows[name].update(unseen_source_figures(checkpoint, args.data, flags[flags.index("--holdout-source") + 1]))
        print(json.dumps({"row": name, **rows[name]}), flush=True)
    text = (f"{args.model}, {args.image_size} px, {args.epochs} epochs, EMA 0.99 (unless a row's flags set "
            f"--ema-decay), seed {args.seed}, COVID-19 "
            f"threshold at {args.covid_sensitivity:g} VALIDATION sensitivity; "
            f"data {args.data}\n\n" + table(rows, args))
    if holdout_table(rows):
        text += "\n\nLeave one source out:\n\n" + holdout_table(rows)
    text += "\n\n" + goals_text(names, args)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
