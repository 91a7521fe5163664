"""Data layouts, label mapping per target, validation split and duplicate checks."""

from __future__ import annotations

import shutil
from dataclasses import asdict

import pandas as pd
import pytest
from PIL import Image

from conftest import make_folder_dataset, synthetic_xray
from covid_core.datasets import detect_layout, find_duplicates, load_dataset, split_as_trained, split_validation
from covid_core.errors import DatasetError


def _coronahack(root, rows):
    img_dir = root / "Coronahack-Chest-XRay-Dataset" / "Coronahack-Chest-XRay-Dataset"
    for split in ("train", "test"):
        (img_dir / split).mkdir(parents=True, exist_ok=True)
    records = []
    for i, (name, label, split, l2, l1) in enumerate(rows):
        Image.fromarray(synthetic_xray(i % 3, 40, i)).save(img_dir / split.lower() / name)
        records.append({"X_ray_image_name": name, "Label": label, "Dataset_type": split,
                        "Label_2_Virus_category": l2, "Label_1_Virus_category": l1})
    pd.DataFrame(records).to_csv(root / "Chest_Xray_Corona_Metadata.csv")
    return root


CORONA_ROWS = [
    ("n1.jpeg", "Normal", "TRAIN", "", ""),
    ("b1.jpeg", "Pnemonia", "TRAIN", "", "bacteria"),
    ("v1.jpeg", "Pnemonia", "TRAIN", "", "Virus"),
    ("c1.jpeg", "Pnemonia", "TRAIN", "COVID-19", "Virus"),
    ("s1.jpeg", "Pnemonia", "TEST", "SARS", "Virus"),
    ("c2.jpeg", "Pnemonia", "TEST", "COVID-19", "Virus"),
    ("n2.jpeg", "Normal", "TEST", "", ""),
]


def test_coronahack_findings_map_to_every_target(tmp_path):
    ds = load_dataset(_coronahack(tmp_path, CORONA_ROWS))
    assert ds.layout == "coronahack"
    labels = dict(zip(ds.table.filename, ds.table.finding))
    assert labels == {"n1.jpeg": "normal", "b1.jpeg": "pneumonia", "v1.jpeg": "pneumonia", "c1.jpeg": "covid19",
                      "s1.jpeg": "pneumonia", "c2.jpeg": "covid19", "n2.jpeg": "normal"}
    covid = ds.for_target("covid").set_index("filename")["label"]
    assert covid["c1.jpeg"] == "positive" and covid["s1.jpeg"] == "negative" and covid["n1.jpeg"] == "negative"
    pneu = ds.for_target("pneumonia").set_index("filename")["label"]
    assert pneu["c1.jpeg"] == "pneumonia" and pneu["n2.jpeg"] == "normal"
    assert set(ds.table.split) == {"train", "test"}


def test_coronahack_missing_file_and_bad_label_are_named(tmp_path):
    root = _coronahack(tmp_path, CORONA_ROWS)
    (root / "Coronahack-Chest-XRay-Dataset/Coronahack-Chest-XRay-Dataset/train/b1.jpeg").unlink()
    with pytest.raises(DatasetError, match=r"1 rows of .* list files that do not exist: row 3 \(b1.jpeg\)"):
        load_dataset(root)
    df = pd.read_csv(root / "Chest_Xray_Corona_Metadata.csv", index_col=0)
    df.loc[0, "Label"] = "Healthy"
    df.to_csv(root / "Chest_Xray_Corona_Metadata.csv")
    with pytest.raises(DatasetError, match=r"Label other than Normal or Pnemonia: row 2 \('Healthy'\)"):
        load_dataset(root)


def test_misspelled_column_gets_a_hint(tmp_path):
    root = _coronahack(tmp_path, CORONA_ROWS)
    df = pd.read_csv(root / "Chest_Xray_Corona_Metadata.csv", index_col=0).rename(columns={"Label": "Lable"})
    df.to_csv(root / "Chest_Xray_Corona_Metadata.csv")
    with pytest.raises(DatasetError, match=r"'Label' \(found 'Lable'; misspelled\?\)"):
        load_dataset(root)


def _named(root, row: int, name: str):
    """``root`` with the file name of the metadata's ``row`` (0-based) changed to ``name``."""
    df = pd.read_csv(root / "Chest_Xray_Corona_Metadata.csv", index_col=0)
    df.loc[row, "X_ray_image_name"] = name
    df.to_csv(root / "Chest_Xray_Corona_Metadata.csv")
    return root


def test_path_escaping_the_folder_is_refused(tmp_path):
    root = _named(_coronahack(tmp_path / "d", CORONA_ROWS), 1, "../../../etc/passwd")
    with pytest.raises(DatasetError, match=r"outside the data folder.*row 3 \('../../../etc/passwd'\)"):
        load_dataset(root)


