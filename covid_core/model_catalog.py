"""Every checkpoint a user could pick: files in the weights folder and finished training runs.

Each entry says whether it is usable as a classifier and, if not, why (corrupt, foreign,
refused because it holds pickled code, a denoiser rather than a classifier). Metadata is
read through :func:`covid_core.checkpoint.load_checkpoint_dict` (``weights_only=True``).
Weights folder: ``$COVID_XRAY_WEIGHTS`` or ``<repo>/weights``.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .checkpoint import CLASSIFIER_FORMAT, load_checkpoint_dict
from .digests import file_sha256
from .errors import CheckpointError
from .runs import default_runs_dir, list_runs
from .training_data import training_data

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL_FILE = "resnet18.pt"  # the app's default classifier, listed first when present
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")


def weights_dir() -> Path:
    """The weights folder: ``$COVID_XRAY_WEIGHTS`` or ``<repo>/weights``."""
    return Path(os.environ.get("COVID_XRAY_WEIGHTS") or REPO_ROOT / "weights")


@dataclass(eq=False)  # metadata holds tensors: compare by identity
class CatalogEntry:
    """One checkpoint file.

    label: what a user sees ("resnet18.pt" or "run 20250101-...-cnn-ab12cd").
    source: "weights" or "run". kind: "classifier", "denoiser" or "unknown".
    fingerprint: first 12 hex digits of the file's SHA-256 (identifies the exact weights).
    metadata: the checkpoint dict without the state dict (empty when unusable).
    """

    label: str
    path: Path
    source: str
    usable: bool
    kind: str = "unknown"
    reason: str | None = None
    fingerprint: str = ""
    size_mb: float = 0.0
    metadata: dict = field(default_factory=dict)

    @property
    def model_name(self) -> str:
        return str(self.metadata.get("model_name", "?"))

    @property
    def target(self) -> str:
        return str(self.metadata.get("target", "?"))

    def summary(self) -> str:
        """One line for a select box: name, architecture, target, TEST macro AUC."""
        if self.kind == "denoiser":
            return f"{self.label} (denoiser)"
        if not self.usable:
            return f"{self.label} (unusable: {self.reason})"
        test = (self.metadata.get("metrics") or {}).get("test") or {}
        auc = test.get("macro_auc")
        auc_txt = f" (AUC {auc:.2f})" if isinstance(auc, (int, float)) else ""
        return f"{self.label}{auc_txt}"

    def details(self) -> str:
        """The rest of what identifies the model, for a caption under a select box: architecture, target and
        classes, and its TEST macro AUC with the data set it was measured on."""
        test = (self.metadata.get("metrics") or {}).get("test") or {}
        auc, data = test.get("macro_auc"), training_data(self.metadata).name
        auc_txt = (f", TEST macro AUC {auc:.3f}" + (f" on {data}" if data else "")
                   if isinstance(auc, (int, float)) else "")
        return f"{self.model_name}, {self.target} ({', '.join(self.metadata.get('classes', []))}){auc_txt}"


_CACHE: dict[tuple, CatalogEntry] = {}


def describe_checkpoint(path: str | Path, label: str | None = None, source: str = "weights") -> CatalogEntry:
    """Inspect one file; never raises for a bad checkpoint (the entry carries the reason)."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError as exc:
        return CatalogEntry(label or path.name, path, source, False, reason=f"cannot read: {exc.strerror or exc}")
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, label, source)
    if key in _CACHE:
        return _CACHE[key]
    entry = CatalogEntry(label or path.name, path, source, False, size_mb=st.st_size / 2**20)
    try:
        ckpt = load_checkpoint_dict(path)
    except CheckpointError as exc:
        entry.reason = str(exc)
    else:
        entry.metadata = {k: v for k, v in ckpt.items() if k not in ("state_dict", "optimizer", "scheduler", "rng")}
        fmt = str(ckpt.get("format", ""))
        if fmt == CLASSIFIER_FORMAT:
            entry.kind, entry.usable = "classifier", True
        elif "dae" in fmt or "denois" in fmt or "dae" in path.stem.lower():
            entry.kind, entry.reason = "denoiser", "a denoising autoencoder, not a classifier"
        elif "optimizer" in ckpt:
            entry.reason = "a training resume state (last.pt), not a finished model"
        else:
            entry.reason = f"not a covid_core classifier checkpoint (format {ckpt.get('format')!r})"
        entry.fingerprint = file_sha256(path)[:12]
    _CACHE[key] = entry
    return entry


def list_checkpoints(weights: str | Path | None = None, runs_dir: str | Path | None = None) -> list[CatalogEntry]:
    """All checkpoints: weights folder files (DEFAULT_MODEL_FILE first, then by name), then finished runs
    (newest first).

    Runs that are still going, failed or were cancelled without a best.pt are left out.
    """
    entries = []
    folder = Path(weights) if weights else weights_dir()
    if folder.is_dir():
        for p in sorted(folder.iterdir(), key=lambda p: (p.name != DEFAULT_MODEL_FILE, p.name)):
            if p.is_file() and p.suffix.lower() in CHECKPOINT_SUFFIXES and not p.name.startswith("."):
                entries.append(describe_checkpoint(p, source="weights"))
    for run in list_runs(runs_dir or default_runs_dir()):
        status = run.read_json("status.json", {})
        if status.get("state") != "finished" or not run.best_checkpoint.is_file():
            continue
        entries.append(describe_checkpoint(run.best_checkpoint, label=f"run {run.id}", source="run"))
    return entries


