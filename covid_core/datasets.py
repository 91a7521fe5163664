"""Read chest X-ray data sets in three layouts into one table.

Layouts (detected automatically, or chosen by name):

``coronahack``
    Kaggle "CoronaHack - Chest X-Ray-Dataset": ``Chest_Xray_Corona_Metadata.csv`` (unnamed
    index, X_ray_image_name, Label = Normal | Pnemonia (sic), Dataset_type = TRAIN | TEST,
    Label_2_Virus_category, Label_1_Virus_category) and images under
    ``Coronahack-Chest-XRay-Dataset/Coronahack-Chest-XRay-Dataset/{train,test}/``.
    Finding: Label Normal -> normal; Pnemonia with Label_2_Virus_category COVID-19 -> covid19;
    any other Pnemonia (bacterial, viral, SARS, ARDS, Streptococcus) -> pneumonia.
    A ``provenance.csv`` in the data folder (X_ray_image_name, source, patient) gives
    patients for grouped validation splits and sources for per-source metrics.
``folders``
    ``train/<class>/*.png`` and ``test/<class>/*.png`` (any image extension). Class folder
    names are matched case-insensitively: normal/healthy/no_finding -> normal;
    pneumonia/bacteria/bacterial/virus/viral -> pneumonia; covid/covid19/covid-19 -> covid19;
    negative -> noncovid; positive -> covid19.
``covidx``
    The COVIDx data-challenge variant: folders ``train/`` and ``test/`` with a CSV of
    ``filename,label`` (labels ``positive``/``negative``): either ``train.csv`` + ``test.csv``,
    or one CSV (an optional ``split`` column, else the folder that holds the file decides).
    positive -> covid19, negative -> noncovid (so only ``--target covid`` applies).

The table has one row per image: path (absolute), filename, split (train/test/val),
finding, patient, source.
"""

from __future__ import annotations

import difflib
import hashlib
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .decode import DICOM_EXTENSIONS, DICOM_PREAMBLE, is_dicom, read_dicom
from .digests import file_sha256
from .errors import ConfigError, DatasetError
from .targets import check_target, class_names, map_finding

LAYOUTS = ("auto", "coronahack", "folders", "covidx")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", *DICOM_EXTENSIONS)
CORONAHACK_CSV = "Chest_Xray_Corona_Metadata.csv"
CORONAHACK_COLUMNS = ("X_ray_image_name", "Label", "Dataset_type")
MAX_LISTED = 5

FOLDER_ALIASES = {
    "normal": "normal", "healthy": "normal", "no_finding": "normal", "nofinding": "normal",
    "pneumonia": "pneumonia", "pnemonia": "pneumonia", "bacteria": "pneumonia", "bacterial": "pneumonia",
    "virus": "pneumonia", "viral": "pneumonia", "other_pneumonia": "pneumonia",
    "covid": "covid19", "covid19": "covid19", "covid-19": "covid19", "covid_19": "covid19",
    "positive": "covid19", "negative": "noncovid",
}

def is_image_file(path: Path) -> bool:
    """A file the decoder reads: one with an image extension, or a DICOM file without one (PACS exports often name
    films IM000001 or by their instance UID), known by its "DICM" mark."""
    if not path.is_file() or path.name.upper() == "DICOMDIR":  # a PACS export's index of its files, not a film
        return False
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return True
    try:
        with open(path, "rb") as f:
            return is_dicom(f.read(DICOM_PREAMBLE), path.name)
    except OSError:
        return False


@dataclass
class DataSet:
    """A data set read from ``root``: ``table`` has one row per image (see module doc)."""

    root: Path
    layout: str
    table: pd.DataFrame

    def fingerprint(self) -> str:
        """A short hash of the file list, sizes, splits and findings (not of the pixels)."""
        h = hashlib.sha256(self.layout.encode())
        for row in self.table.sort_values("filename").itertuples():
            try:
                size = os.path.getsize(row.path)
            except OSError:
                size = -1
            h.update(f"{row.filename}|{row.split}|{row.finding}|{size}\n".encode())
        return h.hexdigest()[:16]

    def for_target(self, target: str) -> pd.DataFrame:
        """Rows usable for ``target`` with columns ``label`` (class name) and ``label_idx``."""
        check_target(target)
        table = self.table.copy()
        table["label"] = [map_finding(f, target) for f in table["finding"]]
        unusable = table["label"].isna()
        if unusable.any():
            raise DatasetError(
                f"{int(unusable.sum())} images in {self.root} are labelled only COVID-19 negative (normal or "
                f"pneumonia unknown), which target {target!r} cannot use; use --target covid"
            )
        table = table[~unusable].reset_index(drop=True)
        classes = class_names(target)
        table["label_idx"] = [classes.index(c) for c in table["label"]]
        return table

    def class_counts(self, target: str) -> dict:
        """{split: {class: count}} for ``target``."""
        table = self.for_target(target)
        return {s: table[table.split == s]["label"].value_counts().to_dict() for s in sorted(table.split.unique())}


