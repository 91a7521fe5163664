"""Broken data sets in all three layouts: refused with a DatasetError naming the offending rows,
and nothing outside the data folder is ever read."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from covid_core.cache import cache_key, load_or_build, readable_films
from covid_core.datasets import CORONAHACK_CSV, load_dataset
from covid_core.errors import DatasetError
from covid_core.preprocess import PreprocessConfig
from synthetic_files import encode, gradient

PNG = encode(gradient(48), "PNG")
HEADER = ",X_ray_image_name,Label,Dataset_type,Label_2_Virus_category,Label_1_Virus_category"


@pytest.fixture
def outside(tmp_path) -> Path:
    """A real image that sits OUTSIDE every data folder (a secret the data set must not reach)."""
    secret = tmp_path / "outside" / "secret.png"
    secret.parent.mkdir()
    secret.write_bytes(PNG)
    return secret


def _refusal(root: Path) -> str:
    """The DatasetError message load_dataset gives for ``root`` (fails if it loads)."""
    with pytest.raises(DatasetError) as info:
        load_dataset(root)
    return str(info.value)


# ---------- CoronaHack layout ----------

def coronahack(tmp_path: Path, lines: list[str], files=("a.png", "b.png", "c.png"), raw: bytes | None = None) -> Path:
    root = tmp_path / "hack"
    images = root / "Coronahack-Chest-XRay-Dataset" / "Coronahack-Chest-XRay-Dataset"
    for split in ("train", "test"):
        (images / split).mkdir(parents=True, exist_ok=True)
        for f in files:
            (images / split / f).write_bytes(PNG)
    (root / CORONAHACK_CSV).write_bytes(raw if raw is not None else "\n".join(lines).encode() + b"\n")
    return root


GOOD_ROWS = ["0,a.png,Normal,TRAIN,,", "1,b.png,Pnemonia,TRAIN,COVID-19,Virus", "2,c.png,Pnemonia,TEST,,bacteria"]


def test_coronahack_good_csv_loads(tmp_path):
    ds = load_dataset(coronahack(tmp_path, [HEADER, *GOOD_ROWS]))
    assert ds.layout == "coronahack"
    assert dict(zip(ds.table.filename, ds.table.finding)) == {"a.png": "normal", "b.png": "covid19", "c.png": "pneumonia"}


@pytest.mark.parametrize("header, words", [
    (",X_ray_image_name,Dataset_type,Label_2_Virus_category,Label_1_Virus_category", ["'Label'"]),
    (",X_ray_image_name,Lable,Dataset_type,Label_2_Virus_category,Label_1_Virus_category",
     ["'Label'", "found 'Lable'", "misspelled"]),
    (",image,Label,Dataset_type,Label_2_Virus_category,Label_1_Virus_category", ["'X_ray_image_name'", "it has"]),
])
def test_coronahack_missing_or_misspelled_column(tmp_path, header, words):
    rows = [",".join(r.split(",")[: len(header.split(","))]) for r in GOOD_ROWS]
    with pytest.raises(DatasetError) as info:
        load_dataset(coronahack(tmp_path, [header, *rows]))
    for w in words:
        assert w in str(info.value)


def test_coronahack_bad_encoding_names_the_line(tmp_path):
    raw = "\n".join([HEADER, *GOOD_ROWS]).encode() + b"\n3,d\xe9j\xe0.png,Normal,TRAIN,,\n"
    with pytest.raises(DatasetError, match=r"not UTF-8 text \(bad byte at line 5\)"):
        load_dataset(coronahack(tmp_path, [], raw=raw))


def test_coronahack_blank_lines_are_skipped_and_rows_still_named_by_line(tmp_path):
    lines = [HEADER, "", GOOD_ROWS[0], "   ", "", GOOD_ROWS[1], GOOD_ROWS[2], "9,z.png,Tuberculosis,TRAIN,,", ""]
    with pytest.raises(DatasetError) as info:
        load_dataset(coronahack(tmp_path, lines))
    # The Tuberculosis row is line 8 of the file (header = line 1), whatever blank lines precede it.
    assert "row 8 ('Tuberculosis')" in str(info.value)
    ds = load_dataset(coronahack(tmp_path, lines[:-2]))
    assert len(ds.table) == 3


def test_coronahack_quoted_commas_in_names(tmp_path):
    root = coronahack(tmp_path, [HEADER, '0,"scan, day 2.png",Normal,TRAIN,,', GOOD_ROWS[1]],
                      files=("scan, day 2.png", "b.png"))
    ds = load_dataset(root)
    assert "scan, day 2.png" in set(ds.table.filename)
    assert all(Path(p).is_file() for p in ds.table.path)


def test_coronahack_labels_outside_the_known_set_are_named(tmp_path):
    rows = [*GOOD_ROWS, "3,a.png,Tuberculosis,TRAIN,,", "4,b.png,Normal,VALIDATE,,"]
    msg = _refusal(coronahack(tmp_path, [HEADER, *rows]))
    assert "row 5 ('Tuberculosis')" in msg and "Normal or Pnemonia" in msg
    assert "row 6 ('VALIDATE')" in msg and "TRAIN or TEST" in msg


def test_coronahack_rows_escaping_the_folder_are_refused(tmp_path, outside):
    images = tmp_path / "hack" / "Coronahack-Chest-XRay-Dataset" / "Coronahack-Chest-XRay-Dataset" / "train"
    images.mkdir(parents=True)
    (images / "link.png").symlink_to(outside)
    rows = [*GOOD_ROWS, "3,../../../../outside/secret.png,Normal,TRAIN,,", f"4,{outside},Normal,TRAIN,,",
            "5,link.png,Normal,TRAIN,,"]
    msg = _refusal(coronahack(tmp_path, [HEADER, *rows]))
    assert "3 rows" in msg and "outside the data folder" in msg
    for row in ("row 5 ('../../../../outside/secret.png')", f"row 6 ('{outside}')", "row 7 ('link.png')"):
        assert row in msg


def test_coronahack_duplicates_and_missing_files_are_named(tmp_path):
    rows = [*GOOD_ROWS, "3,a.png,Normal,TRAIN,,", "4,ghost.png,Normal,TEST,,"]
    msg = _refusal(coronahack(tmp_path, [HEADER, *rows]))
    assert "row 6 (ghost.png)" in msg and "do not exist" in msg
    assert "row 2 (a.png)" in msg and "row 5 (a.png)" in msg and "repeat a file name" in msg


def test_coronahack_short_rows_do_not_crash(tmp_path):
    with pytest.raises(DatasetError, match="TRAIN or TEST"):
        load_dataset(coronahack(tmp_path, [HEADER, *GOOD_ROWS, "3,a.png,Normal"]))


# ---------- class-folder layout ----------

def folders(tmp_path: Path, spec: dict[str, int]) -> Path:
    root = tmp_path / "folders"
    for rel, n in spec.items():
        (root / rel).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            (root / rel / f"img{i}.png").write_bytes(PNG)
    return root


def test_folders_unknown_class_is_named_with_the_valid_names(tmp_path):
    root = folders(tmp_path, {"train/normal": 2, "train/tuberculosis": 2, "test/normal": 1})
    with pytest.raises(DatasetError, match=r"train/tuberculosis have no known class; name them one of: .*covid"):
        load_dataset(root)


@pytest.mark.parametrize("layout", ["coronahack", "covidx"])
def test_a_layout_asked_for_that_does_not_fit_the_folder_is_refused_with_the_choices(tmp_path, layout):
    root = folders(tmp_path, {"train/normal": 2, "train/covid": 2, "test/normal": 1})
    with pytest.raises(DatasetError, match=layout):
        load_dataset(root, layout)


def test_folders_symlinks_escaping_are_refused(tmp_path, outside):
    root = folders(tmp_path, {"train/normal": 2, "train/covid": 2, "test/normal": 1})
    (root / "train" / "normal" / "evil.png").symlink_to(outside)
    (root / "test" / "covid").symlink_to(outside.parent, target_is_directory=True)
    msg = _refusal(root)
    assert "outside the data folder" in msg and "normal/evil.png" in msg and "covid/secret.png" in msg


def test_folders_symlink_inside_the_folder_is_fine(tmp_path):
    root = folders(tmp_path, {"train/normal": 2, "train/covid": 2, "test/normal": 1})
    (root / "train" / "covid" / "alias.png").symlink_to(root / "train" / "normal" / "img0.png")
    assert len(load_dataset(root).table) == 6


def test_unreadable_images_are_named_when_the_cache_is_built(tmp_path):
    root = folders(tmp_path, {"train/normal": 3, "train/covid": 2, "test/normal": 1})
    (root / "train" / "normal" / "img1.png").write_bytes(PNG[:60])
    (root / "train" / "covid" / "img0.png").write_bytes(b"%PDF-1.4 not an image")
    ds = load_dataset(root)
    with pytest.raises(DatasetError) as info:
        load_or_build(list(ds.table.path), PreprocessConfig(image_size=32), workers=1, progress=False,
                      folder=tmp_path / "cache")
    msg = str(info.value)
    assert msg.startswith("2 image(s) could not be read")
    # named by their place below the data folder: train/normal/img1.png, not img1.png (test/normal/ may hold one too)
    assert "train/normal/img1.png: PNG file is truncated" in msg
    assert "train/covid/img0.png: not a recognised image (it looks like a PDF" in msg
    paths, config = list(ds.table.path), PreprocessConfig(image_size=32)
    assert not (tmp_path / "cache" / f"{cache_key(paths, config)}.u8").exists(), "no half-built cache to be reused"


def test_after_an_unreadable_film_nothing_is_decoded_twice(tmp_path, monkeypatch):
    """The films that could be read are cached under the list without the unreadable ones, and the unreadable ones
    are noted: asking again fails at once, and leaving them out (readable_films) decodes nothing again."""
    import covid_core.cache as cache

    root = folders(tmp_path, {"train/normal": 3, "train/covid": 2, "test/normal": 1})
    (root / "train" / "normal" / "img1.png").write_bytes(PNG[:60])
    table, config, folder = load_dataset(root).table, PreprocessConfig(image_size=32), tmp_path / "cache"
    monkeypatch.setenv("COVID_CORE_CACHE", str(folder))
    decoded = []
    decode = cache._decode_one
    monkeypatch.setattr(cache, "_decode_one", lambda job: decoded.append(job[0]) or decode(job))
    advice = "Fix or remove it, or leave it out"
    for _ in range(2):
        with pytest.raises(DatasetError, match=r"1 image\(s\) could not be read: train/normal/img1\.png.*leave it out"):
            readable_films(table, config, skip_unreadable=False, advice=advice, progress=False)
        assert len(decoded) == 6  # the first attempt decoded the six films; the second, none
    kept, images, skipped = readable_films(table, config, skip_unreadable=True, advice=advice, progress=False)
    assert len(decoded) == 6 and skipped == ["train/normal/img1.png"] and len(kept) == len(images) == 5
    assert (root / "train" / "normal" / "img1.png").resolve() not in {Path(p).resolve() for p in kept["path"]}
    fresh = load_or_build(kept["path"].tolist(), config, workers=1, progress=False, folder=tmp_path / "fresh")
    assert np.array_equal(np.asarray(images), np.asarray(fresh))  # the same pixels as decoding them anew
    decoded.clear()
    (root / "train" / "normal" / "img1.png").write_bytes(PNG)  # the film is mended: the note no longer applies
    _, images, skipped = readable_films(table, config, skip_unreadable=False, advice=advice, progress=False)
    assert skipped == [] and len(images) == 6 and len(decoded) == 6


# ---------- COVIDx layout ----------

def covidx(tmp_path: Path, csvs: dict[str, str], files=("p1.png", "p2.png", "n1.png")) -> Path:
    root = tmp_path / "covidx"
    for split in ("train", "test"):
        (root / split).mkdir(parents=True, exist_ok=True)
        for f in files:
            (root / split / f).write_bytes(PNG)
    for name, text in csvs.items():
        (root / name).write_text(text)
    return root


def test_covidx_good_and_headerless_csv_load(tmp_path):
    ds = load_dataset(covidx(tmp_path, {"train.csv": "filename,label\np1.png,positive\nn1.png,negative\n",
                                        "test.csv": "p2.png,positive\nn1.png,negative\n"}))
    assert ds.layout == "covidx" and len(ds.table) == 4


def test_covidx_misspelled_column_is_not_taken_for_a_headerless_file(tmp_path):
    with pytest.raises(DatasetError, match=r"'filename' \(found 'filenme'; misspelled\?\)"):
        load_dataset(covidx(tmp_path, {"train.csv": "filenme,label\np1.png,positive\n",
                                       "test.csv": "filename,label\np2.png,positive\n"}))


def test_covidx_bad_labels_named_with_file_and_line(tmp_path):
    text = "p1.png,positive\n\nn1.png,maybe\np2.png,COVID\n"  # headerless: line numbers start at 1
    msg = _refusal(covidx(tmp_path, {"train.csv": text, "test.csv": "p2.png,positive\n"}))
    assert "train.csv row 3 ('maybe')" in msg and "train.csv row 4 ('COVID')" in msg
    assert "positive or negative" in msg


def test_covidx_bad_encoding(tmp_path):
    root = covidx(tmp_path, {"test.csv": "p2.png,positive\n"})
    (root / "train.csv").write_bytes(b"filename,label\np1.png,positive\n\xff\xfe.png,negative\n")
    with pytest.raises(DatasetError, match=r"train.csv is not UTF-8 text \(bad byte at line 3\)"):
        load_dataset(root)


def test_covidx_rows_escaping_the_folder_are_refused(tmp_path, outside):
    root = covidx(tmp_path, {})
    (root / "train" / "link.png").symlink_to(outside)
    (root / "all.csv").write_text(
        "filename,label\np1.png,positive\n../outside/secret.png,negative\n"
        f"{outside},negative\nlink.png,positive\n..\\..\\outside\\secret.png,negative\n")
    msg = _refusal(root)
    assert "4 rows" in msg and "outside the data folder" in msg
    for row in ("row 3 ('../outside/secret.png')", f"row 4 ('{outside}')", "row 5 ('link.png')"):
        assert row in msg


def test_covidx_duplicates_and_missing(tmp_path):
    root = covidx(tmp_path, {"all.csv": "filename,label,split\np1.png,positive,train\np1.png,positive,train\n"
                                        "ghost.png,negative,test\n"})
    msg = _refusal(root)
    assert "row 4 (ghost.png)" in msg and "row 2 (p1.png)" in msg and "row 3 (p1.png)" in msg


def test_nothing_outside_the_folder_is_opened(tmp_path, outside, monkeypatch):
    """Every file the readers open (CSV, images via stat/is_file) stays inside the data folder."""
    root = covidx(tmp_path, {"all.csv": f"filename,label\n../outside/secret.png,negative\n{outside},positive\n"
                                        "p1.png,positive\n"})
    touched = []
    real_stat = os.stat

    def spy_stat(path, *args, **kwargs):
        touched.append(os.path.abspath(os.fspath(path)))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", spy_stat)
    with pytest.raises(DatasetError):
        load_dataset(root)
    leaked = [p for p in touched if p.startswith(str(outside.parent))]
    assert not leaked, f"paths outside the data folder were probed: {leaked}"


@pytest.mark.parametrize("spec", [{"test/normal": 2, "test/covid19": 3}, {"normal": 2, "covid19": 3}])
def test_an_evaluation_set_without_a_training_split_is_read_as_test(tmp_path, spec):
    """A hospital's labelled films: test/<class>/ only, or class folders straight in the folder."""
    ds = load_dataset(folders(tmp_path, spec))
    assert ds.layout == "folders" and set(ds.table.split) == {"test"}
    assert ds.table.finding.value_counts().to_dict() == {"covid19": 3, "normal": 2}


def test_a_folder_of_unrelated_subfolders_is_not_a_data_set(tmp_path):
    with pytest.raises(DatasetError, match="not a data set in a known layout"):
        load_dataset(folders(tmp_path, {"photos": 2, "documents": 1}))


@pytest.mark.parametrize("note", ["{not json", "[]", '{"errors": "x"}', '{"errors": [["/elsewhere/a.png", "bad"]]}',
                                  '{"errors": [[1, 2]]}'])
def test_a_damaged_or_foreign_note_of_unreadable_films_is_ignored(tmp_path, note):
    """The cache's note of unreadable films is trusted only when whole and about films of the list: otherwise the
    list is decoded again, and a readable set is not refused because of the note."""
    root = folders(tmp_path, {"train/normal": 2, "train/covid": 2, "test/normal": 1})
    paths, config, folder = list(load_dataset(root).table.path), PreprocessConfig(image_size=32), tmp_path / "cache"
    folder.mkdir()
    (folder / f"{cache_key(paths, config)}.unreadable.json").write_text(note)
    images = load_or_build(paths, config, workers=1, progress=False, folder=folder)
    assert len(images) == 5
