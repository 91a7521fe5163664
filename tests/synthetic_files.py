"""Synthetic image files and a tiny classifier for the robustness tests (nothing read from disk).

Every maker returns the bytes of one file, small enough to build hundreds in a test.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def gradient(size: int = 64) -> np.ndarray:
    """uint8 size x size, dark top-left to bright bottom-right (a pattern any decode must keep)."""
    ramp = np.add.outer(np.arange(size), np.arange(size)) * (255.0 / (2 * size - 2))
    return ramp.astype(np.uint8)


def encode(image: Image.Image | np.ndarray, fmt: str, **kwargs) -> bytes:
    """Bytes of ``image`` saved by PIL as ``fmt`` (PNG, JPEG, TIFF, BMP...)."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buf = io.BytesIO()
    image.save(buf, fmt, **kwargs)
    return buf.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_claiming(width: int, height: int, idat: bytes = b"") -> bytes:
    """A grayscale 8-bit PNG whose header claims width x height (pixel data: ``idat``, may be short)."""
    header = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + (_png_chunk(b"IDAT", idat) if idat else b"") + _png_chunk(b"IEND", b"")


def png_bomb(width: int = 8000, height: int = 8000) -> bytes:
    """A valid all-black PNG of width x height that compresses ~1000:1 (built row by row, never in memory)."""
    comp = zlib.compressobj(9)
    row = b"\0" * (width + 1)  # filter byte + pixels
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    return png_claiming(width, height, idat)


