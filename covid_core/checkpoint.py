"""Self-describing checkpoints: saved atomically, loaded only with ``weights_only=True``.

A classifier checkpoint is one dict::

    {"format": "covid_core.classifier/1", "model_name", "target", "classes",
     "preprocess": PreprocessConfig dict, "state_dict", "train_config", "metrics",
     "data_fingerprint", "class_counts", "created", "package_version",
     "temperature", "threshold", "ood", "training_time_s", "hardware"}

It is rebuilt through the model registry, so any registered architecture loads.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from .errors import CheckpointError, ConfigError
from .models import ModelSpec, build_model, get_spec
from .preprocess import PreprocessConfig

CLASSIFIER_FORMAT = "covid_core.classifier/1"


def plain(obj):
    """``obj`` with numpy scalars and numpy strings (values and dict keys) turned into Python ones, so that
    ``torch.load(..., weights_only=True)`` accepts the file: it refuses numpy types as unknown globals."""
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return type(obj)((plain(k), plain(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)) and not hasattr(obj, "_fields"):
        return type(obj)(plain(v) for v in obj)
    return obj


def atomic_save(obj, path: str | Path) -> None:
    """torch.save to a temp file in the same folder, fsync, then rename over ``path``.

    A kill or a full disk at any moment leaves either the old file or the new one, never
    a broken one (the rename is atomic on POSIX file systems). Numpy scalars are stored as Python ones
    (:func:`plain`), so every saved checkpoint loads with ``weights_only=True``. The note of the sections found
    damaged when the checkpoint was loaded (``damaged_sections``) belongs to that loaded copy and is not saved.
    """
    if isinstance(obj, dict) and "damaged_sections" in obj:
        obj = {k: v for k, v in obj.items() if k != "damaged_sections"}
    obj = plain(obj)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o644)
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        # torch reports a full disk as RuntimeError ("unexpected pos ..."); say what happened instead.
        if isinstance(exc, (OSError, RuntimeError)):
            raise CheckpointError(
                f"could not save {path} ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                "the disk may be full or read-only. The previous checkpoint, if any, is unchanged"
            ) from exc
        raise
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def load_checkpoint_dict(path: str | Path, map_location="cpu") -> dict:
    """Load a checkpoint dict safely (``weights_only=True``: no code in it can run)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    with open(path, "rb") as f:
        head = f.read(64)
    if head.startswith(b"version https://git-lfs"):
        raise CheckpointError(f"{path.name} is a Git LFS pointer, not the weights; run `git lfs pull` to fetch them")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch words it "Unsupported global: GLOBAL x.y was not an allowed global" or "Trying to load
        # unsupported GLOBAL posix.system whose module posix is blocked", depending on the object.
        detail = next((ln.strip() for ln in str(exc).splitlines() if "unsupported" in ln.lower()), "")
        if "global" not in detail.lower():  # e.g. "Unsupported operand": bytes that are no pickle at all
            raise CheckpointError(f"{path.name} is not a readable checkpoint ({detail or 'bad pickle data'}); "
                                  "it may be truncated or corrupt") from exc
        raise CheckpointError(
            f"{path.name} was refused: it holds Python objects that could run code when loaded (here: "
            f"{detail}). Only tensors and plain data are accepted; nothing in the file was run"
        ) from exc
    except Exception as exc:
        raise CheckpointError(f"{path.name} is not a readable checkpoint ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''}); it may be truncated or corrupt") from exc
    if not isinstance(obj, dict) or "state_dict" not in obj:
        raise CheckpointError(f"{path.name} is not a covid_core checkpoint (no state_dict/metadata)")
    if obj.get("format") == CLASSIFIER_FORMAT:
        from .checkpoint_metadata import checked

        checked(obj, path.name)
    return obj


