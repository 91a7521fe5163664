"""Where a command or a run writes a file: checked before any work is done."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ConfigError


def _make_folder(folder: Path, flag: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot make the folder {folder} for {flag}: {exc.strerror or exc}") from exc
    if not os.access(folder, os.W_OK):
        raise ConfigError(f"cannot write to the folder {folder} ({flag}): permission denied")


def output_folder(path, flag: str = "--out") -> Path:
    """``path`` as a folder to write files into, made where missing; ConfigError when it is a file or cannot be
    made or written to."""
    out = Path(path).expanduser()
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{flag} {out} is a file; give a folder (the files are written into it)")
    _make_folder(out, flag)
    return out


def output_file(path, suffix: str | None = None, flag: str = "--out") -> Path:
    """``path`` ready to be written, checked before any work is done: ``suffix`` (".png") when one is required, and
    its folder made where missing. ConfigError naming the folder and why, when it cannot be made or written to."""
    out = Path(path).expanduser()
    if suffix and out.suffix.lower() != suffix:
        raise ConfigError(f"{flag} {out} must end in {suffix}")
    _make_folder(out.parent, flag)
    if out.is_dir():
        raise ConfigError(f"{flag} {out} is a folder; give a file name")
    return out