def _rows_message(what: str, rows: list[str]) -> str:
    shown = ", ".join(rows[:MAX_LISTED])
    more = f" and {len(rows) - MAX_LISTED} more" if len(rows) > MAX_LISTED else ""
    return f"{len(rows)} {what}: {shown}{more}"


def _read_csv(path: Path, **kwargs) -> pd.DataFrame:
    """All cells as str ("" when empty); blank lines dropped, but the index keeps each row's
    0-based position among the non-header lines, so messages can name the real line."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DatasetError(f"{path.name} is not UTF-8 text (bad byte at line {line}); save it as UTF-8 CSV") from exc
    try:
        df = pd.read_csv(io.StringIO(text), skip_blank_lines=False, dtype=str, keep_default_na=False, **kwargs)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DatasetError(f"{path.name} is not a readable CSV: {str(exc).strip()}") from exc
    if not isinstance(df.index, pd.RangeIndex):  # pandas takes the first values of each row as its index then
        raise DatasetError(f"{path.name}: its first row holds more values than its header line has column names; "
                           "check the header and the separator (a comma)")
    df = df.fillna("")  # short rows leave NaN even with keep_default_na=False
    blank = (df.astype(str).apply(lambda col: col.str.strip()) == "").all(axis=1)
    return df[~blank]


def _require_columns(df: pd.DataFrame, required: tuple[str, ...], csv_name: str) -> None:
    missing = [c for c in required if c not in df.columns]
    if missing:
        hints = []
        for c in missing:
            close = difflib.get_close_matches(c, [str(x) for x in df.columns], n=1, cutoff=0.6)
            hints.append(f"{c!r}" + (f" (found {close[0]!r}; misspelled?)" if close else ""))
        raise DatasetError(
            f"{csv_name} lacks the column(s) {', '.join(hints)}; it has: "
            f"{', '.join(map(str, df.columns))}"
        )


def safe_path(root: Path, name: str, folder: Path) -> Path | None:
    """``folder/name`` if it stays inside ``root`` (after resolving symlinks), else None."""
    if not name or os.path.isabs(name) or name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return None
    parts = Path(name.replace("\\", "/")).parts
    if ".." in parts:
        return None
    candidate = folder / name
    if "\0" in name:  # no file has such a name (the row is reported as missing); realpath would raise
        return candidate
    real_root = os.path.realpath(root)
    if os.path.commonpath([real_root, os.path.realpath(candidate)]) != real_root:
        return None
    return candidate


def _check_rows(table: pd.DataFrame, csv_name: str) -> None:
    """Refuse rows that escape the folder, are missing, duplicated or unlabelled."""
    problems = []
    escaping = table[table["path"].isna()]
    if len(escaping):
        problems.append(_rows_message(
            f"rows of {csv_name} name a file outside the data folder (an absolute path, '..', or a symlink that "
            "leads out of the folder: copy such files in)",
            [f"row {r.row} ({r.filename!r})" for r in escaping.itertuples()]))
    present = table[table["path"].notna()]
    missing = present[[not os.path.isfile(p) for p in present["path"]]]
    if len(missing):
        problems.append(_rows_message(f"rows of {csv_name} list files that do not exist",
                                      [f"row {r.row} ({r.filename})" for r in missing.itertuples()]))
    dup = table[table.duplicated(["split", "filename"], keep=False)]
    if len(dup):
        problems.append(_rows_message(f"rows of {csv_name} repeat a file name",
                                      [f"row {r.row} ({r.filename})" for r in dup.itertuples()]))
    if problems:
        raise DatasetError("; ".join(problems))


def _patient_from_name(name: str) -> str:
    if "/" in name:  # films in a folder inside their class folder: one patient's (or one series') folder
        return "folder-" + name.split("/", 1)[0]
    stem = Path(name).stem
    for pattern in (r"^(person\d+)_", r"^((?:NORMAL\d?-)?IM-\d+)-", r"^(\d{8})_\d{3}$"):
        m = re.match(pattern, stem)
        if m:
            return m.group(1)
    return stem


def _dicom_patient(path) -> str | None:
    """A DICOM file's PatientID, hashed (the ID itself is never kept), or None without one or for another file."""
    if not isinstance(path, str) or (Path(path).suffix.lower() in IMAGE_EXTENSIONS
                                      and not path.lower().endswith(DICOM_EXTENSIONS)):
        return None  # a PNG, JPEG...: no header to read
    try:
        with open(path, "rb") as f:
            if not is_dicom(f.read(DICOM_PREAMBLE), path):
                return None
            f.seek(0)
            found = str(read_dicom(f, stop_before_pixels=True, specific_tags=["PatientID"]).get("PatientID", "")
                        or "").strip()
    except Exception:  # a damaged or refused header: the file is refused, with its reason, when it is decoded
        return None
    return "dicom-" + hashlib.sha256(found.encode()).hexdigest()[:16] if found else None