def site_file_for(checkpoint: str | Path) -> Path | None:
    """The active site file of a checkpoint: ``<name>.site.json`` beside it (written by the Validate page or
    ``validate-site --out``), or None."""
    path = Path(checkpoint)
    site = path.with_name(path.stem + ".site.json")
    return site if site.is_file() else None


def retire_site_file(checkpoint: str | Path) -> Path:
    """Make a checkpoint's active site file inactive by renaming it ``<name>.site-retired-<time>.json`` (kept, not
    deleted: it records a validation that was made); returns the new path. OSError when it cannot be renamed,
    FileNotFoundError when there is none."""
    site = site_file_for(checkpoint)
    if site is None:
        raise FileNotFoundError(f"{Path(checkpoint).name} has no active site file")
    name = f"{Path(checkpoint).stem}.site-retired-{time.strftime('%Y%m%d-%H%M%S')}"
    target, n = site.with_name(f"{name}.json"), 1
    while target.exists():
        n += 1
        target = site.with_name(f"{name}-{n}.json")
    site.rename(target)
    return target


def retired_site_files(checkpoint: str | Path) -> list[Path]:
    """The checkpoint's earlier site files (:func:`retire_site_file`), the most recently written first."""
    path = Path(checkpoint)
    return sorted(path.parent.glob(f"{path.stem}.site-retired-*.json"),
                  key=lambda p: (p.stat().st_mtime_ns, p.name), reverse=True)


def activate_site_file(checkpoint: str | Path, text: str) -> tuple[Path, Path | None]:
    """Make ``text`` (a site file's JSON) the checkpoint's active site file ``<name>.site.json``. An active one is
    retired first (:func:`retire_site_file`: renamed and kept, never overwritten), and the new one is written to a
    temporary file and renamed into place, so that it is there whole or not at all; the same text again changes
    nothing. Returns (the active path, the retired path or None); OSError when the folder cannot be written."""
    path = Path(checkpoint)
    target = path.with_name(path.stem + ".site.json")
    if target.is_file() and target.read_text() == text:  # already active (a second click): nothing to retire
        return target, None
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        retired = retire_site_file(path) if site_file_for(path) else None
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target, retired


def usable_classifiers(weights: str | Path | None = None, runs_dir: str | Path | None = None) -> list[CatalogEntry]:
    return [e for e in list_checkpoints(weights, runs_dir) if e.usable and e.kind == "classifier"]


def _test_auc(entry: CatalogEntry) -> float | None:
    auc = ((entry.metadata.get("metrics") or {}).get("test") or {}).get("macro_auc")
    return float(auc) if isinstance(auc, (int, float)) else None


def trial_reason(entry: CatalogEntry, classifiers: list[CatalogEntry]) -> str | None:
    """Why a usable classifier is not offered for diagnosis outside research mode, or None if it is.

    Checkpoints in the weights folder are always offered. A training run is held back when it was a trial
    (trained on a subset: --limit), has no TEST figures, or scores a lower TEST macro AUC than the weakest
    classifier in the weights folder (for the same target).
    """
    if entry.source == "weights":
        return None
    cfg = entry.metadata.get("train_config") or {}
    if cfg.get("limit"):
        return f"a trial run on at most {cfg['limit']} images per split"
    auc = _test_auc(entry)
    if auc is None:
        return "no TEST figures"
    shipped = [a for e in classifiers if e.source == "weights" and e.target == entry.target
               for a in [_test_auc(e)] if a is not None]
    if shipped and auc < min(shipped):
        return f"TEST macro AUC {auc:.3f}, below the shipped models' ({min(shipped):.3f})"
    return None


def held_back_reasons(entries: list[CatalogEntry]) -> dict[str, str]:
    """Why each usable classifier among ``entries`` that Diagnose offers only in research mode is held back
    (:func:`trial_reason`), by its path as a string."""
    classifiers = [e for e in entries if e.usable and e.kind == "classifier"]
    return {str(e.path): reason for e in classifiers if (reason := trial_reason(e, classifiers))}


def diagnose_offer(checkpoint: str | Path, entries: list[CatalogEntry]) -> str:
    """Where a finished run's ``checkpoint`` stands on the Diagnose page, in words (Markdown, its own text escaped):
    offered, offered in research mode only and why (:func:`trial_reason`), or not usable and why."""
    from .formatting import markdown_plain

    path = Path(checkpoint).resolve()
    entry = next((e for e in entries if Path(e.path).resolve() == path), None)
    if entry is None:
        return "This run's model is not in the list the **Diagnose** page offers (its checkpoint could not be found)."
    if not entry.usable:
        return f"This run's model cannot be used on the **Diagnose** page: {markdown_plain(entry.reason)}."
    reason = held_back_reasons(entries).get(str(entry.path))
    if reason:
        return f"The **Diagnose** page offers this model in research mode only: {reason}."
    return "This model is now selectable on the **Diagnose** page."


def source_confounds(per_source: dict, min_share: float = 0.8) -> list[str]:
    """Warnings for sources whose TEST images are (nearly) all one class.

    per_source: metadata["metrics"]["test"]["per_source"] ({source: {"n", "true": {class: n}, ...}}).
    When a class comes (almost) only from one source, a model can score well by recognising the
    source (scanner, text marks, age group) instead of the disease.
    """
    warnings = []
    for source, s in sorted(per_source.items()):
        true = {c: n for c, n in (s.get("true") or {}).items() if n}
        total = sum(true.values())
        if not total or len(per_source) < 2:
            continue
        top, n = max(true.items(), key=lambda kv: kv[1])
        if n / total >= min_share:
            warnings.append(f"source '{source}': {n} of {total} TEST images are '{top}'; a high score on it may "
                            f"reflect recognising the source rather than the finding")
    return warnings
