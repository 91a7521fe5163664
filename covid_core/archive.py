"""Unpack a zip of labelled films (a site's validation set), or write the files of a folder chosen in the browser,
safely into a folder on the server.

Refused or skipped, with the reason: members whose path would leave the folder (``../``, absolute paths, drive
letters), links, more than ``max_files`` members (a directory far larger than that many need is refused before it
is read), and more than ``max_bytes`` unpacked in all. The size is counted while reading, not taken from the zip's
own header, so a zip bomb that lies about its sizes stops at the cap. Only films are kept: a file with an image
extension, or a DICOM by its content (notes, spreadsheets and ``.DS_Store`` are passed over).
"""

from __future__ import annotations

import io
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from .datasets import IMAGE_EXTENSIONS
from .decode import DICOM_PREAMBLE, is_dicom
from .errors import DatasetError

MAX_FILES = 5000
MAX_BYTES = 1024 * 2**20
CHUNK = 1 << 20


def _safe_member(name: str) -> PurePosixPath | None:
    path = PurePosixPath(name.replace("\\", "/"))
    if "\0" in name or not path.parts or path.is_absolute() or ".." in path.parts or ":" in path.parts[0]:
        return None
    return path


def _is_film(path: PurePosixPath, head: bytes) -> bool:
    """Whether a file is kept as a film: an image extension, or a DICOM by its first bytes (a DICOM named IM000001)."""
    return path.suffix.lower() in IMAGE_EXTENSIONS or is_dicom(head, path.name)


def _too_large(what: str, max_bytes: int) -> DatasetError:
    return DatasetError(f"{what} more than {max_bytes / 2**20:.0f} MB; refused")


def _not_written(name: str, exc: OSError) -> DatasetError:
    """The disk, not the films: a full disk, or a name this file system refuses."""
    return DatasetError(f"could not write {name} here ({exc.strerror or exc}); nothing was validated")


def _data_root(dest: Path) -> Path:
    """``dest``, or the one folder everything in it is wrapped in ("hospital/normal/..."), down to the class
    folders."""
    root = dest
    while root.is_dir() and len(entries := list(root.iterdir())) == 1 and entries[0].is_dir() \
            and entries[0].name.lower() not in ("normal", "pneumonia", "covid19", "covid", "train", "test"):
        root = entries[0]
    return root


#: Bytes of central directory allowed per member the caps admit: 46 bytes of record and a name of up to about 1 KB.
DIRECTORY_BYTES_PER_MEMBER = 1100


def _check_directory(data: bytes, max_files: int) -> None:
    """Refuse a zip whose end record lists far more members, or a far larger central directory, than ``max_files``
    files need (each in a folder of its own: twice as many entries), before zipfile builds an object for each (a
    43 MB zip of 480,000 empty members took 422 MB and 3.5 s to refuse after that)."""
    end = zipfile._EndRecData(io.BytesIO(data))  # the end record, ZIP64's included; None when there is none
    if end is None:
        return  # not a zip: ZipFile says so
    listed, size = end[zipfile._ECD_ENTRIES_TOTAL], end[zipfile._ECD_SIZE]
    if listed > 2 * max_files:
        raise DatasetError(f"the zip lists {listed:,} entries, over the limit of {max_files} files")
    if size > 2 * max_files * DIRECTORY_BYTES_PER_MEMBER:
        raise DatasetError(f"the zip's directory takes {size / 1024:,.0f} KB, far more than {max_files} files need; "
                           "refused")


#: What zipfile and zlib raise for a damaged member or directory, besides BadZipFile: a bad checksum or header
#: (BadZipFile), offsets before the start of the file (ValueError "negative seek value"), compressed data cut short
#: (EOFError) or corrupt (zlib.error), a compression method Python cannot read (NotImplementedError) and an
#: encrypted member (RuntimeError "password required").
DAMAGE = (ValueError, EOFError, zlib.error, NotImplementedError, RuntimeError)


def _damage_reason(exc: BaseException) -> str:
    if isinstance(exc, RuntimeError) and "password" in str(exc).lower():
        return "encrypted (a password is needed); zip the films without one"
    if isinstance(exc, NotImplementedError):
        return f"packed with a compression this reader lacks ({exc}); zip it again with the usual deflate"
    if "CRC" in str(exc):
        return "damaged in the zip: its contents fail the zip's checksum"
    if "seek" in str(exc):
        return "damaged in the zip: the zip's directory places it outside the file"
    return f"damaged in the zip ({str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__})"


def extract_labelled_zip(data: bytes, dest: str | Path, max_files: int = MAX_FILES,
                         max_bytes: int = MAX_BYTES) -> tuple[Path, list[str]]:
    """Unpack the image files of the zip ``data`` into ``dest``; returns (the data folder: ``dest``, or the one
    folder the zip wraps everything in, the names it skipped with why).

    Raises DatasetError for a file that is not a zip, too many members or too many bytes.
    """
    dest = Path(dest)
    _check_directory(data, max_files)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, *DAMAGE) as exc:
        raise DatasetError(f"not a zip archive, or its directory is damaged ({exc}); upload a .zip of folders such "
                           "as normal/ and covid19/") from exc
    members = [m for m in archive.infolist() if not m.is_dir()]
    if len(members) > max_files:
        raise DatasetError(f"the zip holds {len(members)} files, over the limit of {max_files}")
    skipped, total = [], 0
    for member in members:
        path = _safe_member(member.filename)
        if path is None:
            skipped.append(f"{member.filename}: its path leaves the folder; skipped")
            continue
        if (member.external_attr >> 16) & 0o170000 == 0o120000:
            skipped.append(f"{member.filename}: a link; skipped")
            continue
        target = dest.joinpath(*path.parts)
        try:
            with archive.open(member) as src:
                if not _is_film(path, src.read(DICOM_PREAMBLE)):
                    continue  # notes, CSVs of other tools, .DS_Store...
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(member) as src, open(target, "wb") as out:
                while chunk := src.read(CHUNK):
                    total += len(chunk)
                    if total > max_bytes:
                        raise _too_large("the zip unpacks to", max_bytes)
                    out.write(chunk)
        except (zipfile.BadZipFile, *DAMAGE) as exc:  # this member only: the others are still read
            target.unlink(missing_ok=True)
            skipped.append(f"{member.filename}: {_damage_reason(exc)}; skipped")
        except OSError as exc:
            raise _not_written(member.filename, exc) from exc
    return _data_root(dest), skipped


def write_labelled_files(files, dest: str | Path, max_files: int = MAX_FILES,
                         max_bytes: int = MAX_BYTES) -> tuple[Path, list[str]]:
    """Write the films among ``files`` (pairs of a path inside the chosen folder, as the browser names it, such as
    "hospital/normal/a.dcm", and its bytes) into ``dest``, as :func:`extract_labelled_zip` unpacks a zip; returns
    (the data folder, the names it skipped with why).

    Raises DatasetError for more than ``max_files`` files or more than ``max_bytes`` of films in all.
    """
    dest = Path(dest)
    skipped, total = [], 0
    for n, (name, data) in enumerate(files):
        if n == max_files:
            raise DatasetError(f"the folder holds more than {max_files} files, over the limit")
        path = _safe_member(str(name))
        if path is None:
            skipped.append(f"{name}: its path leaves the folder; skipped")
            continue
        if not _is_film(path, data[:DICOM_PREAMBLE]):
            continue
        total += len(data)
        if total > max_bytes:
            raise _too_large("the folder's films take", max_bytes)
        target = dest.joinpath(*path.parts)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        except OSError as exc:
            raise _not_written(str(name), exc) from exc
    return _data_root(dest), skipped