def _attach_provenance(table: pd.DataFrame, metadata_dir: Path) -> pd.DataFrame:
    """Each film's patient and source: from provenance.csv where it names the film; else the patient from a DICOM
    header's PatientID (several films of one patient are then grouped, as validation splits and intervals need),
    else from the folder that holds the film inside its class folder, else from the file name."""
    table["patient"] = [_dicom_patient(path) or _patient_from_name(f)
                        for f, path in zip(table["filename"], table["path"])]
    table["source"] = "unknown"
    prov = metadata_dir / "provenance.csv"
    if prov.is_file():
        p = _read_csv(prov)
        if {"X_ray_image_name", "patient"} <= set(p.columns):
            p = p.drop_duplicates("X_ray_image_name").set_index("X_ray_image_name")
            known = table["filename"].isin(p.index)
            table.loc[known, "patient"] = p.loc[table.loc[known, "filename"], "patient"].to_numpy()
            if "source" in p.columns:
                table.loc[known, "source"] = p.loc[table.loc[known, "filename"], "source"].to_numpy()
    return table


def _read_coronahack(root: Path) -> pd.DataFrame:
    csv = root / CORONAHACK_CSV
    if not csv.is_file():
        raise DatasetError(f"the coronahack layout needs {CORONAHACK_CSV} in {root}, and there is none; choose the "
                           f"layout that fits the folder, or auto to detect it ({', '.join(LAYOUTS)})")
    df = _read_csv(csv)
    _require_columns(df, CORONAHACK_COLUMNS, CORONAHACK_CSV)
    image_root = root / "Coronahack-Chest-XRay-Dataset" / "Coronahack-Chest-XRay-Dataset"
    if not image_root.is_dir():
        image_root = root / "Coronahack-Chest-XRay-Dataset"
    label2 = df["Label_2_Virus_category"] if "Label_2_Virus_category" in df.columns else [""] * len(df)
    rows, bad_split, bad_label = [], [], []
    for i, name, label, split, l2 in zip(df.index, df["X_ray_image_name"], df["Label"], df["Dataset_type"], label2):
        row_no = i + 2  # the CSV's line number: 1-based, after the header line
        name, label_norm, split_norm = name.strip(), label.strip().lower(), split.strip().lower()
        if split_norm not in ("train", "test"):
            bad_split.append(f"row {row_no} ({split!r})")
            continue
        if label_norm == "normal":
            finding = "normal"
        elif label_norm in ("pnemonia", "pneumonia"):
            finding = "covid19" if l2.strip().lower().replace("-", "") == "covid19" else "pneumonia"
        else:
            bad_label.append(f"row {row_no} ({label!r})")
            continue
        path = safe_path(root, name, image_root / split_norm)
        rows.append({"row": row_no, "filename": name, "split": split_norm, "finding": finding,
                     "path": None if path is None else str(path)})
    problems = []
    if bad_label:
        problems.append(_rows_message(f"rows of {CORONAHACK_CSV} have a Label other than Normal or Pnemonia", bad_label))
    if bad_split:
        problems.append(_rows_message(f"rows of {CORONAHACK_CSV} have a Dataset_type other than TRAIN or TEST", bad_split))
    if problems:
        raise DatasetError("; ".join(problems))
    table = pd.DataFrame(rows, columns=["row", "filename", "split", "finding", "path"])
    _check_rows(table, CORONAHACK_CSV)
    return _attach_provenance(table, root)


