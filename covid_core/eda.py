"""Data-set statistics for the Explore page, computed once per data folder and cached on disk.

:func:`summarize` reads a data folder (any layout :mod:`covid_core.datasets` reads), decodes every
image once with :func:`covid_core.decode.decode_image`, and returns a :class:`DataSummary`:
counts per split and class, images per source and class (the data set's key confound), filled,
not-applicable and missing values of the metadata CSV, byte-identical duplicates and cross-split
leaks, per-image statistics with outlier flags, the mean image per class and pooled intensity
quantiles per class. The result is stored under ``<cache>/eda/<fingerprint>/`` (CSV,
JSON and NPZ; no pickles) and reused while the data set's fingerprint is unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pandas as pd

from .cache import cache_dir
from .datasets import CORONAHACK_CSV, find_duplicates, load_dataset
from .decode import decode_image
from .errors import CovidCoreError
from .formatting import markdown_plain

EDA_VERSION = 2     # 2: stats.source, missing.filled/not_applicable
THUMB = 128          # side of the downsampled copy the intensity statistics are computed on
MEAN_IMAGE = 64      # side of the per-class mean image
PIXELS_PER_IMAGE = 200
QUANTILES = np.linspace(0.005, 0.995, 100)
NEAR_BLANK_STD = 0.03
INVERTED_MARGIN = 0.2
ROBUST_Z = 3.5
UNKNOWN_SOURCE = "unknown"   # datasets._attach_provenance's source when provenance.csv does not name one
# CoronaHack's sub-category columns (Label_1_Virus_category, Label_2_Virus_category) describe a pneumonia:
# on a Normal film they do not apply, so an empty value there is "not applicable", not missing.
SUBCATEGORY_COLUMN = re.compile(r"^Label_\d+_")


@dataclass
class DataSummary:
    """Statistics of one data folder.

    stats: one row per image: filename, split, finding, source ("unknown" without provenance), path,
    width, height, aspect (w/h), mean, std (contrast), p01, p99 (intensity percentiles in [0, 1]),
    border_minus_center, error (decode message or ""), outlier (comma-separated reasons or "").
    mean_images: {finding: float32 64x64 in [0, 1]}. quantiles: {finding: float32 (100,)} of pooled
    pixel intensities at QUANTILES. missing: one row per metadata column (see :func:`metadata_completeness`).
    """

    root: str
    layout: str
    fingerprint: str
    stats: pd.DataFrame
    duplicates: pd.DataFrame
    missing: pd.DataFrame
    mean_images: dict = field(default_factory=dict)
    quantiles: dict = field(default_factory=dict)
    from_cache: bool = False

    def counts(self) -> pd.DataFrame:
        """Records per split and finding (columns split, finding, images)."""
        return self.stats.groupby(["split", "finding"]).size().rename("images").reset_index()

    @property
    def has_sources(self) -> bool:
        """True when provenance names the source of at least one image."""
        return bool((self.stats["source"] != UNKNOWN_SOURCE).any()) if len(self.stats) else False

    def source_counts(self) -> pd.DataFrame:
        """Images per split, source and finding (columns split, source, finding, images; no zero rows)."""
        return self.stats.groupby(["split", "source", "finding"]).size().rename("images").reset_index()

    def source_table(self) -> pd.DataFrame:
        """Images per source (rows) and finding, per split and in total (columns "<finding> <split>",
        "<finding> total", "total"); int counts, zeros included."""
        table = pd.crosstab(self.stats["source"], [self.stats["finding"], self.stats["split"]])
        out = pd.DataFrame(index=table.index)
        for finding in table.columns.get_level_values(0).unique():
            for split in table[finding].columns:
                out[f"{finding} {split}"] = table[(finding, split)]
            out[f"{finding} total"] = table[finding].sum(axis=1)
        out["total"] = table.sum(axis=1)
        out.index.name = "source"
        return out

    def source_findings(self) -> list[str]:
        """Plain sentences (markdown) on how classes and sources overlap, all splits together.

        Per class: its share from each source and the sources that hold none of it; per source that
        holds one class only: that it does. Empty when no source is known.
        """
        if not self.has_sources:
            return []
        table = pd.crosstab(self.stats["source"], self.stats["finding"])
        # names come from the data set's own files (provenance.csv, folder names): shown as they are
        table = table.rename(index=markdown_plain, columns=markdown_plain)
        sentences = []
        for finding in table.columns:
            col = table[finding]
            parts = ", ".join(f"{src} {_share(n / col.sum())}"
                              for src, n in col[col > 0].sort_values(ascending=False).items())
            lead = (f"every **{finding}** image ({col.sum():,}) comes from one source, **{col.idxmax()}**"
                    if (col > 0).sum() == 1 else f"**{finding}** ({col.sum():,} images): {parts}")
            absent = [src for src, n in col.items() if n == 0 and src != UNKNOWN_SOURCE]
            if absent:
                lead += f"; none from {_join(absent)}"
            sentences.append(lead + ".")
        for src, row in table.iterrows():
            if src != UNKNOWN_SOURCE and (row > 0).sum() == 1 and len(table.columns) > 1:
                only = row.idxmax()
                sentences.append(f"**{src}** holds only {only} images ({row.sum():,}): a model that recognises "
                                 f"{src} films can call them {only} without looking at the lungs.")
        return sentences

    def leaks(self) -> pd.DataFrame:
        return self.duplicates[self.duplicates["cross_split"]] if len(self.duplicates) else self.duplicates

    def outliers(self) -> pd.DataFrame:
        return self.stats[self.stats["outlier"] != ""]

    def sample_paths(self, per_class: int = 8, seed: int = 0) -> dict[str, list[str]]:
        """{finding: up to ``per_class`` image paths}, a seeded random sample of readable images."""
        ok = self.stats[self.stats["error"] == ""]
        return {f: g.sample(min(per_class, len(g)), random_state=seed)["path"].tolist()
                for f, g in ok.groupby("finding")}


def _share(x: float) -> str:
    return "<1%" if 0 < x < 0.005 else f"{x:.0%}"


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" or {names[-1]}"


def metadata_completeness(meta: pd.DataFrame) -> pd.DataFrame:
    """Per metadata column: rows filled, not applicable and missing.

    A sub-category column (``Label_<n>_...``, beside a ``Label`` column) applies only to rows whose
    Label is not Normal: its empty values on Normal rows are ``not_applicable``; empty values where a
    column applies are ``missing``. Columns: column, applies_to (str), filled, not_applicable,
    missing (ints), share (missing / rows the column applies to, 0 when it applies to none).
    """
    blank = meta.isna() | meta.astype(str).apply(lambda s: s.str.strip() == "")
    normal = (meta["Label"].fillna("").astype(str).str.strip().str.lower() == "normal"
              if "Label" in meta.columns else pd.Series(False, index=meta.index))
    rows = []
    for column in meta.columns:
        subcategory = "Label" in meta.columns and bool(SUBCATEGORY_COLUMN.match(str(column)))
        applies = ~normal if subcategory else pd.Series(True, index=meta.index)
        missing = int((blank[column] & applies).sum())
        rows.append({"column": column, "applies_to": "non-Normal rows" if subcategory else "all rows",
                     "filled": int((~blank[column]).sum()), "not_applicable": int((blank[column] & ~applies).sum()),
                     "missing": missing, "share": round(missing / applies.sum(), 4) if applies.sum() else 0.0})
    return pd.DataFrame(rows, columns=["column", "applies_to", "filled", "not_applicable", "missing", "share"])


def _missing_table(root: Path, table: pd.DataFrame) -> pd.DataFrame:
    csv = root / CORONAHACK_CSV
    if csv.is_file():
        meta = pd.read_csv(csv, dtype=str, keep_default_na=False)  # "None"/"NA" are values, not blanks
        meta = meta.loc[:, [c for c in meta.columns if not str(c).startswith("Unnamed")]]
    else:  # no metadata file: the table's own columns, where a source no provenance.csv gave is none, not "unknown"
        meta = table.drop(columns=["path"], errors="ignore")
        if "source" in meta.columns:
            meta = meta.assign(source=meta["source"].mask(meta["source"] == "unknown", ""))
    return metadata_completeness(meta)


def image_stats(pixels: np.ndarray) -> tuple[dict, np.ndarray]:
    """Statistics of one float32 HxW [0, 1] image and its float32 THUMBxTHUMB copy."""
    small = cv2.resize(pixels, (THUMB, THUMB), interpolation=cv2.INTER_AREA)
    p01, p99 = np.percentile(small, [1, 99])
    b = THUMB // 10
    border = np.concatenate([small[:b].ravel(), small[-b:].ravel(), small[:, :b].ravel(), small[:, -b:].ravel()])
    center = small[THUMB // 4: 3 * THUMB // 4, THUMB // 4: 3 * THUMB // 4]
    h, w = pixels.shape
    return {"width": w, "height": h, "aspect": w / h, "mean": float(small.mean()), "std": float(small.std()),
            "p01": float(p01), "p99": float(p99),
            "border_minus_center": float(border.mean() - center.mean())}, small


def _robust_z(x: pd.Series) -> pd.Series:
    med = x.median()
    mad = (x - med).abs().median() * 1.4826
    return (x - med) / mad if mad > 0 else pd.Series(0.0, index=x.index)


def flag_outliers(stats: pd.DataFrame) -> pd.Series:
    """Comma-separated reasons per row: near-blank, likely inverted, extreme intensity/contrast/size."""
    ok = stats["error"] == ""
    reasons = [[] for _ in range(len(stats))]
    checks = {
        "near-blank": stats["std"] < NEAR_BLANK_STD,
        # X-rays are dark outside the body; a frame much brighter than the middle suggests inverted grey levels.
        "likely inverted": stats["border_minus_center"] > INVERTED_MARGIN,
        "extreme intensity": _robust_z(stats.loc[ok, "mean"]).abs().reindex(stats.index, fill_value=0) > ROBUST_Z,
        "extreme contrast": _robust_z(stats.loc[ok, "std"]).abs().reindex(stats.index, fill_value=0) > ROBUST_Z,
        "extreme size": _robust_z(np.log(stats.loc[ok, "width"] * stats.loc[ok, "height"])).abs()
        .reindex(stats.index, fill_value=0) > ROBUST_Z,
    }
    for name, mask in checks.items():
        for i in np.flatnonzero((mask & ok).to_numpy()):
            reasons[i].append(name)
    return pd.Series([", ".join(r) for r in reasons], index=stats.index)


def _compute(root: Path, layout: str, on_progress: Callable[[int, int], None] | None):
    dataset = load_dataset(root, layout)
    table = dataset.table
    rng = np.random.default_rng(0)
    rows, sums, counts, samples = [], {}, {}, {}
    total = len(table)
    for i, r in enumerate(table.itertuples()):
        row = {"filename": r.filename, "split": r.split, "finding": r.finding,
               "source": str(getattr(r, "source", "")).strip() or UNKNOWN_SOURCE, "path": r.path, "error": ""}
        try:
            stats, small = image_stats(decode_image(r.path).pixels)
        except CovidCoreError as exc:
            row["error"] = str(exc)
        else:
            row.update(stats)
            mean_img = cv2.resize(small, (MEAN_IMAGE, MEAN_IMAGE), interpolation=cv2.INTER_AREA)
            sums[r.finding] = sums.get(r.finding, 0) + mean_img.astype(np.float64)
            counts[r.finding] = counts.get(r.finding, 0) + 1
            samples.setdefault(r.finding, []).append(rng.choice(small.ravel(), PIXELS_PER_IMAGE, replace=False))
        rows.append(row)
        if on_progress is not None and (i % 20 == 0 or i + 1 == total):
            on_progress(i + 1, total)
    stats = pd.DataFrame(rows)
    for col in ("width", "height", "aspect", "mean", "std", "p01", "p99", "border_minus_center"):
        if col not in stats:
            stats[col] = np.nan
    stats["outlier"] = flag_outliers(stats)
    mean_images = {f: (sums[f] / counts[f]).astype(np.float32) for f in sums}
    quantiles = {f: np.quantile(np.concatenate(s), QUANTILES).astype(np.float32) for f, s in samples.items()}
    return DataSummary(str(dataset.root), dataset.layout, dataset.fingerprint(), stats, find_duplicates(dataset),
                       _missing_table(dataset.root, table), mean_images, quantiles)


def _cache_folder(fingerprint: str, root: Path) -> Path:
    # The root is in the key because the cached table holds absolute paths (for sample grids).
    where = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:8]
    return cache_dir() / "eda" / f"v{EDA_VERSION}-{fingerprint}-{where}"


def _save(summary: DataSummary, folder: Path) -> None:
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    summary.stats.to_csv(tmp / "stats.csv", index=False)
    summary.duplicates.to_csv(tmp / "duplicates.csv", index=False)
    summary.missing.to_csv(tmp / "missing.csv", index=False)
    np.savez_compressed(tmp / "arrays.npz", **{f"mean__{k}": v for k, v in summary.mean_images.items()},
                        **{f"quant__{k}": v for k, v in summary.quantiles.items()})
    (tmp / "summary.json").write_text(json.dumps({"root": summary.root, "layout": summary.layout,
                                                  "fingerprint": summary.fingerprint}))
    try:
        os.replace(tmp, folder)  # atomic when the folder does not exist yet
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # another process cached it first


def _load(folder: Path) -> DataSummary | None:
    try:
        info = json.loads((folder / "summary.json").read_text())
        read = lambda name: pd.read_csv(folder / name, keep_default_na=False, na_values=[""])  # noqa: E731
        stats = read("stats.csv")
        stats["error"] = stats["error"].fillna("").astype(str)
        stats["outlier"] = stats["outlier"].fillna("").astype(str)
        stats["source"] = stats["source"].fillna(UNKNOWN_SOURCE).astype(str)
        dups = read("duplicates.csv")
        if "cross_split" in dups:
            dups["cross_split"] = dups["cross_split"].astype(bool)
        with np.load(folder / "arrays.npz") as z:
            means = {k.split("__", 1)[1]: z[k] for k in z.files if k.startswith("mean__")}
            quants = {k.split("__", 1)[1]: z[k] for k in z.files if k.startswith("quant__")}
    except (OSError, ValueError, KeyError):
        return None
    return DataSummary(info["root"], info["layout"], info["fingerprint"], stats, dups, read("missing.csv"),
                       means, quants, from_cache=True)


def summarize(root: str | Path, layout: str = "auto", on_progress: Callable[[int, int], None] | None = None,
              use_cache: bool = True) -> DataSummary:
    """Statistics of the data set at ``root``; decoded only the first time (cached by fingerprint).

    on_progress(done, total) is called while images are decoded (not when the cache answers).
    Raises DatasetError for a folder that is not a data set.
    """
    fingerprint = load_dataset(root, layout).fingerprint()
    folder = _cache_folder(fingerprint, Path(root))
    if use_cache and (cached := _load(folder)) is not None:
        return cached
    summary = _compute(Path(root), layout, on_progress)
    if use_cache:
        _save(summary, folder)
    return summary


def thumbnail(path: str | Path, size: int = 160) -> np.ndarray:
    """float32 size x size in [0, 1]: the decoded image squeezed to a square, for sample grids."""
    return cv2.resize(decode_image(path).pixels, (size, size), interpolation=cv2.INTER_AREA)


def equalization_variants(pixels: np.ndarray, size: int = 256) -> dict[str, np.ndarray]:
    """{"none" | "hist" | "clahe": uint8 size x size}: the training preprocessing's equalisation choices."""
    from .preprocess import EQUALIZE_CHOICES, PreprocessConfig, prepare_pixels

    return {eq: prepare_pixels(pixels, PreprocessConfig(image_size=size, equalize=eq))[0] for eq in EQUALIZE_CHOICES}