def dicom_bytes(pixels: np.ndarray | None = None, photometric: str = "MONOCHROME2", frames: int = 1,
                transfer_syntax: str | None = None, encapsulated: bytes | None = None,
                patient_name: str = "Doe^Jane", header: dict | None = None) -> bytes:
    """A DX DICOM file (Part 10) with uint16 ``pixels`` (HxW, or FxHxW for frames > 1).

    ``pixels=None`` writes no pixel data; ``encapsulated`` writes those compressed fragments
    with ``transfer_syntax`` instead of native pixels; ``header`` sets more attributes ({"ViewPosition": "LL"}).
    """
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.TransferSyntaxUID = transfer_syntax or ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = FileDataset("synthetic.dcm", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName, ds.PatientID, ds.Modality = patient_name, "PID-12345", "DX"
    shape = (64, 64) if pixels is None else pixels.shape[-2:]
    ds.Rows, ds.Columns = shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    for keyword, value in (header or {}).items():
        setattr(ds, keyword, value)
    if frames > 1:
        ds.NumberOfFrames = frames
    if encapsulated is not None:
        ds.PixelData = encapsulate([encapsulated])
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
    elif pixels is not None:
        ds.PixelData = np.ascontiguousarray(pixels, np.uint16).tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def dicom_with_raw_element(tag: int, value: bytes, vr: str | None = None) -> bytes:
    """dicom_gradient(64) with one more data element of raw ``value`` (even length) in its place by tag: in the
    Implicit VR Little Endian transfer syntax when ``vr`` is None (4-byte lengths for every element), else in
    Explicit VR Little Endian with that VR."""
    from pydicom.filereader import _read_file_meta_info, read_preamble
    from pydicom.uid import ImplicitVRLittleEndian

    base = dicom_gradient(64, transfer_syntax=None if vr else ImplicitVRLittleEndian)
    fp = io.BytesIO(base)
    read_preamble(fp, True)
    _read_file_meta_info(fp)
    pos, long_vrs = fp.tell(), (b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"SQ", b"UC", b"UN", b"UR", b"UT", b"SV",
                                b"UV")
    while pos < len(base):  # to the first element past ``tag``
        group, element = struct.unpack_from("<HH", base, pos)
        if group << 16 | element > tag:
            break
        if vr is None:
            pos += 8 + struct.unpack_from("<I", base, pos + 4)[0]
        elif base[pos + 4:pos + 6] in long_vrs:
            pos += 12 + struct.unpack_from("<I", base, pos + 8)[0]
        else:
            pos += 8 + struct.unpack_from("<H", base, pos + 6)[0]
    group_element = struct.pack("<HH", tag >> 16, tag & 0xFFFF)
    if vr is None:
        element = group_element + struct.pack("<I", len(value))
    elif vr.encode() in long_vrs:
        element = group_element + vr.encode() + struct.pack("<HI", 0, len(value))
    else:
        element = group_element + vr.encode() + struct.pack("<H", len(value))
    return base[:pos] + element + value + base[pos:]


def rle_dicom(segment: bytes, size: int = 64, low_bytes: bytes | None = None) -> bytes:
    """A ``size`` x ``size`` DICOM in RLE Lossless whose segment (PackBits runs) is ``segment``: 8-bit, or 16-bit with
    ``low_bytes``, the second segment (``segment`` then holds the high bytes)."""
    segments = [segment] if low_bytes is None else [segment, low_bytes]
    offsets = [64 + sum(len(s) for s in segments[:i]) for i in range(len(segments))]  # after the 64-byte header
    header = struct.pack("<16I", len(segments), *offsets, *[0] * (15 - len(segments)))
    bits = {} if low_bytes is not None else {"BitsAllocated": 8, "BitsStored": 8, "HighBit": 7}
    return dicom_bytes(np.zeros((size, size), np.uint16), transfer_syntax="1.2.840.10008.1.2.5",
                       encapsulated=header + b"".join(segments), header=bits)


def j2k_headers(size: int, levels: int = 5, precinct: int | None = None, block: int = 64,
                in_tile_part: bool = False) -> bytes:
    """The marker segments of a JPEG 2000 codestream of one 8-bit ``size`` x ``size`` tile and no image data, whose
    coding style asks for ``block`` x ``block`` code-blocks and, given ``precinct``, precincts of that side at every
    resolution: in the main header, or (``in_tile_part``) in the tile-part's header, overriding a main-header style
    of 64x64 code-blocks."""
    def segment(marker: int, body: bytes) -> bytes:
        return struct.pack(">HH", marker, len(body) + 2) + body

    def coding_style(precinct: int | None, block: int) -> bytes:
        exponent = (block.bit_length() - 3, precinct.bit_length() - 1 if precinct else 15)
        return segment(0xFF52, bytes([1 if precinct else 0, 0, 0, 1, 0, levels, exponent[0], exponent[0], 0, 1])
                       + (bytes([exponent[1] * 17] * (levels + 1)) if precinct else b""))

    size_body = struct.pack(">HIIIIIIIIH", 0, size, size, 0, 0, size, size, 0, 0, 1) + bytes([7, 1, 1])
    main = (b"\xff\x4f" + segment(0xFF51, size_body) + coding_style(None if in_tile_part else precinct,
                                                                    64 if in_tile_part else block)
            + segment(0xFF5C, bytes([0x40] * (3 * levels + 2))))
    tile_header = coding_style(precinct, block) if in_tile_part else b""
    tile_part = struct.pack(">HHHIBB", 0xFF90, 10, 0, 12 + len(tile_header) + 2, 0, 1) + tile_header + b"\xff\x93"
    return main + tile_part + b"\xff\xd9"


def dicom_gradient(size: int = 64, **kwargs) -> bytes:
    """dicom_bytes of a 12-bit gradient (raw value grows to the bottom-right)."""
    return dicom_bytes(gradient(size).astype(np.uint16) * 16, **kwargs)


def png_with_chunks(n: int, after_image: bool = False) -> bytes:
    """The 64x64 gradient as PNG with ``n`` empty private ancillary chunks ("zzZz") between IHDR and the image, or
    between the image and IEND (``after_image``)."""
    png = encode(gradient(64), "PNG")
    at = png.rindex(b"IEND") - 4 if after_image else 33
    return png[:at] + _png_chunk(b"zzZz", b"") * n + png[at:]


def png_with_exif(orientation: int, fractions: int = 0) -> bytes:
    """A PNG 64 px wide and 48 high, its top 12 rows white, with an eXIf chunk: EXIF orientation ``orientation`` and,
    given ``fractions``, an XResolution tag of that many zero RATIONALs (one is right; Pillow unpacks each it reads)."""
    stored = np.zeros((48, 64), np.uint8)
    stored[:12] = 255
    entries = [(0x0112, 3, 1, orientation)] + ([(282, 5, fractions, 8 + 2 + 2 * 12 + 4)] if fractions else [])
    exif = b"II*\x00" + struct.pack("<IH", 8, len(entries))
    for tag, kind, count, value in entries:  # a SHORT sits left-aligned in its value field
        exif += struct.pack("<HHI", tag, kind, count) + (struct.pack("<HH", value, 0) if kind == 3
                                                         else struct.pack("<I", value))
    exif += struct.pack("<I", 0) + bytes(8 * fractions)
    png = encode(stored, "PNG")
    return png[:33] + _png_chunk(b"eXIf", exif) + png[33:]


def jpeg_with_segments(n: int) -> bytes:
    """The 64x64 gradient as JPEG with ``n`` empty APP15 segments after its start marker."""
    jpeg = encode(gradient(64), "JPEG")
    return jpeg[:2] + b"\xff\xef\x00\x02" * n + jpeg[2:]


def progressive_jpeg(scans: int, size: int = 64) -> bytes:
    """A grayscale progressive JPEG of ``size`` x ``size`` px, mid-grey, of a DC scan and ``scans`` - 1 near-empty
    AC scans (each a few end-of-band runs that cover every block): a handful of bytes a scan, a pass over the whole
    image each for the decoder."""

    def segment(marker: int, body: bytes) -> bytes:
        return bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body

    def entropy_coded(bits: str) -> bytes:  # padded with ones; a 0xFF byte is followed by a stuffed zero
        bits += "1" * (-len(bits) % 8)
        return b"".join(bytes([v, 0]) if v == 0xFF else bytes([v])
                        for v in (int(bits[i:i + 8], 2) for i in range(0, len(bits), 8)))

    blocks = ((size + 7) // 8) ** 2
    one_code = bytes([1] + [0] * 15)  # a Huffman table of one 1-bit code ("0")
    head = (b"\xff\xd8" + segment(0xDB, b"\x00" + bytes([1] * 64))
            + segment(0xC2, struct.pack(">BHHB", 8, size, size, 1) + b"\x01\x11\x00")
            + segment(0xC4, b"\x00" + one_code + b"\x00")  # DC: the difference 0 (mid-grey everywhere)
            + segment(0xC4, b"\x10" + one_code + b"\xe0"))  # AC: an end-of-band run of 2^14 + 14 more bits
    dc_scan = segment(0xDA, b"\x01\x01\x00\x00\x00\x00") + entropy_coded("0" * blocks)
    runs = -(-blocks // 32767)  # runs of 32,767 blocks (2^14 + 0x3FFF)
    ac_scan = segment(0xDA, b"\x01\x01\x00\x01\x3f\x00") + entropy_coded(("0" + "1" * 14) * runs)
    return head + dc_scan + ac_scan * (scans - 1) + b"\xff\xd9"


def run_length_bmp(image: np.ndarray, tail: bytes = b"") -> bytes:
    """An 8-bit grayscale BMP of ``image`` (uint8 HxW) compressed as RLE8, each row a series of runs of equal pixels
    ended by an end-of-line escape, the rows bottom-up, then ``tail`` (more run-length data) and end-of-bitmap."""
    body = bytearray()
    for row in image[::-1]:
        x = 0
        while x < len(row):
            run = 1
            while x + run < len(row) and run < 255 and row[x + run] == row[x]:
                run += 1
            body += bytes([run, row[x]])
            x += run
        body += b"\x00\x00"
    body += tail + b"\x00\x01"
    palette = b"".join(bytes([i, i, i, 0]) for i in range(256))
    at = 14 + 40 + len(palette)
    height, width = image.shape
    return (struct.pack("<2sIHHI", b"BM", at + len(body), 0, 0, at)
            + struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(body), 2835, 2835, 256, 0) + palette
            + bytes(body))


def tiff_pages(n: int) -> bytes:
    """A little-endian TIFF of ``n`` 64x64 8-bit pages that all share one strip (the gradient), so each page costs
    102 bytes: a page list long enough to walk for minutes fits in a small upload."""
    return tiff_strips([1] * n, rows_per_strip=64)


def tiff_strips(strips_per_page: list[int], order: str = "<", bigtiff: bool = False, private_tags: int = 0,
                rows_per_strip: int = 1, numbers: tuple[int, int, int] | None = None) -> bytes:
    """A TIFF (classic or BigTIFF, little- or big-endian ``order``) of one 64x64 8-bit page per entry, each listing
    that many strips of ``rows_per_strip`` rows, all pointing into one copy of the gradient: its strips in turn, so
    64 strips of one row (or one of 64) make the whole image. Each page also holds ``private_tags`` private SHORT
    tags (50000 upwards, at most 15,535) and, given ``numbers`` = (tag, field type, count), that tag listing count
    zeros of that type (SHORT 3, LONG 4, RATIONAL 5, BYTE 1...), all pages' lists one shared block."""
    word, long_type, field = ("Q", 16, 8) if bigtiff else ("I", 4, 4)  # BigTIFF: 8-byte counts, offsets and values
    strip_bytes = 64 * rows_per_strip
    out = bytearray((b"II" if order == "<" else b"MM") + (struct.pack(order + "HHHQ", 43, 8, 0, 0) if bigtiff
                                                          else struct.pack(order + "HI", 42, 0)))
    pixel_at = len(out)
    out += gradient(64).tobytes()
    link = 8 if bigtiff else 4  # where the offset of the next page's directory is written
    if numbers:
        numbers_at = len(out)
        out += bytes(numbers[2] * {1: 1, 3: 2, 4: 4, 5: 8}[numbers[1]])

    def values(listed: list[int]) -> int:
        """The value field of a LONG (LONG8) list: the value itself when one fits, else where the list is written."""
        if len(listed) == 1:
            return listed[0]
        out.extend(struct.pack(f"{order}{len(listed)}{word}", *listed))
        return len(out) - len(listed) * struct.calcsize(word)

    for n in strips_per_page:
        offsets = values([pixel_at + (i * strip_bytes) % 4096 for i in range(n)])
        counts = values([strip_bytes] * n)
        tags = [(256, 3, 1, 64), (257, 3, 1, 64), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
                (273, long_type, n, offsets), (278, 3, 1, rows_per_strip), (279, long_type, n, counts)]
        tags += [(50000 + i, 3, 1, 1) for i in range(private_tags)]
        tags = sorted(tags + [(*numbers, numbers_at)]) if numbers else tags
        struct.pack_into(order + word, out, link, len(out))
        out += struct.pack(order + ("Q" if bigtiff else "H"), len(tags))
        for tag, kind, count, value in tags:
            entry = struct.pack(order + "HH" + word, tag, kind, count)
            # one SHORT sits left-aligned in the value field; a longer list is pointed at
            out += entry + (struct.pack(order + "H", value).ljust(field, b"\0") if (kind, count) == (3, 1)
                            else struct.pack(order + word, value))
        link = len(out)
        out += struct.pack(order + word, 0)
    return bytes(out)


def dicom_with_many_elements(n: int, nested: bool = True, deflated: bool = False) -> bytes:
    """dicom_gradient(64) with ``n`` tiny private data elements more before its pixel data: the items of one
    undefined-length private sequence (``nested``), or top-level elements of their own; ``deflated``: in the
    Deflated Explicit VR Little Endian transfer syntax, the data set deflated whole."""
    from pydicom.filereader import _read_file_meta_info, read_preamble
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    def data_set_offset(data: bytes) -> int:
        fp = io.BytesIO(data)
        read_preamble(fp, True)
        _read_file_meta_info(fp)
        return fp.tell()

    base = dicom_gradient(64)
    if nested:
        item = struct.pack("<HHI", 0xFFFE, 0xE000, 10) + struct.pack("<HH2sHH", 0x0009, 0x1010, b"US", 2, 1)
        extra = (struct.pack("<HH2sHI", 0x0009, 0x1020, b"SQ", 0, 0xFFFFFFFF) + item * n
                 + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0))
    else:  # ascending private tags (odd groups from 0x0011), each a US of value 1
        extra = b"".join(struct.pack("<HH2sHH", 0x0011 + 2 * (i // 0xF000), 0x1000 + i % 0xF000, b"US", 2, 1)
                         for i in range(n))
    at = base.index(struct.pack("<HH", 0x7FE0, 0x0010))
    data = base[:at] + extra + base[at:]
    if not deflated:
        return data
    meta = dicom_gradient(64, transfer_syntax=DeflatedExplicitVRLittleEndian)
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return (meta[:data_set_offset(meta)] + packer.compress(data[data_set_offset(data):])
            + packer.flush())


def tiny_classifier(folder: Path, image_size: int = 64, seed: int = 0, target: str = "3class"):
    """A randomly initialised cnn classifier saved as a real checkpoint and loaded back."""
    import torch

    from covid_core.checkpoint import atomic_save, classifier_checkpoint, load_classifier
    from covid_core.models import build_model
    from covid_core.preprocess import PreprocessConfig
    from covid_core.targets import class_names

    torch.manual_seed(seed)
    classes = class_names(target)
    model = build_model("cnn", len(classes))
    path = Path(folder) / "tiny.pt"
    atomic_save(classifier_checkpoint(model, model_name="cnn", target=target, classes=classes,
                                      preprocess=PreprocessConfig(image_size=image_size)), path)
    return load_classifier(path)


def lossless_jpeg(pixels: np.ndarray, precision: int = 12) -> bytes:
    """A lossless JPEG (ITU T.81 process 14, first-order prediction: DICOM's JPEG Lossless SV1, the usual
    compression of CR and DX films) of uint16 HxW ``pixels``, for decoding tests. One Huffman table gives every
    difference category (0-16) a 5-bit code; no restart intervals."""
    pixels = np.asarray(pixels, np.int64)
    h, w = pixels.shape

    def segment(marker: int, payload: bytes) -> bytes:
        return struct.pack(">HH", marker, len(payload) + 2) + payload

    bits, value, out = 0, 0, bytearray()

    def put(code: int, length: int) -> None:
        nonlocal bits, value
        value, bits = (value << length) | (code & ((1 << length) - 1)), bits + length
        while bits >= 8:
            byte = (value >> (bits - 8)) & 0xFF
            out.append(byte)
            if byte == 0xFF:
                out.append(0)  # byte stuffing
            bits -= 8

    for y in range(h):
        for x in range(w):
            if x == 0:
                predicted = pixels[y - 1, 0] if y else 1 << (precision - 1)
            else:
                predicted = pixels[y, x - 1]
            diff = (int(pixels[y, x] - predicted) + 32768) % 65536 - 32768
            category = 0 if diff == 0 else min(abs(diff).bit_length(), 16)
            put(category, 5)  # symbol k has the canonical 5-bit code k
            if 0 < category < 16:
                put(diff if diff > 0 else diff - 1, category)
    if bits:
        put(0x7F, 8 - bits)  # pad with ones
    huffman = bytes([0x00]) + bytes([0, 0, 0, 0, 17] + [0] * 11) + bytes(range(17))
    return (b"\xff\xd8" + segment(0xFFC4, huffman)
            + segment(0xFFC3, struct.pack(">BHHB", precision, h, w, 1) + bytes([1, 0x11, 0]))
            + segment(0xFFDA, bytes([1, 1, 0x00, 1, 0, 0])) + bytes(out) + b"\xff\xd9")


#: Values of every wrong kind a hand edit (or another version) can leave in a JSON file or a checkpoint's metadata.
ODD_VALUES = (None, "", "x", -1, 0, 0.5, "0.5", 1e308, float("nan"), float("inf"), True, [], {}, [1, 2], 10 ** 30)


def value_places(value, at=()) -> list[tuple]:
    """Every place (the path of keys and indices) inside nested dicts and lists, the nested ones' places too."""
    places = [at] if at else []
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        places += value_places(child, at + (key,))
    return places


def edit_at_random(value, places: list[tuple], rng, delete_share: float) -> None:
    """Give 1 to 3 of ``places`` in ``value`` (changed in place) one of ODD_VALUES, or delete the entry of a dict
    (a share ``delete_share`` of the edits); a place an earlier edit took away is skipped."""
    for _ in range(rng.randint(1, 3)):
        *parents, key = rng.choice(places)
        holder = value
        try:
            for parent in parents:
                holder = holder[parent]
            if isinstance(holder, dict) and rng.random() < delete_share:
                del holder[key]
            else:
                holder[key] = rng.choice(ODD_VALUES)
        except (KeyError, IndexError, TypeError):
            pass