def _class_folders_at_top(root: Path) -> bool:
    """True when ``root`` itself holds class folders (normal/, pneumonia/, covid19/...) and no split level."""
    return any(p.is_dir() and p.name.lower() in FOLDER_ALIASES for p in root.iterdir())


def _read_folders(root: Path) -> pd.DataFrame:
    """``train/<class>/`` and/or ``test/<class>/``; class folders straight under ``root`` are a TEST split
    (a hospital's evaluation set has no training split)."""
    rows, unknown = [], []
    splits = [("train", root / "train"), ("test", root / "test")]
    if not any(d.is_dir() for _, d in splits):
        splits = [("test", root)]
    for split, split_dir in splits:
        if not split_dir.is_dir():
            continue
        for class_dir in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            finding = FOLDER_ALIASES.get(class_dir.name.lower())
            if finding is None:
                unknown.append(f"{split}/{class_dir.name}")
                continue
            for f in sorted(class_dir.rglob("*")):  # a class folder may hold one folder per patient or series
                if is_image_file(f):
                    inside = f"{class_dir.name}/{f.relative_to(class_dir).as_posix()}"
                    path = safe_path(root, inside, split_dir)
                    rows.append({"row": len(rows) + 1, "filename": inside, "split": split,
                                 "finding": finding, "path": None if path is None else str(path)})
    if unknown:
        raise DatasetError(
            f"class folder(s) {', '.join(unknown)} have no known class; name them one of: "
            f"{', '.join(sorted(set(FOLDER_ALIASES)))}"
        )
    table = pd.DataFrame(rows, columns=["row", "filename", "split", "finding", "path"])
    _check_rows(table, "the folder tree")
    table["filename"] = [f.split("/", 1)[1] for f in table["filename"]]  # the path inside its class folder
    return _attach_provenance(table, root)


def _covidx_csvs(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("*.csv") if p.name != "provenance.csv")


def _read_covidx(root: Path) -> pd.DataFrame:
    csvs = _covidx_csvs(root)
    per_split = {p.stem.lower(): p for p in csvs if p.stem.lower() in ("train", "test")}
    if not per_split and len(csvs) != 1:
        raise DatasetError(
            f"covidx layout needs train.csv and test.csv, or exactly one CSV of filename,label; found "
            f"{', '.join(p.name for p in csvs) or 'none'} in {root}"
        )
    sources = per_split.items() if per_split else [(None, csvs[0])]
    rows, bad_label = [], []
    for split, csv in sources:
        df = _read_csv(csv)
        first_line = 2
        # Headerless filename,label: the "header" is then itself a data row with a known label.
        if "filename" not in df.columns and len(df.columns) >= 2 \
                and str(df.columns[1]).strip().lower() in ("positive", "negative"):
            df = _read_csv(csv, header=None)
            df = df.rename(columns={0: "filename", 1: "label"})
            first_line = 1
        _require_columns(df, ("filename", "label"), csv.name)
        for i, r in zip(df.index, df.to_dict("records")):
            row_no = i + first_line
            name, label = str(r["filename"]).strip(), str(r["label"]).strip().lower()
            if label not in ("positive", "negative"):
                bad_label.append(f"{csv.name} row {row_no} ({r['label']!r})")
                continue
            row_split = split or str(r.get("split", "")).strip().lower()
            if row_split not in ("train", "test"):
                in_test = safe_path(root, name, root / "test")  # never probe a path outside the folder
                row_split = "test" if in_test is not None and in_test.is_file() else "train"
            path = safe_path(root, name, root / row_split)
            rows.append({"row": row_no, "filename": name, "split": row_split,
                         "finding": "covid19" if label == "positive" else "noncovid",
                         "path": None if path is None else str(path)})
    if bad_label:
        raise DatasetError(_rows_message("rows have a label other than positive or negative", bad_label))
    table = pd.DataFrame(rows, columns=["row", "filename", "split", "finding", "path"])
    _check_rows(table, "the CSV")
    return _attach_provenance(table, root)


