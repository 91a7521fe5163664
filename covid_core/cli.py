"""The command line: ``python -m covid_core <command> ...`` (``train.py`` is ``train``).

Each command lives in ``covid_core/commands/<name>.py`` with ``add_arguments(parser)``
and ``main(args) -> exit code``. Errors a user can fix print one line, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import CovidCoreError

COMMANDS = {
    "train": ("train", "train a classifier (or the denoising autoencoder with --task denoise)"),
    "evaluate": ("evaluate", "evaluate a checkpoint on a data split; last line is JSON"),
    "predict": ("predict", "classify image files and write a CSV"),
    "model-card": ("model_card", "write a model card (markdown) from a checkpoint's metadata"),
    "fit-ood": ("fit_ood", "refit a classifier checkpoint's out-of-distribution score with the current method"),
    "explain": ("explain", "explain a prediction with a heatmap overlay (Grad-CAM family)"),
    "validate-site": ("validate_site", "validate a classifier on a hospital's labelled films and write a site file"),
    "denoise": ("denoise", "denoise an image file (dae, dip, nlm, gaussian, median, bm3d) and write a PNG"),
    "train-dae": ("train_dae", "train the denoising autoencoder (same as train --task denoise)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m covid_core",
                                     description="Chest X-ray COVID-19 / pneumonia classification toolkit.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(f"covid_core.commands.{module_name}")
        p = sub.add_parser(name, help=help_text, description=(module.__doc__ or help_text).strip(),
                           formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        module.add_arguments(p)
        p.set_defaults(_main=module.main)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._main(args) or 0)
    except CovidCoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
