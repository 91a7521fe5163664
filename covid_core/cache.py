"""A memory-mapped cache of decoded, preprocessed images.

Decoding JPEGs every epoch dominates CPU training time, so each image is decoded and
resized once into a uint8 NxSxS file keyed by the file list and the preprocessing
settings; later epochs (and later runs) read it with no decoding at all.
Cache folder: ``$COVID_CORE_CACHE`` or ``~/.cache/covid_core``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from .decode import decode_image
from .errors import DatasetError, InvalidImageError, UnreadableImages
from .preprocess import PreprocessConfig, prepare_pixels


def cache_dir() -> Path:
    return Path(os.environ.get("COVID_CORE_CACHE", Path.home() / ".cache" / "covid_core"))


def cache_key(paths: list[str], config: PreprocessConfig) -> str:
    h = hashlib.sha256(config.cache_key().encode())
    for p in paths:
        st = os.stat(p)
        h.update(f"{p}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return f"{config.cache_key()}-{len(paths)}-{h.hexdigest()[:16]}"


def _decode_one(args) -> tuple[np.ndarray | None, str | None]:
    path, config = args
    try:
        pixels, _ = prepare_pixels(decode_image(path).pixels, config)
        return pixels, None
    except InvalidImageError as exc:
        return None, str(exc)


def load_or_build(paths: list[str], config: PreprocessConfig, workers: int = 2, progress: bool = True,
                  folder: Path | None = None) -> np.ndarray:
    """uint8 NxSxS images for ``paths`` (read-only memmap), building the cache on first use.

    Raises UnreadableImages (a DatasetError) naming the unreadable files, if any. The films that could be read are
    cached then all the same, under the list without the unreadable ones, and the unreadable ones are noted: asking
    again for the same list raises at once, and asking for the readable ones (:func:`readable_films`) decodes
    nothing again.
    """
    folder = Path(folder or cache_dir())
    folder.mkdir(parents=True, exist_ok=True)
    key = cache_key(paths, config)
    data_file = folder / f"{key}.u8"
    s = config.image_size
    if data_file.is_file() and data_file.stat().st_size == len(paths) * s * s:
        return np.memmap(data_file, dtype=np.uint8, mode="r", shape=(len(paths), s, s))
    noted = _noted_unreadable(folder / f"{key}.unreadable.json", paths)
    if noted:
        raise _unreadable(noted)

    fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        out = np.memmap(tmp, dtype=np.uint8, mode="w+", shape=(len(paths), s, s))
        errors = []
        named = _names(paths)
        jobs = [(p, config) for p in paths]
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(paths), desc=f"caching images ({s}px)", unit="img", leave=False)
        if workers > 1 and len(paths) > 64:
            with ProcessPoolExecutor(workers) as pool:
                results = pool.map(_decode_one, jobs, chunksize=32)
                for i, (pix, err) in enumerate(results):
                    _store(out, i, pix, err, paths, named, errors)
                    if bar:
                        bar.update()
        else:
            for i, job in enumerate(jobs):
                _store(out, i, *_decode_one(job), paths, named, errors)
                if bar:
                    bar.update()
        if bar:
            bar.close()
        if errors:
            bad = {p for p, _ in errors}
            readable = [i for i, p in enumerate(paths) if p not in bad]
            if readable:
                _publish_rows(out, readable, [paths[i] for i in readable], config, folder)
            # a note cut short is read as no note (the list is then decoded again), so it needs no atomic write
            (folder / f"{key}.unreadable.json").write_text(json.dumps({"errors": errors}))
            raise _unreadable(errors)
        out.flush()
        del out
        os.replace(tmp, data_file)
        (folder / f"{key}.json").write_text(json.dumps({"n": len(paths), "config": config.to_dict()}))
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return np.memmap(data_file, dtype=np.uint8, mode="r", shape=(len(paths), s, s))


def readable_films(table, config: PreprocessConfig, skip_unreadable: bool, advice: str, progress: bool = True):
    """(table, its images, the films left out) for a data set's ``table`` (column path). A film that cannot be
    decoded stops with a DatasetError that names it and ends with ``advice`` (how to go on), or with
    ``skip_unreadable`` is left out of the table and listed, named as in that error: by its path below the folder
    the table's films share (``normal/1.png``, not ``1.png``, which ``covid/`` may hold too)."""
    try:
        return table, load_or_build(table["path"].tolist(), config, progress=progress), []
    except UnreadableImages as exc:
        if not skip_unreadable:
            raise DatasetError(f"{exc}. {advice}") from exc
        bad = table["path"].isin(exc.paths).to_numpy()
        skipped = [name for name, left_out in zip(_names(table["path"].tolist()), bad) if left_out]
        table = table[~bad].reset_index(drop=True)
        if table.empty:
            raise DatasetError(f"none of the {len(skipped)} films could be read") from exc
        return table, load_or_build(table["path"].tolist(), config, progress=False), skipped


def unreadable_list(names: list[str], shown: int = 20) -> str:
    """'3 unreadable film(s): a.png, b.png, c.png' (the first ``shown`` named), for a log or a summary."""
    return (f"{len(names)} unreadable film(s): " + ", ".join(names[:shown])
            + (" ..." if len(names) > shown else ""))


def _unreadable(errors: list) -> UnreadableImages:
    shown = "; ".join(text for _, text in errors[:5]) + (f"; and {len(errors) - 5} more" if len(errors) > 5 else "")
    return UnreadableImages(f"{len(errors)} image(s) could not be read: {shown}", [p for p, _ in errors])


def _noted_unreadable(note: Path, paths: list[str]) -> list:
    """The (path, reason) pairs noted when this list was last decoded, if the note is whole and names only films of
    the list; else [] (the list is decoded again)."""
    try:
        errors = json.loads(note.read_text())["errors"]
    except (OSError, ValueError, TypeError, KeyError):
        return []
    known = set(paths)
    whole = isinstance(errors, list) and errors and all(
        isinstance(e, list) and len(e) == 2 and all(isinstance(v, str) for v in e) and e[0] in known for e in errors)
    return errors if whole else []


def _publish_rows(out: np.ndarray, rows: list[int], paths: list[str], config: PreprocessConfig, folder: Path) -> None:
    """Cache ``out[rows]`` as the images of ``paths``, copied a block at a time (never the whole set in memory)."""
    s = config.image_size
    key = cache_key(paths, config)
    fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".tmp", dir=folder)
    os.close(fd)
    try:
        subset = np.memmap(tmp, dtype=np.uint8, mode="w+", shape=(len(rows), s, s))
        for start in range(0, len(rows), 256):
            block = rows[start:start + 256]
            subset[start:start + len(block)] = out[block]
        subset.flush()
        del subset
        os.replace(tmp, folder / f"{key}.u8")
        (folder / f"{key}.json").write_text(json.dumps({"n": len(paths), "config": config.to_dict()}))
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _names(paths: list[str]) -> list[str]:
    """Each path as the user knows it: below the folder all of them share (``train/normal/a.png``, not ``a.png``,
    which the test split may hold too)."""
    if len(paths) < 2:
        return [Path(p).name for p in paths]
    common = os.path.commonpath([os.path.abspath(p) for p in paths])
    return [os.path.relpath(os.path.abspath(p), common) for p in paths]


def _store(out, i, pix, err, paths, names, errors):
    if err is not None:
        errors.append((paths[i], f"{names[i]}: {err}"))
    else:
        out[i] = pix
