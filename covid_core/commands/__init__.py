"""The command line's subcommands, one module each (``add_arguments`` and ``main``)."""

from __future__ import annotations

import argparse


def add_site_arguments(p: argparse.ArgumentParser, verdicts: bool = True) -> None:
    """``--site`` (a site file from validate-site) and, for commands that give verdicts, ``--unvalidated``."""
    p.add_argument("--site", default=None, help="site file from validate-site: its operating point, calibration, "
                   "familiarity reference and head")
    if verdicts:
        p.add_argument("--unvalidated", action="store_true",
                       help="research use: give COVID-19 verdicts although no --site file validates the model at "
                            "this hospital (without it they are withheld: at a hospital it never saw, the model "
                            "calls many normal adults COVID-19; see docs/shortcuts.md)")
