"""A raster file's structure counted before Pillow opens it: PNG chunks and frames, JPEG marker segments and scans,
TIFF pages, strips and tag values.

Pillow walks or keeps each of these in Python, so a small file can hold millions of them and cost gigabytes and
minutes before its image is reached. :func:`check_structure` counts them on the raw bytes, each up to its cap, and
refuses a file over one with the reason; a structure that breaks ends the count (the decoder then says what is
wrong). Used by :mod:`covid_core.decode` for every raster file.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .errors import InvalidImageError

#: Frames or pages counted before a file is refused as having "over" that many (a TIFF's pages on its raw bytes,
#: other formats' frames through Pillow): Pillow's n_frames walks a whole TIFF page list (6.6 s for 32,000 pages of
#: 102 bytes, growing faster than their number: a 40 MB file of 400,000 pages ran for minutes).
MAX_FRAMES_COUNTED = 100
#: Most PNG chunks besides the image data, or JPEG marker segments (fill bytes included) before it: a film holds a
#: few dozen, and Pillow walks or keeps each one in Python (a 40 MB JPEG of 10 million empty APP15 segments took
#: 1.4 GB and 12 s to open; a 24 MB PNG of 2 million empty private chunks, 290 MB and 5 s before its image data, and
#: 291 MB and 5.8 s after it).
MAX_SEGMENTS = 1000
#: Most IDAT chunks a PNG may split its image into: encoders write 8 KB to 1 MB each (6,400 of 8 KB for a 50 MB
#: file), and Pillow takes each in Python (a 24 MB PNG of 2 million empty IDAT chunks took 4.5 s to decode).
MAX_PNG_DATA_CHUNKS = 100_000
#: Most strips or tiles a TIFF page may split its image into. Pillow lists each as a Python tuple when it opens the
#: page (a 46 MB TIFF of 6 million strips took 1.5 GB and 9 s to open, 1.6 GB and 32 s to decode); a film stored one
#: row per strip has as many strips as rows (a few thousand), in 256x256 tiles a 5000x5000 film has 400.
MAX_TIFF_STRIPS = 65_536
#: Most numbers a TIFF page's tags may hold besides its strip and tile lists. Pillow turns each number of a tag it
#: reads into a Python object when it opens the page, whatever count the file declares (a 48 MB TIFF whose
#: XResolution held 6 million fractions took 934 MB and 16 s to decode); a 16-bit palette's colour map, the largest
#: such list a film may need, holds 196,608.
MAX_TIFF_TAG_VALUES = 262_144
#: Most scans a JPEG may hold. A progressive JPEG's decoder passes over every block of the image for each scan, so
#: thousands of near-empty scans cost minutes (a 168 KB 2000x2000 JPEG of 10,000 scans took 4.7 s to decode, a 57 KB
#: DICOM of 3,000 such scans 9.6 s). Encoders write 1 to 10 (libjpeg's progressive default: 6 for grayscale, 10 for
#: colour); NVIDIA's nvImageCodec refuses over 256 for the same reason.
MAX_JPEG_SCANS = 256

_STRIP_AND_TILE_LISTS = (273, 279, 324, 325)  # StripOffsets, StripByteCounts, TileOffsets, TileByteCounts
_STRIP_AND_TILE_OFFSETS = (273, 324)  # one value per strip or tile
#: TIFF field types read as numbers (SHORT, LONG, RATIONAL, their signed kinds, FLOAT, DOUBLE, IFD, LONG8...);
#: BYTE, ASCII, SBYTE and UNDEFINED data stay bytes or text in Pillow.
_NUMERIC_TYPES = (3, 4, 5, 8, 9, 10, 11, 12, 13, 16, 17, 18)


class TiffCounts(NamedTuple):
    """A TIFF's pages (counted up to :data:`MAX_FRAMES_COUNTED` + 1), and the most strips or tiles and the most
    other tag numbers that any of those pages lists."""

    pages: int
    strips: int
    tag_values: int


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_chunks(data: bytes):
    """(type, position) of each chunk of a PNG, in order, up to IEND or the end of the bytes."""
    pos = len(_PNG_SIGNATURE)
    while pos + 8 <= len(data) and data[pos + 4:pos + 8] != b"IEND":
        yield data[pos + 4:pos + 8], pos
        pos += 12 + int.from_bytes(data[pos:pos + 4], "big")


def segment_counts(data: bytes) -> tuple[int, int]:
    """(PNG chunks other than IDAT before IEND, or JPEG marker segments and fill bytes before the scan, counted up to
    :data:`MAX_SEGMENTS` + 1; a PNG's IDAT chunks, counted up to :data:`MAX_PNG_DATA_CHUNKS` + 1); zeros for other
    formats."""
    count, image_chunks = 0, 0
    if data.startswith(_PNG_SIGNATURE):
        for kind, _ in _png_chunks(data):
            if count > MAX_SEGMENTS or image_chunks > MAX_PNG_DATA_CHUNKS:
                break
            if kind == b"IDAT":
                image_chunks += 1
            else:
                count += 1
    elif data.startswith(b"\xff\xd8"):
        pos = 2
        while pos + 4 <= len(data) and count <= MAX_SEGMENTS and data[pos] == 0xFF and data[pos + 1] not in (0xDA,
                                                                                                           0xD9):
            marker = data[pos + 1]
            standalone = marker in (0xFF, 0x01) or 0xD0 <= marker <= 0xD7  # fill byte, TEM, restart
            count, pos = count + 1, pos + (1 if marker == 0xFF else 2 if standalone
                                           else 2 + int.from_bytes(data[pos + 2:pos + 4], "big"))
    return count, image_chunks


def png_frames(data: bytes) -> int:
    """The frames an animated PNG declares in its acTL chunk (1 for a PNG without one, 0 for other formats). Pillow
    decodes each frame whole to seek past it: 101 frames of 5000x5000 (a 3 MB file) took 6 s to count."""
    if not data.startswith(_PNG_SIGNATURE):
        return 0
    for walked, (kind, pos) in enumerate(_png_chunks(data)):
        if kind == b"IDAT" or walked > MAX_SEGMENTS or pos + 16 > len(data):  # no whole acTL can follow
            break
        if kind == b"acTL":  # num_frames, then num_plays
            return int.from_bytes(data[pos + 8:pos + 12], "big")
    return 1


def jpeg_scans(stream: bytes) -> int:
    """Start-of-scan markers in a JPEG stream. Their two bytes cannot occur inside entropy-coded data (a 0xFF there is
    followed by 0 or a restart marker), only inside other segments (an EXIF thumbnail's scans, say): an over-count
    at worst, never an under-count."""
    return stream.count(b"\xff\xda")


def check_jpeg_scans(stream: bytes, what: str = "JPEG") -> None:
    """Raise InvalidImageError, with the reason, for a JPEG stream of over :data:`MAX_JPEG_SCANS` scans."""
    scans = jpeg_scans(stream)
    if scans > MAX_JPEG_SCANS:
        raise InvalidImageError(
            f"the {what} holds {scans:,} scans (an encoder writes 1 to 10; the limit is {MAX_JPEG_SCANS}): refused "
            "before each was decoded over the whole image. Export the film again")


def tiff_counts(data: bytes) -> TiffCounts:
    """The :class:`TiffCounts` of a TIFF, classic or BigTIFF; zeros for other formats. Each page's directory entries
    are read at once."""
    order = {b"II": "<", b"MM": ">"}.get(data[:2])
    if order is None or len(data) < 16:
        return TiffCounts(0, 0, 0)
    magic = int.from_bytes(data[2:4], "little" if order == "<" else "big")
    if magic not in (42, 43):
        return TiffCounts(0, 0, 0)
    big = magic == 43  # BigTIFF: 8-byte entry counts, counts and offsets, 20-byte entries, first offset at 8
    word, count_type, first_at = ("u8", "u8", 8) if big else ("u4", "u2", 4)
    entries = np.dtype([("tag", order + "u2"), ("type", order + "u2"), ("count", order + word),
                        ("value", order + word)])
    word_size, count_size = np.dtype(word).itemsize, np.dtype(count_type).itemsize
    offset = int(np.frombuffer(data, order + word, 1, first_at)[0])
    most, most_values, seen = 0, 0, set()
    while 0 < offset < len(data) and offset not in seen and len(seen) <= MAX_FRAMES_COUNTED:
        seen.add(offset)
        if offset + count_size > len(data):
            break
        n = int(np.frombuffer(data, order + count_type, 1, offset)[0])
        start = offset + count_size
        if start + n * entries.itemsize + word_size > len(data):  # the entries, then the next page's offset
            break
        table = np.frombuffer(data, entries, n, start)
        listed = table["count"][np.isin(table["tag"], _STRIP_AND_TILE_OFFSETS)]
        most = max(most, int(listed.max()) if len(listed) else 0)
        numbers = np.isin(table["type"], _NUMERIC_TYPES) & ~np.isin(table["tag"], _STRIP_AND_TILE_LISTS)
        most_values = max(most_values, int(table["count"][numbers].sum(dtype=np.float64)))  # no wrap-around
        offset = int(np.frombuffer(data, order + word, 1, start + n * entries.itemsize)[0])
    return TiffCounts(len(seen), most, most_values)


def multi_frame_error(fmt: str, frames: int) -> InvalidImageError:
    """The refusal of a file of ``frames`` frames or pages (counted up to :data:`MAX_FRAMES_COUNTED` + 1)."""
    counted = f"{frames}" if frames <= MAX_FRAMES_COUNTED else f"over {MAX_FRAMES_COUNTED}"
    return InvalidImageError(f"multi-frame {fmt} ({counted} frames or pages); only single images are read. Export "
                             "the frontal film you want as its own file")


def check_structure(data: bytes) -> None:
    """Raise InvalidImageError, with the reason, for a raster file over one of this module's caps."""
    before_image, image_chunks = segment_counts(data)
    if before_image > MAX_SEGMENTS:
        raise InvalidImageError(
            f"the file holds over {MAX_SEGMENTS:,} chunks or segments besides its image data (a film holds a few "
            "dozen): refused before they could exhaust memory. Export the film again")
    if image_chunks > MAX_PNG_DATA_CHUNKS:
        raise InvalidImageError(
            f"the PNG splits its image into over {MAX_PNG_DATA_CHUNKS:,} chunks (an encoder writes one per 8 KB or "
            "more, 6,400 for a 50 MB file): refused before they were decoded one by one. Export the film again")
    if data.startswith(b"\xff\xd8"):
        check_jpeg_scans(data)
    frames = png_frames(data)
    if frames > 1:  # refused before Pillow decodes each frame to count them
        raise multi_frame_error("PNG", min(frames, MAX_FRAMES_COUNTED + 1))
    pages, strips, tag_values = tiff_counts(data)
    if pages > 1:  # refused before Pillow opens each page's directory to count them (6 s for 101 of 15,535 tags)
        raise multi_frame_error("TIFF", pages)
    if strips > MAX_TIFF_STRIPS:
        raise InvalidImageError(
            f"the TIFF splits a page into {strips:,} strips or tiles (a film stored one row per strip has a few "
            f"thousand; the limit is {MAX_TIFF_STRIPS:,}): refused before they could exhaust memory. Export the film "
            "again")
    if tag_values > MAX_TIFF_TAG_VALUES:
        raise InvalidImageError(
            f"the TIFF's tags hold {tag_values:,} numbers besides its strips (a film's hold a few dozen; the limit "
            f"is {MAX_TIFF_TAG_VALUES:,}): refused before they could exhaust memory. Export the film again")
