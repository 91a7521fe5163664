"""Reading a site's labelled films for validation: each decoded and scored once by the shipped model, a few at a
time (only their features stay in memory), and which of them Diagnose would give no verdict."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from .errors import CovidCoreError, DatasetError

SCORE_CHUNK = 64  # films decoded, then scored together: only their features, not their pixels, stay in memory
PROBE_FILMS = 10  # the first films, kept as pixels for the familiarity probes (site.probes_let_through)


def site_films(classifier, folder: str | Path, layout: str = "auto", on_progress=None) -> dict:
    """Decode and score every labelled film of ``folder`` (all splits): its logits, features and, where the model
    checks orientation, its turned copies' features. Broken and duplicate files are listed in ``problems`` and
    skipped; the rest are used. Films are scored SCORE_CHUNK at a time, so only the first PROBE_FILMS films' pixels
    are kept (``first_pixels``). Raises DatasetError when nothing usable is left."""
    from .datasets import load_dataset
    from .decode import decode_image
    from .dicom_header import why_no_verdict
    from .inference import check_not_blank
    from .preprocess import prepare_pixels

    table = load_dataset(folder, layout).for_target(classifier.target).reset_index(drop=True)
    scored = _ChunkScorer(classifier, len(table))
    keep, problems, seen = [], [], {}
    for n, (i, row) in enumerate(table.iterrows()):
        if on_progress is not None:
            on_progress(n, len(table))
        try:
            data = Path(row["path"]).read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            if digest in seen:
                problems.append({"file": row["filename"], "problem": f"duplicate of {seen[digest]}; used once"})
                continue
            image = decode_image(data, row["filename"])
            check_not_blank(image.pixels)
            header = why_no_verdict(image.dicom_info)[1]
            if header:  # Diagnose gives such a film no verdict, so it cannot count for or against the model
                problems.append({"file": row["filename"], "problem": header})
                continue
        except (CovidCoreError, OSError) as exc:
            problems.append({"file": row["filename"], "problem": str(exc)})
            continue
        seen[digest] = row["filename"]
        scored.add(prepare_pixels(image.pixels, classifier.preprocess)[0])
        keep.append(i)
    if not keep:
        raise DatasetError(f"no usable film in {folder}: " + "; ".join(f"{p['file']}: {p['problem']}"
                                                                      for p in problems[:5]))
    logits, feats, copies = scored.result()
    return {"table": table.iloc[keep].reset_index(drop=True), "first_pixels": scored.first_pixels,
            "logits": logits, "features": feats, "copies": copies, "problems": problems}


def scored_films(classifier, pixels: np.ndarray):
    """(logits, features, copies) of prepared films: ``logits_and_features``, and where the model checks orientation
    (as Diagnose does: a film whose rotated or inverted copy is more familiar gets no verdict) its turned copies'
    features (``turned_copy_features``); copies [] otherwise."""
    from .inference import logits_and_features, turned_copy_features
    from .ood import has_ood

    logits, feats = logits_and_features(classifier.model, pixels, classifier.preprocess, device=classifier.device,
                                        spatial_layer=classifier.spec.feature_layer(classifier.model))
    turned = has_ood(classifier.ood) and classifier.ood.get("orientation_check")
    return logits, feats, turned_copy_features(classifier, pixels) if turned else []


class _ChunkScorer:
    """Collects prepared films and scores them (``scored_films``) SCORE_CHUNK at a time into arrays made for
    ``capacity`` films."""

    def __init__(self, classifier, capacity: int):
        self.classifier, self.capacity = classifier, capacity
        self.pending, self.first, self.done = [], [], 0
        self.logits = self.feats = self.copies = None

    def add(self, pixels: np.ndarray) -> None:
        if len(self.first) < PROBE_FILMS:
            self.first.append(pixels)
        self.pending.append(pixels)
        if len(self.pending) == SCORE_CHUNK:
            self._score()

    def _score(self) -> None:
        pixels = np.stack(self.pending)
        self.pending = []
        logits, feats, copies = scored_films(self.classifier, pixels)
        if self.logits is None:
            self.logits, self.feats = self._room(logits), {k: self._room(v) for k, v in feats.items()}
            self.copies = [{k: self._room(v) for k, v in copy.items()} for copy in copies]
        rows = slice(self.done, self.done + len(pixels))
        for room, new in zip([self.feats, *self.copies], [feats, *copies]):
            for name, values in new.items():
                room[name][rows] = values
        self.logits[rows] = logits
        self.done += len(pixels)

    def _room(self, like: np.ndarray) -> np.ndarray:
        return np.empty((self.capacity, *like.shape[1:]), like.dtype)

    @property
    def first_pixels(self) -> np.ndarray:
        return np.stack(self.first)

    def result(self):
        """(logits, features, copies) of every film added, in order, as ``logits_and_features`` and
        ``turned_copy_features`` would give them for all the films at once."""
        if self.pending:
            self._score()
        n = self.done
        return (self.logits[:n], {k: v[:n] for k, v in self.feats.items()},
                [{k: v[:n] for k, v in copy.items()} for copy in self.copies])


def withheld_films(stats: dict | None, feats: dict, copies: list[dict]) -> np.ndarray:
    """bool N: the films Diagnose would give no verdict with these familiarity statistics (None: no check), as
    unlike the training X-rays or as turned (a rotated or inverted copy more familiar than the film)."""
    from .ood import has_ood, ood_scores, turned_flags

    n = len(next(iter(feats.values())))
    if stats is None or not has_ood(stats):
        return np.zeros(n, bool)
    own = ood_scores(stats, feats)
    out = own > stats["threshold"]
    if copies:
        out |= turned_flags(stats, own, copies)
    return out
