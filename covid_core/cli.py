"""The command line: ``python -m covid_core <command> ...`` (``train.py`` is ``train``).

Each command lives in ``covid_core/commands/<name>.py`` with ``add_arguments(parser)``
and ``main(args) -> exit code``. Errors a user can fix print one line, never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import sys

from .errors import CovidCoreError
from .formatting import printable

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


class HelpWithDefaults(argparse.ArgumentDefaultsHelpFormatter):
    """Adds "(default: X)" to an option's help, unless the help already says what the default is, or there is none
    to tell (a required option, or an unset one whose help describes what happens)."""

    def _get_help_string(self, action):
        help_text = action.help or ""
        if "default" in help_text or action.required or action.default in (None, "", argparse.SUPPRESS):
            return help_text
        return super()._get_help_string(action)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m covid_core",
                                     description="Chest X-ray COVID-19 / pneumonia classification toolkit.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        module = importlib.import_module(f"covid_core.commands.{module_name}")
        p = sub.add_parser(name, help=help_text, description=(module.__doc__ or help_text).strip(),
                           formatter_class=HelpWithDefaults)
        module.add_arguments(p)
        p.set_defaults(_main=module.main)
    return parser


class TerminalText:
    """A text stream that writes control characters as their codes (``formatting.printable``), carriage returns
    aside (progress bars redraw with them): what a command prints can quote a file's name or a data set's cell,
    and a terminal would obey an escape sequence there. Names are also printed with their carriage returns coded."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(printable(text, keep="\r"))
        return len(text)

    def __getattr__(self, name):  # flush, isatty, fileno, encoding: the stream's own
        return getattr(self._stream, name)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with contextlib.redirect_stdout(TerminalText(sys.stdout)), contextlib.redirect_stderr(TerminalText(sys.stderr)):
        try:
            return int(args._main(args) or 0)
        except CovidCoreError as exc:
            print(f"error: {printable(exc)}", file=sys.stderr)
            return 2
        except OSError as exc:  # a disk that fills up, a file taken away while it is written: said, not a traceback
            print(f"error: {printable(exc)}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
