"""A DICOM header's values counted before pydicom turns them into Python objects.

pydicom reads a header's elements as raw bytes and converts one only when it is used, and a sequence of defined
length only when it is opened. The element budget (:data:`covid_core.decode.MAX_DICOM_READS`) bounds how many
elements a file may hold, not how many values one element holds nor how many items a sequence read later holds: a
40 MB implicit-VR file whose Window Center held 20 million values took 8.4 GB and 48 s to decode (its View Position,
1.8 GB and 7.6 s), and a 48 MB file whose VOI LUT Sequence held 2 million items, 2.5 GB and 64 s.
:func:`check_values` counts them on the raw bytes, into every sequence, and refuses the file before any is converted.
"""

from __future__ import annotations

from .errors import InvalidImageError

#: Most values one text element may hold (backslash-separated: a film's hold one to a few dozen).
MAX_TEXT_VALUES = 4_096
#: Most numbers one binary element may hold (a 16-bit lookup table holds 65,536).
MAX_NUMBERS = 131_072
#: Most items one sequence may hold, the items of the sequences inside it included.
MAX_SEQUENCE_ITEMS = 10_000

_TEXT_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "PN", "SH", "TM", "UC", "UI"}  # split on backslashes
_NUMBER_BYTES = {"US": 2, "SS": 2, "UL": 4, "SL": 4, "FL": 4, "FD": 8, "AT": 4, "UV": 8, "SV": 8}
_ITEM_TAGS = (b"\xfe\xff\x00\xe0", b"\xff\xfe\xe0\x00")  # (FFFE,E000), little- and big-endian


def _vr(element) -> str:
    """The element's VR as read, else the dictionary's ("US or SS" and the like kept whole); "UN" if unknown."""
    from pydicom.datadict import dictionary_VR

    vr = element.VR
    if vr is None:  # implicit VR: named by the dictionary
        try:
            vr = dictionary_VR(element.tag)
        except KeyError:  # a private or unknown tag: pydicom keeps its bytes
            return "UN"
    return vr


def _count(vr: str, raw: bytes) -> tuple[int, int, str]:
    """(how many, the most allowed, of what) that the raw value of an element of ``vr`` holds."""
    if vr == "SQ":  # the item tags' bytes: an over-count at worst (they may also occur inside a binary value)
        return sum(raw.count(t) for t in _ITEM_TAGS), MAX_SEQUENCE_ITEMS, "items"
    kinds = vr.split(" or ")
    sizes = [_NUMBER_BYTES[k] for k in kinds if k in _NUMBER_BYTES]
    if sizes:  # "US or OW" counted as 16-bit numbers: pydicom may convert it so
        return len(raw) // min(sizes), MAX_NUMBERS, "numbers"
    if _TEXT_VRS.intersection(kinds):
        return raw.count(b"\\") + 1, MAX_TEXT_VALUES, "values"
    return 0, 0, ""


def check_values(dataset) -> None:
    """Raise InvalidImageError, with the reason, for a data set (a pydicom Dataset as read) holding an element of
    too many values or a sequence of too many items, at any depth. Converts only sequences within the caps, to look
    inside their items."""
    for tag in list(dataset.keys()):
        element = dataset.get_item(tag)  # raw, or converted already: never converted here
        vr, value = _vr(element), element.value
        if isinstance(value, (bytes, bytearray)):
            count, most, what = _count(vr, value)
            if count > most:
                raise InvalidImageError(
                    f"the DICOM header's element ({tag >> 16:04X},{tag & 0xFFFF:04X}) holds {count:,} {what} (the "
                    f"limit is {most:,}): refused before they could exhaust memory. Export the film again without "
                    "private or nested data")
        if vr == "SQ":
            for item in dataset[tag].value:  # converted from its checked bytes, or parsed within the element budget
                check_values(item)