def detect_layout(root: Path) -> str:
    """Name the layout of ``root``; raises DatasetError if none fits."""
    if (root / CORONAHACK_CSV).is_file():
        return "coronahack"
    has_splits = (root / "train").is_dir() or (root / "test").is_dir()
    if has_splits and _covidx_csvs(root):
        return "covidx"
    if any((root / split).is_dir() and any(p.is_dir() for p in (root / split).iterdir())
           for split in ("train", "test")):
        return "folders"
    if not has_splits and _class_folders_at_top(root):
        return "folders"
    raise DatasetError(
        f"{root} is not a data set in a known layout: expected {CORONAHACK_CSV} (CoronaHack), "
        "train/<class>/ and test/<class>/ folders (either may be missing; class folders straight in the folder "
        "count as TEST), or train/ + test/ with a filename,label CSV (COVIDx)"
    )


_READERS = {"coronahack": _read_coronahack, "folders": _read_folders, "covidx": _read_covidx}


def load_dataset(root: str | Path, layout: str = "auto") -> DataSet:
    """Read the data set at ``root`` (see the module doc for layouts and label mapping)."""
    if layout not in LAYOUTS:
        raise DatasetError(f"unknown layout {layout!r}; choose one of: {', '.join(LAYOUTS)}")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"data folder {root} does not exist or is not a folder")
    root = root.resolve()
    if layout == "auto":
        layout = detect_layout(root)
    table = _READERS[layout](root)
    if table.empty:
        raise DatasetError(f"no images found in {root} ({layout} layout)")
    return DataSet(root=root, layout=layout, table=table.drop(columns=["row"]).reset_index(drop=True))


def find_duplicates(dataset: DataSet) -> pd.DataFrame:
    """Images with identical bytes: columns sha256, filename, split, finding, cross_split.

    ``cross_split`` is True for a group that has copies in more than one split (a leak).
    """
    table = dataset.table.copy()
    table["sha256"] = [file_sha256(p) for p in table["path"]]
    dup = table[table.duplicated("sha256", keep=False)].copy()
    dup["cross_split"] = dup.groupby("sha256")["split"].transform("nunique") > 1
    return dup[["sha256", "filename", "split", "finding", "cross_split"]].sort_values(["sha256", "split"])


VAL_STRATA = ("finding", "label")


def require_training_films(table: pd.DataFrame) -> None:
    """Raise DatasetError, saying how to lay films out for training, when ``table`` has no TRAIN film."""
    if not (table["split"] == "train").any():
        raise DatasetError("this data set has no training films: class folders straight in the folder, or a test/ "
                           "folder alone, are read as an evaluation set (for evaluate and validate-site); to train, "
                           "put the films in train/<class>/ folders (and the films to test on in test/<class>/)")


def check_training_data(root: str | Path, layout: str = "auto", target: str | None = None,
                        holdout_source: str = "") -> None:
    """Refuse, before a run folder is made or a process started, a folder one cannot train on: missing, not a data
    set, or without TRAIN films (for ``target``, once ``holdout_source`` is left out; ``target`` None for the
    denoiser, which uses every TRAIN film)."""
    dataset = load_dataset(root, layout)
    require_training_films(dataset.table)  # none at all (an evaluation set): say how to lay them out
    table, usable = dataset.table, ""
    if target is not None:  # a source that is not there to leave out is named now, not in the run's log
        table = without_source_in_training(dataset.for_target(target), holdout_source)
        usable = f" usable for target {target!r}" + (
            f" once source {holdout_source!r} is left out" if holdout_source else "")
    if not (table["split"] == "train").any():
        raise ConfigError(f"{root} has no training images{usable}")


def split_validation(table: pd.DataFrame, fraction: float = 0.15, seed: int = 0, by: str = "finding") -> pd.DataFrame:
    """Move about ``fraction`` of the train rows to split "val", stratified by column ``by`` and grouped by
    patient (no patient in both train and val). ``by`` falls back to ``label`` where the table has no ``finding``.

    Stratifying by the finding rather than the target's label gives every target the same validation films for
    one seed, so models of different targets (a 3-class and a normal/pneumonia model) can be combined and their
    combination judged on films neither was trained on. Checkpoints trained before stratified by ``label``
    (:func:`split_as_trained` knows which)."""
    from sklearn.model_selection import StratifiedGroupKFold

    if not 0 < fraction < 0.5:
        raise DatasetError(f"validation fraction {fraction} must be between 0 and 0.5")
    table = table.copy()
    train_idx = np.flatnonzero(table["split"].to_numpy() == "train")
    require_training_films(table)
    if len(train_idx) < 4:
        raise DatasetError(f"only {len(train_idx)} training images; at least 4 are needed to carve a validation split")
    labels = table[by if by in table else "label"].to_numpy()[train_idx]
    groups = table["patient"].to_numpy()[train_idx]
    n_splits = max(2, round(1 / fraction))
    min_class = pd.Series(labels).value_counts().min()
    if min_class < n_splits or len(set(groups)) < n_splits:
        rng = np.random.default_rng(seed)
        val = rng.permutation(len(train_idx))[: max(1, round(fraction * len(train_idx)))]
    else:
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        _, val = next(splitter.split(np.zeros(len(train_idx)), labels, groups))
    table.loc[table.index[train_idx[val]], "split"] = "val"
    return table