@dataclass(eq=False)  # holds arrays/tensors: compare by identity, never element-wise
class Classifier:
    """A loaded classifier: model in eval mode plus everything needed to use it honestly."""

    model: nn.Module
    spec: ModelSpec
    classes: tuple[str, ...]
    target: str
    preprocess: PreprocessConfig
    temperature: float = 1.0
    threshold: dict = field(default_factory=dict)
    ood: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)
    path: str = ""
    site: object = None  # a covid_core.site_file.Site when a site file is applied (its operating point, calibration...)
    # Research use: give COVID-19 verdicts although no site file validates the model here (see
    # covid_core.inference.verdict_needs_site); off, such verdicts are withheld.
    verdicts_unvalidated: bool = False

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def scoring_temperature(self) -> float:
        """The temperature its probabilities are scaled by: the site's where a site file refits one, else its own."""
        return (self.site is not None and self.site.temperature) or self.temperature


def classifier_checkpoint(model: nn.Module, *, model_name: str, target: str, classes, preprocess: PreprocessConfig,
                          **metadata) -> dict:
    """Assemble the checkpoint dict for a classifier (state dict moved to CPU)."""
    model = getattr(model, "module", model)  # unwrap DistributedDataParallel
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    ckpt = {"format": CLASSIFIER_FORMAT, "model_name": model_name, "target": target, "classes": list(classes),
            "preprocess": preprocess.to_dict(), "state_dict": state}
    ckpt.update(metadata)
    return ckpt


def load_classifier(path: str | Path, device: str | torch.device = "cpu") -> Classifier:
    """Rebuild a classifier from its checkpoint through the registry (with a site file applied:
    :func:`covid_core.site_file.load_classifier_at_site`)."""
    ckpt = load_checkpoint_dict(path)
    if ckpt.get("format") != CLASSIFIER_FORMAT:
        raise CheckpointError(f"{Path(path).name} is not a classifier checkpoint (format {ckpt.get('format')!r})")
    try:
        spec = get_spec(ckpt["model_name"])
        model = build_model(spec.name, len(ckpt["classes"]))
        model.load_state_dict(ckpt["state_dict"])
        preprocess = PreprocessConfig.from_dict(ckpt["preprocess"])
    except (ConfigError, RuntimeError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{Path(path).name} does not match its architecture: {str(exc).splitlines()[0]}") from exc
    model.to(device).eval()
    meta = {k: v for k, v in ckpt.items() if k != "state_dict"}
    classifier = Classifier(model=model, spec=spec, classes=tuple(ckpt["classes"]), target=ckpt["target"],
                            preprocess=preprocess, temperature=float(ckpt.get("temperature", 1.0) or 1.0),
                            threshold=dict(ckpt.get("threshold") or {}), ood=dict(ckpt.get("ood") or {}),
                            metadata=meta, path=str(path))
    _score_a_test_film(classifier, Path(path).name)
    return classifier


def _score_a_test_film(classifier: Classifier, name: str) -> None:
    """Score one synthetic film as every film is scored (class probabilities and the familiarity score): stored
    tensors of the wrong shape (familiarity statistics made for another network) or values that give no finite
    probability refuse the checkpoint now, with the reason, instead of failing on a user's film later."""
    import numpy as np

    from .models import model_features
    from .ood import has_ood, ood_scores
    from .preprocess import to_model_input

    size = classifier.preprocess.image_size
    film = np.tile(np.linspace(40, 220, size, dtype=np.float32), (size, 1)).astype(np.uint8)[None]
    try:
        with torch.no_grad():
            x = to_model_input(film, classifier.preprocess).to(classifier.device)
            logits, feats = model_features(classifier.model, x, classifier.spec.feature_layer(classifier.model))
            probs = torch.softmax(logits.float() / classifier.temperature, dim=1).cpu().numpy()
            familiarity = (ood_scores(classifier.ood, {k: f.float().cpu().numpy() for k, f in feats.items()})
                           if has_ood(classifier.ood) else np.zeros(1))
    except Exception as exc:  # what a damaged checkpoint makes the scoring raise, said in one sentence
        raise CheckpointError(f"{name} cannot be used: scoring a test film failed ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:200] if str(exc) else ''})") from exc
    if not (np.isfinite(probs).all() and np.isfinite(np.asarray(familiarity, dtype=np.float64)).all()):
        raise CheckpointError(f"{name} cannot be used: it gives no finite probability or familiarity score for a "
                              "test film")