def test_a_csv_row_longer_than_its_header_or_a_name_with_a_nul_byte_is_named_not_a_crash(tmp_path):
    """Found by mutating the metadata CSV at random: a first row with more values than the header made pandas take
    them as the index (a TypeError building the row number), and a file name holding a NUL byte a ValueError."""
    root = _coronahack(tmp_path / "long", CORONA_ROWS)
    csv = root / "Chest_Xray_Corona_Metadata.csv"
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join([lines[0], lines[1] + ",extra", *lines[2:]]) + "\n")
    with pytest.raises(DatasetError, match="first row holds more values than its header line has column names"):
        load_dataset(root)
    root = _named(_coronahack(tmp_path / "nul", CORONA_ROWS), 1, "b1\0.jpeg")
    with pytest.raises(DatasetError, match=r"list files that do not exist: row 3 \(b1"):
        load_dataset(root)


def test_folder_layout_and_fingerprint(tmp_path):
    root = make_folder_dataset(tmp_path / "data", per_class_train=3, per_class_test=1)
    ds = load_dataset(root)
    assert ds.layout == "folders"
    assert ds.class_counts("3class") == {"test": {"normal": 1, "pneumonia": 1, "covid19": 1},
                                         "train": {"normal": 3, "pneumonia": 3, "covid19": 3}}
    fp = ds.fingerprint()
    assert fp == load_dataset(root).fingerprint()
    (root / "train" / "normal" / "normal_000.png").unlink()
    assert load_dataset(root).fingerprint() != fp


def test_unknown_class_folder_lists_valid_names(tmp_path):
    root = make_folder_dataset(tmp_path / "data", per_class_train=1, per_class_test=1)
    shutil.move(root / "train" / "covid19", root / "train" / "tuberculosis")
    with pytest.raises(DatasetError, match=r"train/tuberculosis have no known class; name them one of: .*covid19"):
        load_dataset(root)


def test_covidx_layout_only_serves_the_covid_target(tmp_path):
    root = tmp_path / "cx"
    rows = []
    for split, n in (("train", 6), ("test", 2)):
        (root / split).mkdir(parents=True)
        for i in range(n):
            name = f"{split}_{i}.png"
            Image.fromarray(synthetic_xray(i % 2, 40, i)).save(root / split / name)
            rows.append(f"{name},{'positive' if i % 2 else 'negative'}")
    (root / "labels.csv").write_text("filename,label\n" + "\n".join(rows) + "\n")
    ds = load_dataset(root)
    assert ds.layout == "covidx" and detect_layout(root) == "covidx"
    t = ds.for_target("covid")
    assert sorted(t.label.unique()) == ["negative", "positive"]
    assert (t.split == "test").sum() == 2
    with pytest.raises(DatasetError, match="use --target covid"):
        ds.for_target("3class")


def test_duplicates_across_splits_are_reported(tmp_path):
    root = make_folder_dataset(tmp_path / "data", per_class_train=2, per_class_test=1)
    shutil.copy(root / "train" / "normal" / "normal_000.png", root / "test" / "normal" / "leak.png")
    dup = find_duplicates(load_dataset(root))
    assert set(dup.filename) == {"normal_000.png", "leak.png"}
    assert dup.cross_split.all()


def test_validation_split_is_stratified_grouped_and_seeded(tmp_path):
    table = load_dataset(make_folder_dataset(tmp_path / "data", per_class_train=20, per_class_test=2)).for_target("3class")
    a = split_validation(table, 0.2, seed=1)
    b = split_validation(table, 0.2, seed=1)
    assert a.split.tolist() == b.split.tolist()
    val = a[a.split == "val"]
    assert 9 <= len(val) <= 15 and set(val.label) == {"normal", "pneumonia", "covid19"}
    assert not set(val.patient) & set(a[a.split == "train"].patient)
    assert (a.split == "test").sum() == 6


def test_training_on_an_evaluation_set_says_it_has_no_training_films(tmp_path):
    root = make_folder_dataset(tmp_path / "data", per_class_train=0, per_class_test=3)
    shutil.rmtree(root / "train")
    (root / "test").rename(root / "films")  # class folders straight in the folder: an evaluation set
    table = load_dataset(root / "films").for_target("3class")
    with pytest.raises(DatasetError, match=r"has no training films: .* put the films in train/<class>/ folders"):
        split_validation(table, 0.2)