def holdout_parts(spec: str) -> list[tuple[str, str]]:
    """The (source, class) parts of a ``--holdout-source`` value, class "" for a whole source:
    ``"nih"`` gives ``[("nih", "")]``, ``"cohen:normal,figure1:normal"`` gives ``[("cohen", "normal"),
    ("figure1", "normal")]``."""
    parts = (part.partition(":") for part in spec.split(","))
    return [(name.strip(), label.strip()) for name, _, label in parts if name.strip()]


def holdout_films(table: pd.DataFrame, spec: str, whole_patients: bool = False) -> np.ndarray:
    """Which rows of ``table`` a ``--holdout-source`` value names, both splits: every film of a whole source, and
    for ``source:class`` that source's films of that class. ``whole_patients`` widens a ``source:class`` part to
    all the films of that source's patients who have such a film (what training leaves out). Raises ConfigError
    when a part names no film."""
    held = np.zeros(len(table), dtype=bool)
    for name, label in holdout_parts(spec):
        of_source = (table["source"] == name).to_numpy()
        if not of_source.any():
            known = ", ".join(sorted(set(map(str, table["source"])))) or "none"
            raise ConfigError(f"no film of source {name!r} to hold out; the sources here are: {known}")
        these = of_source & (table["label"] == label).to_numpy() if label else of_source
        if not these.any():
            labels = ", ".join(sorted(set(map(str, table.loc[of_source, "label"]))))
            raise ConfigError(f"source {name!r} has no {label!r} film to hold out; its classes are: {labels}")
        if label and whole_patients:
            these = of_source & table["patient"].isin(set(table.loc[these, "patient"])).to_numpy()
        held |= these
    return held


def without_source_in_training(table, source: str):
    """The table without ``source``'s TRAIN films (leave-one-source-out); TEST keeps them. ``source`` "" keeps all.

    ``source`` may name several, comma-separated, and each may be narrowed to one class as ``source:class``:
    ``cohen:normal`` leaves out that source's patients who have a normal film, with all their films (their other
    films would show the model those patients and their hospital), and keeps the source's other patients."""
    if not source:
        return table
    held = holdout_films(table, source, whole_patients=True)
    return table[~(held & (table["split"] == "train").to_numpy())].reset_index(drop=True)


def stored_val_strata(train_config: dict) -> str:
    """What a stored run's validation split was stratified by: its ``val_strata``; for a run stored before that
    setting existed, the label, which for the 3-class target is the finding."""
    if train_config.get("val_strata"):
        return train_config["val_strata"]
    return "finding" if train_config.get("target", "3class") == "3class" else "label"


def split_as_trained(table: pd.DataFrame, train_config: dict) -> pd.DataFrame:
    """The TRAIN / VALIDATION split a checkpoint was trained with, from its stored ``train_config``."""
    return split_validation(table, train_config.get("val_fraction", 0.15), train_config.get("seed", 0),
                            by=stored_val_strata(train_config))


def limit_per_split(table: pd.DataFrame, limit: int | None, seed: int = 0,
                    splits: tuple[str, ...] = ("train", "val", "test")) -> pd.DataFrame:
    """At most ``limit`` random rows of each split in ``splits`` (a quick trial run); the table itself when
    ``limit`` is None. Rows keep their order."""
    if not limit:
        return table
    rng = np.random.default_rng(seed)
    keep = []
    for split in splits:
        idx = np.flatnonzero(table["split"].to_numpy() == split)
        keep.extend(rng.permutation(idx)[:limit])
    return table.iloc[sorted(keep)].reset_index(drop=True)
