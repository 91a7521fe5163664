"""Which server folders a browser user may point the app at (the Train form's data folder).

A web form that accepts any path lets anyone who reaches the app start jobs on ``/``, ``/etc`` or
``/proc/self`` and learn, from the answers, which paths exist on the server. The app therefore only
accepts folders inside the configured data roots:

- ``COVID_XRAY_DATA_ROOTS``: folders separated by ``os.pathsep`` (":" on Linux/macOS);
- else the folder ``COVID_XRAY_DATA`` names (the form's default);
- else none: the form then says how to configure one.

A folder outside the roots gets the same answer whether it exists or not. The command line
(``train.py --data``) is not restricted: whoever runs it already has the machine.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ConfigError

MAX_PATH_CHARS = 1024


def configured_roots() -> list[Path]:
    """The data roots, resolved, in the order configured (see the module doc)."""
    text = os.environ.get("COVID_XRAY_DATA_ROOTS") or os.environ.get("COVID_XRAY_DATA") or ""
    roots = []
    for part in text.split(os.pathsep):
        if part.strip():
            try:
                roots.append(Path(part.strip()).expanduser().resolve())
            except (OSError, RuntimeError):
                continue
    return roots


def check_data_folder(value: str, roots: list[Path] | None = None) -> Path:
    """The resolved folder for a form's ``value`` if it lies inside a data root and is a folder.

    Raises ConfigError with a message that names the allowed roots (never whether a path outside them exists).
    """
    roots = configured_roots() if roots is None else roots
    text = (value or "").strip()
    if not text:
        raise ConfigError("give a data folder")
    if len(text) > MAX_PATH_CHARS or "\0" in text:
        raise ConfigError(f"the data folder is not a usable path (over {MAX_PATH_CHARS} characters, or a NUL "
                          "character); give the folder that holds the data set")
    if not roots:
        raise ConfigError("no data folders are configured for the app: set COVID_XRAY_DATA_ROOTS (folders separated "
                          f"by '{os.pathsep}') or COVID_XRAY_DATA before starting it, then choose a folder inside one")
    allowed = ", ".join(f"`{r}`" for r in roots)
    outside = ConfigError(f"the data folder must lie inside a configured data folder: {allowed}")
    if text.startswith("~"):  # no home-folder lookups of other users (~root): they reveal accounts
        raise outside
    try:
        path = Path(text)
        path = (path if path.is_absolute() else roots[0] / path).resolve()
    except (OSError, RuntimeError, ValueError):
        raise outside from None
    if not any(path == r or r in path.parents for r in roots):
        raise outside
    if not path.is_dir():
        raise ConfigError(f"`{path}` is not a folder inside {allowed}; give the folder that holds the data set")
    return path
