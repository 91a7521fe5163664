"""A file's SHA-256, read in 1 MB chunks: how a site file names the checkpoint it validated, how a model's card
names the file it started from, and how the data checks find identical images."""

from __future__ import annotations

import hashlib
from pathlib import Path


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
