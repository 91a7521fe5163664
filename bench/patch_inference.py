"""Does a patch-trained model (``--patch-crop``) do better when it reads windows at inference, as it was trained?

The product reads a patch-trained model on the whole film (its global average pool takes any size). Oh, Park and
Ye (IEEE TMI 2020) instead average the model's output over many windows of the film. This scores a
leave-one-source-out checkpoint (``bench/shortcut_ablation.py``, a ``*_patch*_without_<source>`` row) both ways on
the source's unseen TRAIN films and on TEST's COVID-19 films: the whole film, and the mean calibrated probability
over a ``grid`` x ``grid`` lattice of windows of the training window's side. Only the figures that need no
familiarity reference are printed (that reference was fitted on whole films): NIH's unseen normal vs pneumonia AUC,
their normals against TEST's COVID-19 films (AUC of p(COVID-19)), the share of unseen normals most probably
COVID-19, and the share of unseen films that a threshold keeping 90% of TEST's COVID-19 films positive would call
positive (all wrong: the unseen source holds no COVID-19). That threshold is chosen on TEST's own COVID-19 films
for each reading, since the stored one was chosen for whole films; it flatters both readings alike.

    python bench/patch_inference.py --data DATA_DIR --source nih \\
        --checkpoint runs/ablation-160/resnet18-160-12-s0-group_mask_patch_without_nih.pt

A model trained on whole films can be read the same way as a control (``--window 0.5``).
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from shortcut_ablation import covid_test_films, figures_from_probabilities, not_held_out, print_table, unseen_films


def window_corners(size: int, side: int, grid: int) -> list[tuple[int, int]]:
    """(top, left) of ``grid`` x ``grid`` windows of ``side`` pixels spread evenly over a ``size`` x ``size`` film,
    the first at the top-left corner and the last at the bottom-right."""
    steps = np.linspace(0, size - side, grid).round().astype(int).tolist()
    return [(top, left) for top in steps for left in steps]


def window_probabilities(clf, images: np.ndarray, side: int, grid: int) -> np.ndarray:
    """uint8 NxSxS -> NxC: the mean over the windows of :func:`window_corners` of the calibrated probabilities."""
    from covid_core.inference import calibrated_probabilities, logits_and_features

    total = 0.0
    corners = window_corners(images.shape[-1], side, grid)
    for top, left in corners:
        windows = np.ascontiguousarray(images[:, top:top + side, left:left + side])
        logits, _ = logits_and_features(clf.model, windows, clf.preprocess, device=clf.device)
        total = total + calibrated_probabilities(logits, clf.temperature)
    return total / len(corners)


def positive_at_covid_sensitivity(probs: np.ndarray, covid_probs: np.ndarray, covid_index: int,
                                  sensitivity: float = 0.90) -> float:
    """The share of films (``probs``, N x C) whose p(COVID-19) reaches the highest threshold that still keeps
    ``sensitivity`` of the COVID-19 films (``covid_probs``) positive."""
    covid = np.sort(covid_probs[:, covid_index])[::-1]
    threshold = covid[max(0, int(np.ceil(sensitivity * len(covid))) - 1)]
    return float((probs[:, covid_index] >= threshold).mean())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True)
    p.add_argument("--source", required=True, help="the source the checkpoint was trained without (nih, kermany)")
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--grid", type=int, default=4, help="windows per side (grid x grid windows per film)")
    p.add_argument("--window", type=float, default=None,
                   help="window side as a share of the film's (default: the checkpoint's --patch-crop; needed for a "
                        "model trained on whole films, read as a control)")
    args = p.parse_args()

    from covid_core.checkpoint import load_classifier
    from covid_core.inference import predict_pixels

    clf = load_classifier(args.checkpoint)
    problem = not_held_out(clf, args.checkpoint, args.source)
    share = args.window or float((clf.metadata.get("train_config") or {}).get("patch_crop") or 0)
    if problem or not 0 < share <= 1:
        p.error(problem or f"{args.checkpoint} was not trained with --patch-crop: give --window")
    images, labels = unseen_films(clf, args.data, args.source)
    covid = covid_test_films(clf, args.data)
    side = max(8, round(share * images.shape[-1]))
    nothing = np.zeros(len(labels), dtype=bool)
    classes, threshold = list(clf.classes), clf.threshold["value"]
    readings = {"whole film (as the product reads it)": (predict_pixels(clf, images)[0], predict_pixels(clf, covid)[0]),
                f"mean of {args.grid}x{args.grid} windows of {side} px": (
                    window_probabilities(clf, images, side, args.grid), window_probabilities(clf, covid, side, args.grid))}
    rows = {}
    for name, (probs, covid_probs) in readings.items():
        rows[name] = {**figures_from_probabilities(probs, classes, labels, nothing, threshold, covid_probs),
                      "unseen_positive_at_90_test_covid": positive_at_covid_sensitivity(
                          probs, covid_probs, classes.index("covid19"))}
    print(f"{args.checkpoint}: {len(labels)} unseen {args.source} TRAIN films, {len(covid)} TEST COVID-19 films")
    print_table(rows, "inference", {
        "unseen normal vs pneumonia AUC": "unseen_normal_vs_pneumonia",
        "unseen normals vs TEST COVID-19 AUC": "unseen_normal_vs_covid",
        "unseen normals most probably COVID-19": "unseen_normals_called_covid",
        "unseen films positive at 90% TEST COVID-19 sensitivity": "unseen_positive_at_90_test_covid"})
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
