"""A finished site validation on the disk, so that a restarted server shows it again (the Validate page's
:class:`~covid_core.site_job.ValidationJobs` keeps the newest of each model in memory, and here)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from pathlib import Path


class SavedValidation:
    """A finished validation read back from the disk (:func:`save_validation`): the attributes of a finished
    :class:`ValidationJob` the Validate page reads."""

    running, error = False, None

    def __init__(self, model: str, name: str, started: float, report: dict, films):
        self.model, self.name, self.started, self.report, self.films = model, name, started, report, films
        self.done = self.total = len(films)


def _saved_path(store: Path, model: str) -> Path:
    return Path(store) / f"{hashlib.sha256(model.encode()).hexdigest()[:16]}.json"


def save_validation(store: Path, job) -> Path:
    """Write a finished validation (its report and per-film rows) as the newest of its model in ``store``, whole
    or not at all (a temporary file renamed into place): a restarted server shows it again."""
    path = _saved_path(store, job.model)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"model": job.model, "name": job.name, "started": job.started, "report": job.report,
                       "films": json.loads(job.films.to_json(orient="split", index=False))})
    fd, tmp = tempfile.mkstemp(prefix=".validation.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_validation(store: Path, model: str, checkpoint_sha256: str | None) -> SavedValidation | None:
    """The newest saved validation of ``model`` (its checkpoint's path), or None when there is none or it cannot be
    read as one (a damaged file is left alone: the page then shows no earlier validation, never an error), or it
    was made for another version of the checkpoint at that path than the one whose digest is ``checkpoint_sha256``."""
    import pandas as pd

    path = _saved_path(store, model)
    try:
        data = json.loads(path.read_text())
        report, films = data["report"], data["films"]
        if data["model"] != model or not isinstance(report, dict) or not _is_report(report):
            return None
        if checkpoint_sha256 is None or made_for(report) != checkpoint_sha256:
            return None
        table = pd.read_json(io.StringIO(json.dumps(films)), orient="split", dtype=False)
        return SavedValidation(model, str(data["name"]), float(data["started"]), report, table)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def made_for(report: dict) -> str | None:
    """The sha256 of the checkpoint a validation report was made for, or None when it does not say."""
    made = report.get("checkpoint")
    return made.get("sha256") if isinstance(made, dict) else None


def _is_report(report: dict) -> bool:
    """Whether a saved report has what the Validate page reads before anything else (the figures' own readers
    show "n/a" for a value that is not one)."""
    return (isinstance(report.get("site"), str) and isinstance(report.get("counts"), dict)
            and all(isinstance(report.get(k), list) for k in ("adapted", "skipped", "problems"))
            and all(isinstance(report.get(k), dict) for k in ("before", "after")))
