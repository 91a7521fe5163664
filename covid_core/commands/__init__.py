"""The command line's subcommands, one module each (``add_arguments`` and ``main``)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def add_site_arguments(p: argparse.ArgumentParser, verdicts: bool = True) -> None:
    """``--site`` (a site file from validate-site) and, for commands that give verdicts, ``--unvalidated``."""
    p.add_argument("--site", default=None, help="site file from validate-site: its operating point, calibration, "
                   "familiarity reference and head")
    if verdicts:
        p.add_argument("--unvalidated", action="store_true",
                       help="research use: give COVID-19 verdicts although no --site file validates the model at "
                            "this hospital (without it they are withheld: at a hospital it never saw, the model "
                            "calls many normal adults COVID-19; see docs/shortcuts.md)")


def output_file(path, suffix: str | None = None, flag: str = "--out") -> Path:
    """``path`` ready to be written, checked before any work is done: ``suffix`` (".png") when one is required, and
    its folder made where missing. ConfigError naming the folder and why, when it cannot be made or written to."""
    from ..errors import ConfigError

    out = Path(path).expanduser()
    if suffix and out.suffix.lower() != suffix:
        raise ConfigError(f"{flag} {out} must end in {suffix}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot make the folder {out.parent} for {flag}: {exc.strerror or exc}") from exc
    if not os.access(out.parent, os.W_OK):
        raise ConfigError(f"cannot write to the folder {out.parent} ({flag}): permission denied")
    if out.is_dir():
        raise ConfigError(f"{flag} {out} is a folder; give a file name")
    return out