def test_validation_split_is_the_same_for_every_target(tmp_path):
    # Stratified by finding, not by the target's label: a normal/pneumonia model and a 3-class model trained with
    # one seed share their validation films (bench/two_stage.py combines them and judges the pair on those), and
    # COVID-19 films are spread over the folds even where the target counts them as pneumonia.
    ds = load_dataset(make_folder_dataset(tmp_path / "data", per_class_train=20, per_class_test=2))
    splits = {t: split_validation(ds.for_target(t), 0.2, seed=3) for t in ("3class", "pneumonia", "covid")}
    assert splits["3class"].split.tolist() == splits["pneumonia"].split.tolist() == splits["covid"].split.tolist()
    val = splits["pneumonia"][splits["pneumonia"].split == "val"]
    assert set(val.finding) == {"normal", "pneumonia", "covid19"}
    # a checkpoint trained before (no val_strata stored) is judged on the split it was trained with
    from covid_core.training.config import TrainConfig

    table = ds.for_target("pneumonia")
    by_label = split_validation(table, 0.2, seed=3, by="label").split.tolist()
    assert by_label != splits["pneumonia"].split.tolist()
    assert split_as_trained(table, {"target": "pneumonia", "val_fraction": 0.2, "seed": 3}).split.tolist() == by_label
    assert TrainConfig.from_dict({"target": "pneumonia"}).val_strata == "label"
    assert TrainConfig.from_dict({"target": "3class"}).val_strata == "finding"  # for 3class label is the finding
    stored = asdict(TrainConfig(val_fraction=0.2, seed=3))
    assert TrainConfig.from_dict(stored).val_strata == "finding"
    assert split_as_trained(table, stored).split.tolist() == splits["pneumonia"].split.tolist()


def test_real_data_counts_and_no_leaks(real_data):
    ds = load_dataset(real_data)
    counts = ds.class_counts("3class")
    assert sum(counts["train"].values()) == 2218 and sum(counts["test"].values()) == 396
    assert counts["train"]["covid19"] + counts["test"]["covid19"] == 391
    # The NIH source holds both classes (SOURCES.md: 379 adult normals, 391 adult pneumonias), so the
    # hospital no longer gives the class away.
    nih = ds.for_target("3class")
    nih = nih[nih.source == "nih"]
    assert nih.label.value_counts().to_dict() == {"pneumonia": 391, "normal": 379}
    assert (nih[nih.label == "pneumonia"].split == "test").sum() == 59
    assert set(ds.table.source) >= {"kermany", "nih", "cohen"}
    table = split_validation(ds.for_target("3class"), 0.15, seed=0)
    assert not set(table[table.split == "val"].patient) & set(table[table.split == "train"].patient)
    assert not find_duplicates(ds).cross_split.any()


def test_dicom_files_without_an_extension_are_read_from_class_folders(tmp_path):
    """PACS exports often name films IM000001 or by their instance UID; a note beside them is not a film."""
    from synthetic_files import dicom_gradient

    for cls, name in (("normal", "IM000001"), ("covid19", "1.2.840.99.1.5")):
        (tmp_path / cls).mkdir()
        (tmp_path / cls / name).write_bytes(dicom_gradient(64))
    (tmp_path / "normal" / "README").write_text("exported 2026-12-01")
    (tmp_path / "normal" / "DICOMDIR").write_bytes(dicom_gradient(64)[:132] + bytes(64))  # the export's index
    table = load_dataset(tmp_path).table
    assert sorted(zip(table["filename"], table["finding"])) == [("1.2.840.99.1.5", "covid19"),
                                                                ("IM000001", "normal")]


def test_films_in_patient_folders_are_read_and_grouped_by_patient(tmp_path):
    """A class folder may hold one folder per patient (as PACS exports are laid out); a DICOM header's PatientID
    groups films wherever they lie, and is never kept as it is."""
    import numpy as np

    from synthetic_files import dicom_bytes, encode, gradient

    (tmp_path / "normal" / "PAT1" / "SER1").mkdir(parents=True)
    (tmp_path / "normal" / "PAT2").mkdir(parents=True)
    (tmp_path / "covid19").mkdir()
    film = np.zeros((64, 64), np.uint16)
    (tmp_path / "normal" / "PAT1" / "SER1" / "IM000001").write_bytes(dicom_bytes(film, header={"PatientID": "MRN-77"}))
    (tmp_path / "normal" / "PAT2" / "IM000001").write_bytes(encode(gradient(64), "PNG"))
    (tmp_path / "normal" / "PAT2" / "IM000002.png").write_bytes(encode(gradient(64), "PNG"))
    (tmp_path / "covid19" / "a.dcm").write_bytes(dicom_bytes(film, header={"PatientID": "MRN-77"}))
    (tmp_path / "covid19" / "b.dcm").write_bytes(dicom_bytes(film, header={"PatientID": "MRN-78"}))
    (tmp_path / "covid19" / "c.png").write_bytes(encode(gradient(64), "PNG"))
    table = load_dataset(tmp_path).table.set_index("filename")
    assert sorted(table.index) == ["PAT1/SER1/IM000001", "PAT2/IM000002.png", "a.dcm", "b.dcm", "c.png"]
    patient = table["patient"]
    assert patient["PAT1/SER1/IM000001"] == patient["a.dcm"] != patient["b.dcm"]  # the same PatientID
    assert "MRN-77" not in "".join(patient)
    assert patient["PAT2/IM000002.png"] == "folder-PAT2" and patient["c.png"] == "c"
