"""Decode any supported file into one grayscale float image.

Step 1 of the one image path: bytes -> :func:`decode_image` -> ``DecodedImage``.
Supported: PNG, JPEG, BMP, TIFF (8/16-bit, float), grayscale/RGB/RGBA/palette/CMYK,
and DICOM through pydicom (modality LUT, VOI LUT or window, MONOCHROME1 inverted).
"""

from __future__ import annotations

import io
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .dicom_values import check_values
from .errors import InvalidImageError
from .j2k_structure import check_blocks
from .raster_structure import MAX_FRAMES_COUNTED, check_jpeg_scans, check_structure, multi_frame_error

#: Largest accepted file, in bytes (a 16-bit 4k x 4k DICOM is ~32 MB).
MAX_FILE_BYTES = 200 * 1024 * 1024
#: Largest accepted image, in pixels; larger ones are refused as possible decompression bombs.
MAX_PIXELS = 60_000_000
#: Smallest accepted side, in pixels.
MIN_SIDE = 32
#: Most memory one decode may allocate, in bytes: the stored pixels plus the float working copies
#: (:data:`FLOAT_BYTES_PER_PIXEL`). Checked from the header, before any pixel data is decompressed, so a small
#: compressed file that declares a huge image is refused without costing its size (a 7000x8500 16-bit DICOM
#: would take about 0.9 GB). 512 MiB admits a 16-bit 5000x5000 film, larger than any chest detector.
MAX_DECODE_BYTES = 512 * 2**20
#: Float working copies a decode makes per pixel (modality LUT in float64, raw and display float32 arrays).
FLOAT_BYTES_PER_PIXEL = 16

SUPPORTED_FORMATS = "PNG, JPEG, BMP, TIFF or DICOM"
#: The Pillow plugins a raster file may be opened with. Pillow reads some forty formats, EPS through Ghostscript
#: where it is installed; each is code that hostile bytes can reach, and none of the others is a film's format.
RASTER_FORMATS = ("PNG", "JPEG", "BMP", "TIFF")

# DICOM fields that identify a patient: kept apart, never shown unless asked for.
PATIENT_FIELDS = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientAge",
    "PatientAddress", "OtherPatientIDs", "InstitutionName", "ReferringPhysicianName",
    "AccessionNumber", "StudyDate", "StudyTime",
)


@dataclass(eq=False)  # holds arrays/tensors: compare by identity, never element-wise
class DecodedImage:
    """A decoded image.

    pixels: float32 HxW in [0, 1], 0 = black (air), 1 = white (bone); for DICOM after
    the modality LUT and the VOI LUT / window, MONOCHROME1 already inverted.
    raw: for DICOM only, float32 HxW modality values (e.g. Hounsfield-like units) so that
    a viewer can re-window with :func:`apply_window`; None otherwise.
    window: the (center, width) used for DICOM, in raw units; None otherwise.
    """

    pixels: np.ndarray
    format: str
    original_mode: str
    raw: np.ndarray | None = None
    window: tuple[float, float] | None = None
    notes: list[str] = field(default_factory=list)
    dicom_info: dict = field(default_factory=dict)
    patient_info: dict = field(default_factory=dict)

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])


def _sniff(data: bytes) -> str | None:
    """Name what a non-image file looks like, for a helpful error."""
    head = data[:16]
    if head.startswith(b"%PDF"):
        return "a PDF document"
    if head.startswith(b"PK\x03\x04"):
        return "a ZIP archive (or an Office document)"
    if head.startswith(b"\x1f\x8b"):
        return "a gzip archive"
    if head.lstrip().startswith((b"<html", b"<!DOCTYPE", b"<?xml", b"<svg")):
        return "an HTML/XML/SVG text file"
    try:
        data[:512].decode("utf-8")
        return "a text file"
    except UnicodeDecodeError:
        return None


def _other_image_format(data: bytes) -> str | None:
    """The name of an image format that is not read here (GIF, WebP...), from its leading bytes; None otherwise."""
    head = data[:16]
    for name, test in (("GIF", head.startswith(b"GIF8")),
                       ("WebP", head[:4] == b"RIFF" and head[8:12] == b"WEBP"),
                       ("JPEG 2000", head.startswith((b"\x00\x00\x00\x0cjP  ", b"\xff\x4f\xff\x51"))),
                       ("PostScript (EPS)", head.startswith((b"%!PS", b"\xc5\xd0\xd3\xc6"))),
                       ("HEIC or AVIF", head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"mif1", b"avif")),
                       ("ICO", head.startswith(b"\x00\x00\x01\x00")),
                       ("Photoshop", head.startswith(b"8BPS"))):
        if test:
            return name
    return None


#: Leading bytes of the raster formats PIL reads, so that a PNG named ``x.dcm`` is still read as a PNG.
_RASTER_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"BM", b"II*\x00", b"MM\x00*", b"GIF8")


DICOM_EXTENSIONS = (".dcm", ".dicom")
DICOM_PREAMBLE = 132  # bytes that decide: a 128-byte preamble, then "DICM"


def is_dicom(data: bytes, name: str) -> bool:
    """DICOM by its magic (``data`` may be the file's first DICOM_PREAMBLE bytes); a ``.dcm`` name counts only for
    preamble-less files that are no known raster, and a file without such a name needs the magic (IM000001)."""
    if data[128:DICOM_PREAMBLE] == b"DICM":
        return True
    return name.lower().endswith(DICOM_EXTENSIONS) and not data.startswith(_RASTER_MAGIC)


def _first_line(exc: BaseException, limit: int = 200) -> str:
    """One short line of an exception's text (some libraries raise multi-line essays)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = " ".join(lines)
    text = text if text else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _robust_unit(values: np.ndarray, low_pct: float = 0.5, high_pct: float = 99.5) -> np.ndarray:
    """Scale a float array to [0, 1] between two percentiles (clipping outside)."""
    values = values.astype(np.float32, copy=False)
    lo, hi = np.percentile(values, [low_pct, high_pct])
    if hi <= lo:
        lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return np.zeros_like(values, dtype=np.float32)
    return np.clip((values - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)


def apply_window(raw: np.ndarray, center: float, width: float, invert: bool = False) -> np.ndarray:
    """Window raw DICOM values: float32 HxW in [0, 1] (linear window, DICOM PS3.3 C.11.2.1.2)."""
    width = max(float(width), 1e-6)
    low = center - width / 2.0
    out = np.clip((raw.astype(np.float32) - low) / width, 0.0, 1.0)
    return (1.0 - out if invert else out).astype(np.float32)


def _check_size(width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise InvalidImageError(
            f"image is {width}x{height} px ({width * height / 1e6:.0f} megapixels), over the limit of "
            f"{MAX_PIXELS / 1e6:.0f} megapixels (a possible decompression bomb); downscale it first"
        )
    if min(width, height) < MIN_SIDE:
        raise InvalidImageError(
            f"image is only {width}x{height} px; a chest X-ray needs at least {MIN_SIDE} px on each side"
        )


def decode_cost_bytes(width: int, height: int, stored_bytes_per_pixel: int, frames: int = 1) -> int:
    """Bytes a decode of a ``width`` x ``height`` image allocates: every stored frame, then float copies of one."""
    pixels = int(width) * int(height)
    return pixels * int(stored_bytes_per_pixel) * max(int(frames), 1) + pixels * FLOAT_BYTES_PER_PIXEL


def _check_memory(width: int, height: int, stored_bytes_per_pixel: int, frames: int = 1) -> None:
    cost = decode_cost_bytes(width, height, stored_bytes_per_pixel, frames)
    if cost > MAX_DECODE_BYTES:
        raise InvalidImageError(
            f"image is {width}x{height} px{f' x {frames} frames' if frames > 1 else ''}; decoding it would take "
            f"about {cost / 2**20:.0f} MB of memory, over the limit of {MAX_DECODE_BYTES / 2**20:.0f} MB. "
            "Downscale it (a chest X-ray needs no more than about 4000 px a side) and export it again"
        )


#: Largest data set a deflate-compressed DICOM may expand to, in bytes (a 16-bit 5000x5000 film is 50 MB).
MAX_INFLATED_BYTES = 64 * 2**20
#: Most reads pydicom may make of one DICOM data set. It reads each data element's tag apart, at any depth of
#: nesting, and builds an object for each: a film's header holds a few hundred elements (a 64x64 test film's took
#: 56 reads), but a 45 MB file of 2.5 million tiny sequence items took 3 GB and over a minute to parse. 150,000
#: reads admit 75,000 top-level elements of two reads each, or 30,000 one-element sequence items of five.
MAX_DICOM_READS = 150_000


class _TooManyElements(InvalidImageError):
    pass


class _ElementBudget:
    """A binary stream (a file or BytesIO) that pydicom may read at most :data:`MAX_DICOM_READS` times, which
    bounds the number of data elements, and so the memory, a header can make it build."""

    def __init__(self, fp):
        self._fp, self.reads = fp, 0

    def read(self, size: int | None = -1) -> bytes:
        self.reads += 1
        if self.reads > MAX_DICOM_READS:
            raise _TooManyElements(
                "the DICOM header holds tens of thousands of data elements or more (a film's header holds a few "
                "hundred): refused before it could exhaust memory. Export the film again without private or nested "
                "data")
        return self._fp.read(size)

    def __getattr__(self, name):  # seek, tell, name...
        return getattr(self._fp, name)


def _cause_of(exc: BaseException | None, kind: type) -> BaseException | None:
    """The exception of ``kind`` behind ``exc`` (``exc`` itself, or one it was raised from or while handling), if any:
    pydicom re-raises errors met inside a sequence item as an OSError of its own."""
    while exc is not None and not isinstance(exc, kind):
        exc = exc.__cause__ or exc.__context__
    return exc


def _inflate(fp, keep: bool) -> io.BytesIO | None:
    """The rest of the binary stream ``fp`` inflated (raw deflate) in 1 MB steps, refused as soon as it passes
    :data:`MAX_INFLATED_BYTES` (a 116 KB file of zeros could otherwise become hundreds of MB): kept in a BytesIO
    at position 0 with ``keep``, otherwise only counted, each step dropped (None)."""
    import zlib

    inflater, inflated, size = zlib.decompressobj(-zlib.MAX_WBITS), io.BytesIO() if keep else None, 0
    try:
        pending = fp.read(2**20)
        while pending and size <= MAX_INFLATED_BYTES:
            step = inflater.decompress(pending, 2**20)
            size += len(step)
            if keep:
                inflated.write(step)
            pending = inflater.unconsumed_tail or fp.read(2**20)
    except zlib.error as exc:
        raise InvalidImageError(f"deflate-compressed DICOM is corrupt ({exc}); export it again") from exc
    if size > MAX_INFLATED_BYTES:
        raise InvalidImageError(
            f"deflate-compressed DICOM expands to more than {MAX_INFLATED_BYTES / 2**20:.0f} MB ({fp.tell() / 1024:.0f}"
            " KB on disk or more): refused before decoding. Export it uncompressed or downscaled"
        )
    if keep:
        inflated.seek(0)
    return inflated


def _read_deflated(fp, stop_before_pixels: bool, specific_tags):
    """A Deflated Explicit VR Little Endian DICOM read from ``fp`` (at its start), its data set inflated
    (:func:`_inflate`) once to check its size and once to parse it within the element budget; None for any other
    DICOM.

    pydicom would inflate such a file whole, unbounded, onto a stream of its own that the budget cannot watch;
    this builds the same FileDataset as its ``read_partial`` from the bounded inflation instead."""
    from pydicom.dataset import FileDataset
    from pydicom.filereader import _at_pixel_data, _read_file_meta_info, read_dataset, read_preamble
    from pydicom.tag import Tag
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    try:
        preamble = read_preamble(fp, force=True)
        meta = _read_file_meta_info(fp)
    except Exception:  # a broken header: the full read says what is wrong
        return None
    if meta.get("TransferSyntaxUID") != DeflatedExplicitVRLittleEndian:
        return None
    start = fp.tell()
    _inflate(fp, keep=False)  # a bomb is refused here, having cost 1 MB at a time
    fp.seek(start)
    inflated = _inflate(fp, keep=True)
    data_set = read_dataset(_ElementBudget(inflated), is_implicit_VR=False, is_little_endian=True,
                            stop_when=_at_pixel_data if stop_before_pixels else None,
                            specific_tags=[Tag(t) for t in specific_tags] if specific_tags else None)
    ds = FileDataset(inflated, data_set, preamble, meta, is_implicit_VR=False, is_little_endian=True)
    ds.set_original_encoding(False, True, data_set._character_set)
    return ds


@contextmanager
def _dicom_failures():
    """Turn what pydicom and the pixel decoders raise for a broken, hostile or oversized DICOM into an
    InvalidImageError that says which it is."""
    try:
        yield
    except InvalidImageError:
        raise
    except MemoryError as exc:
        raise InvalidImageError("DICOM pixel data is too large to decode on this machine; downscale it first") from exc
    except Exception as exc:  # pydicom raises many types for broken files and headers
        too_many = _cause_of(exc, _TooManyElements)
        if too_many is not None:
            raise too_many from None
        if _cause_of(exc, RecursionError) is not None:
            raise InvalidImageError("the DICOM header nests sequences inside sequences thousands deep (a film's header "
                                    "nests a few): refused. Export the film again") from exc
        raise InvalidImageError(
            f"DICOM file is truncated or its header is malformed ({_first_line(exc)}); export it again"
        ) from exc


def read_dicom(fp, stop_before_pixels: bool = False, specific_tags=None):
    """pydicom's ``dcmread`` of the binary stream ``fp`` (a file or BytesIO at its start; the options as dcmread's,
    ``force`` always on) within this module's caps: a deflated file's inflated size, the element budget and the
    values one element or sequence may hold (:func:`covid_core.dicom_values.check_values`).
    Raises InvalidImageError, with the reason, for a file refused or not readable as DICOM."""
    import pydicom

    with _dicom_failures():
        ds = _read_deflated(fp, stop_before_pixels, specific_tags)
        if ds is None:
            fp.seek(0)
            ds = pydicom.dcmread(_ElementBudget(fp), force=True, stop_before_pixels=stop_before_pixels,
                                 specific_tags=specific_tags)
        check_values(ds)
        return ds


def _decode_dicom(data: bytes) -> DecodedImage:
    with _dicom_failures():
        return _dicom_image(read_dicom(io.BytesIO(data)))


#: JPEG 2000 transfer syntaxes (pydicom.uid's JPEG2000, JPEG2000Lossless and the three HTJ2K ones), as strings so
#: that this module imports without pydicom.
J2K_SYNTAXES = ("1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.203",
                "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202")
#: RLE Lossless. pydicom's own decoder runs in Python and expands each run whatever the film's size (a 45 MB file of
#: a 64x64 film took 3 GB and 6.8 s; 45 MB of no-op bytes, 4.1 s), so it is decoded by pylibjpeg-rle alone, which
#: writes into a buffer of the film's size.
RLE_LOSSLESS = "1.2.840.10008.1.2.5"
#: JPEG and JPEG-LS transfer syntaxes (JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLossless, JPEGLosslessSV1,
#: JPEGLSLossless, JPEGLSNearLossless), whose codestreams are made of scans.
JPEG_SYNTAXES = ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57",
                 "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81")


_OBJECT_REPR = re.compile(r"<[^<>]* object at 0x[0-9a-fA-F]+>")  # "<_io.BytesIO object at 0x7f...>" says nothing


def _codestream_parameters(syntax, frame: bytes) -> dict | None:
    """The compressed frame's own rows, columns and components as its codestream header states them (read by the
    decoder plugins without decoding), or None for a compression whose decoder sizes its output from the DICOM
    header (RLE) or one not known here (its decode then fails on its own)."""
    if syntax in J2K_SYNTAXES:
        import openjpeg

        return openjpeg.get_parameters(frame)
    if syntax in JPEG_SYNTAXES:
        import libjpeg

        return libjpeg.get_parameters(frame)
    return None


def _check_codestream(ds, syntax, rows: int, cols: int, samples: int) -> None:
    """Refuse a compressed film whose codestream states another size than its header, a JPEG one of too many scans or
    a JPEG 2000 one of too many code-blocks and precincts, before it is decoded.

    The memory caps read the DICOM header, but a JPEG 2000 or JPEG decoder allocates what the codestream inside
    says: a 1 KB file whose header says 64x64 can hold a 12000x12000 codestream and take a gigabyte to decode.
    """
    from pydicom.encaps import get_frame

    if syntax is None or not syntax.is_encapsulated or "PixelData" not in ds:
        return
    try:
        frame = get_frame(ds.PixelData, 0, number_of_frames=1)
        if syntax in JPEG_SYNTAXES:  # before the decoder reads the header, which walks every scan (2.5 s for 3,000)
            check_jpeg_scans(frame, "DICOM's compressed film")
        if syntax in J2K_SYNTAXES:
            check_blocks(frame)
        found = _codestream_parameters(syntax, frame)
    except InvalidImageError:
        raise
    except ImportError as exc:
        raise InvalidImageError(f"DICOM pixel data is compressed as {syntax.name}, and no decoder for it is "
                                "installed here. Re-export it uncompressed") from exc
    except Exception as exc:  # the plugins raise RuntimeError or ValueError for a header they cannot parse
        reason = _OBJECT_REPR.sub("the data", _first_line(exc))
        raise InvalidImageError(f"DICOM compressed pixel data is damaged ({reason}); export it again") from exc
    if found is None:
        return
    width, height = int(found.get("columns", 0)), int(found.get("rows", 0))
    components = int(found.get("nr_components", found.get("samples_per_pixel", samples)))  # libjpeg's, openjpeg's
    if (width, height) != (cols, rows):
        mismatch = f"is {width}x{height} px inside, but its header says {cols}x{rows} px"
    elif components != samples:
        mismatch = f"has {components} colour components inside, but its header says {samples}"
    else:
        return
    raise InvalidImageError(f"DICOM compressed pixel data {mismatch}: refused before decoding (such a file can take "
                            "far more memory than its header admits); export it again")


def _is_decoder_panic(exc: BaseException) -> bool:
    """Whether ``exc`` is a Rust decoder's panic. pylibjpeg-rle is written in Rust: a damaged RLE segment whose runs
    overrun the film ("index out of bounds: the len is 8192 but the index is 8192") panics, and PyO3 raises the panic
    as ``pyo3_runtime.PanicException``, a BaseException that ``except Exception`` lets through, which would end a
    whole batch. Each PyO3 module makes its own class of that name, so it is known by name."""
    kind = type(exc)
    return kind.__name__ == "PanicException" and kind.__module__ == "pyo3_runtime"


def _pixel_failure_advice(syntax) -> str:
    """What to do about pixel data that did not decode: it depends on whether it is compressed and whether a
    decoder for its compression is installed (pydicom's plugins: pylibjpeg, pylibjpeg-libjpeg, -openjpeg, -rle)."""
    from pydicom.pixels import get_decoder

    if syntax is None or not getattr(syntax, "is_compressed", False):
        return "The pixel data is shorter than or unlike what the header says: the file is damaged; export it again"
    try:
        available = get_decoder(syntax).is_available
    except (NotImplementedError, ValueError):  # e.g. MPEG video syntaxes: pydicom has no decoder at all
        available = False
    if available:
        return "The compressed pixel data is damaged or unlike what the header says; export it again"
    return "No decoder for that compression is installed here. Re-export it uncompressed (or as JPEG 2000 or JPEG)"


def _dicom_image(ds) -> DecodedImage:
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise InvalidImageError(
            "DICOM file has no pixel data (it may be a report or structured document, not an image)"
        )
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    _check_size(cols, rows)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise InvalidImageError(
            f"multi-frame DICOM ({frames} frames); export the single frontal frame you want as its own file"
        )
    bits = int(ds.get("BitsAllocated", 16) or 16)
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    stored = max(1, -(-bits // 8)) * max(samples, 1)
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if syntax in J2K_SYNTAXES:  # openjpeg decodes into 32-bit samples before the stored copy is made
        stored += 4 * max(samples, 1)
    _check_memory(cols, rows, stored)
    _check_codestream(ds, syntax, rows, cols, samples)
    if syntax == RLE_LOSSLESS:  # never pydicom's own decoder, which expands runs in Python without a bound
        ds.pixel_array_options(decoding_plugin="pylibjpeg")
    try:
        arr = ds.pixel_array
    except BaseException as exc:  # a Rust decoder's panic is a BaseException (see _is_decoder_panic)
        panic = _is_decoder_panic(exc)
        if not isinstance(exc, Exception) and not panic:
            raise
        reason = "its decoder stopped on damaged data" if panic else _OBJECT_REPR.sub("the data", _first_line(exc))
        raise InvalidImageError(
            f"DICOM pixel data could not be decoded (transfer syntax: {getattr(syntax, 'name', str(syntax))}): "
            f"{reason}. {_pixel_failure_advice(syntax)}"
        ) from exc
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    notes = []
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        raise InvalidImageError(
            f"DICOM pixel data has an unexpected layout {arr.shape}; export a single grayscale frame"
        )
    if arr.ndim == 3:  # colour DICOM (e.g. a secondary capture)
        if photometric.startswith("YBR"):
            from pydicom.pixels import convert_color_space

            arr = convert_color_space(arr, photometric, "RGB")
        arr = arr[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        notes.append("colour DICOM converted to grayscale")
    raw = apply_modality_lut(arr, ds).astype(np.float32)
    if not np.isfinite(raw).all():
        raise InvalidImageError("DICOM pixel data contains NaN or infinite values")
    window = None
    center, width = ds.get("WindowCenter"), ds.get("WindowWidth")
    if center is not None and width is not None:
        c = float(center[0] if isinstance(center, pydicom.multival.MultiValue) else center)
        w = float(width[0] if isinstance(width, pydicom.multival.MultiValue) else width)
        window = (c, w)
        shown = apply_voi_lut(raw, ds).astype(np.float32)
        pixels = _robust_unit(shown, 0.0, 100.0)
    elif "VOILUTSequence" in ds:
        pixels = _robust_unit(apply_voi_lut(raw, ds).astype(np.float32), 0.0, 100.0)
    else:
        lo, hi = np.percentile(raw, [0.5, 99.5])
        window = (float((lo + hi) / 2), float(max(hi - lo, 1.0)))
        pixels = _robust_unit(raw)
        notes.append("no window in the DICOM header; windowed at the 0.5-99.5 percentiles")
    if photometric == "MONOCHROME1":
        pixels = 1.0 - pixels
        notes.append("MONOCHROME1 inverted so that bone is white")
    dicom_info = {
        k: str(ds.get(k)) for k in ("Modality", "ViewPosition", "BodyPartExamined", "Manufacturer",
                                     "PhotometricInterpretation", "BitsStored", "PresentationIntentType",
                                     "SOPClassUID") if ds.get(k) is not None
    }
    patient_info = {k: str(ds.get(k)) for k in PATIENT_FIELDS if ds.get(k) not in (None, "")}
    return DecodedImage(
        pixels=pixels.astype(np.float32), format="DICOM", original_mode=photometric, raw=raw,
        window=window, notes=notes, dicom_info=dicom_info, patient_info=patient_info,
    )


def _pil_to_gray(img: Image.Image) -> tuple[np.ndarray, list[str]]:
    """Convert any PIL mode to float32 HxW in [0, 1]."""
    notes = []
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img).astype(np.float32)
        if not np.isfinite(arr).all():
            raise InvalidImageError(
                "image contains NaN or infinite pixel values; export it again as an integer image"
            )
        notes.append(f"{mode} image windowed at the 0.5-99.5 percentiles")
        return _robust_unit(arr), notes
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        notes.append("transparency dropped")
        img = img.convert("RGBA").convert("RGB")
    if mode == "CMYK":
        notes.append("CMYK converted to grayscale")
    if mode not in ("L", "1"):
        if mode not in ("RGBA", "LA", "PA", "P", "CMYK", "RGB", "YCbCr"):
            notes.append(f"{mode} converted to grayscale")
        img = img.convert("RGB").convert("L")
    elif mode == "1":
        img = img.convert("L")
    return np.asarray(img, dtype=np.float32) / 255.0, notes


def _decode_with_opencv(data: bytes) -> np.ndarray | None:
    """Fallback for files PIL cannot read (e.g. 16-bit RGB TIFF); float32 HxW or None."""
    import cv2

    buf = np.frombuffer(data, np.uint8)
    level = cv2.utils.logging.getLogLevel()
    # OpenCV prints its own warnings for broken files; our error message replaces them.
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        arr = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    except cv2.error:
        return None
    finally:
        cv2.utils.logging.setLogLevel(level)
    if arr is None or arr.ndim not in (2, 3) or arr.size == 0:
        return None
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr[..., :3], cv2.COLOR_BGR2GRAY)
    return arr.astype(np.float32)


def _frames_up_to(img: Image.Image, cap: int) -> int:
    """The image's frames or pages, counted up to ``cap`` + 1; leaves it at its first frame."""
    count = 1
    try:
        while count <= cap:
            img.seek(count)
            count += 1
    except EOFError:
        pass
    img.seek(0)
    return count


#: Bytes per pixel PIL holds for each mode (4 for the rest: RGBA, CMYK, I, F...).
_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "LA": 2, "PA": 2, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2,
                    "RGB": 3, "YCbCr": 3, "LAB": 3, "HSV": 3}


#: The turn that shows a film upright for each EXIF orientation (tag 0x0112) but 1, as ImageOps.exif_transpose maps
#: them. That function also rewrites the film's EXIF without its orientation, which unpacks every number of every
#: tag: a 16 MB PNG whose EXIF held 2 million fractions took 410 MB and 6 s. Only the pixels are kept here.
_EXIF_UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
                 4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270,
                 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}

#: BMP compressions RLE8 and RLE4 (BI_RLE8, BI_RLE4).
_BMP_RUN_LENGTH = (1, 2)


def _decode_run_length_bmp(data: bytes, size: tuple[int, int], mode: str) -> DecodedImage:
    """A run-length compressed BMP through OpenCV's decoder. Pillow decodes run-length data in Python, two bytes at a
    time and whether or not they add pixels, so its time grows with the file, not the image: a 45 MB file of a
    64x64 image took 8.9 s (OpenCV: under a millisecond)."""
    pixels = _decode_with_opencv(data)
    if pixels is None or pixels.shape != (size[1], size[0]):
        raise InvalidImageError("BMP file is truncated or corrupt (its run-length data could not be read); export or "
                                "download it again")
    return DecodedImage(pixels=pixels / 255.0, format="BMP", original_mode=mode,  # palette indices of 8-bit colours
                        notes=["run-length BMP decoded with OpenCV"])


def _decode_raster(data: bytes) -> DecodedImage:
    check_structure(data)
    try:
        img = Image.open(io.BytesIO(data), formats=RASTER_FORMATS)
    except Image.DecompressionBombError as exc:
        claimed = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(claimed.group(1)) / 1e6:.0f} megapixels" if claimed else "too many pixels"
        raise InvalidImageError(
            f"image claims {size}, over the limit of {MAX_PIXELS / 1e6:.0f} megapixels "
            "(a possible decompression bomb); downscale it first"
        ) from exc
    except UnidentifiedImageError:
        other = _other_image_format(data)
        if other:
            raise InvalidImageError(f"{other} files are not read here; save the film as PNG (lossless) or upload a "
                                    f"{SUPPORTED_FORMATS} file") from None
        kind = _sniff(data)
        what = f"it looks like {kind}" if kind else "its contents are not a known image format"
        raise InvalidImageError(f"not a recognised image ({what}); upload a {SUPPORTED_FORMATS} file")
    except Exception as exc:
        raise InvalidImageError(
            f"image file is truncated or corrupt: its header could not be read ({_first_line(exc)}); "
            "export or download it again"
        ) from exc
    _check_size(*img.size)
    fmt = img.format or "image"
    mode = img.mode
    try:  # counting frames walks a TIFF's page list, which a broken file can make fail
        frames = _frames_up_to(img, MAX_FRAMES_COUNTED)
    except Exception as exc:
        raise InvalidImageError(f"{fmt} file is truncated or corrupt ({_first_line(exc)}); export or download it "
                                "again") from exc
    if frames > 1:
        raise multi_frame_error(fmt, frames)
    _check_memory(*img.size, _BYTES_PER_PIXEL.get(mode, 4))
    if fmt == "BMP" and img.info.get("compression") in _BMP_RUN_LENGTH:
        return _decode_run_length_bmp(data, img.size, mode)
    try:
        # No warnings.catch_warnings here: it is not thread-safe (the app decodes in several sessions at
        # once) and _check_size above already refuses images before PIL's own bomb warning could fire.
        img.load()
        orientation = img.getexif().get(0x0112, 1)
        if orientation in _EXIF_UPRIGHT:
            img = img.transpose(_EXIF_UPRIGHT[orientation])
        pixels, notes = _pil_to_gray(img)
        if orientation in _EXIF_UPRIGHT:
            notes.append(f"EXIF orientation {orientation} applied")
    except InvalidImageError:
        raise
    except MemoryError as exc:
        raise InvalidImageError(f"{fmt} image is too large to decode on this machine; downscale it first") from exc
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, struct.error... for broken files
        fallback = _decode_with_opencv(data)
        if fallback is None or fallback.shape[:2] != (img.size[1], img.size[0]):
            raise InvalidImageError(
                f"{fmt} file is truncated or corrupt ({_first_line(exc)}); export or download it again"
            ) from exc
        if not np.isfinite(fallback).all():
            raise InvalidImageError(
                "image contains NaN or infinite pixel values; export it again as an integer image"
            ) from exc
        pixels, notes = _robust_unit(fallback), ["decoded with OpenCV"]
    if pixels.ndim != 2:
        raise InvalidImageError(f"unexpected {fmt} image layout {pixels.shape}; save it as a grayscale PNG")
    return DecodedImage(pixels=np.ascontiguousarray(pixels, np.float32), format=fmt, original_mode=mode, notes=notes)


def decode_image(source: bytes | str | Path, name: str | None = None) -> DecodedImage:
    """Decode a file (bytes or path) into a :class:`DecodedImage` (float32 HxW in [0, 1]).

    Raises :class:`InvalidImageError` with a specific message for anything unusable:
    empty, truncated, not an image, too large, too small, no pixel data, NaN values.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        name = name or path.name
        try:
            if not path.is_file():
                raise InvalidImageError(f"cannot read {path}: it is not a file (a folder, or missing)")
            size = path.stat().st_size
            if size > MAX_FILE_BYTES:
                raise InvalidImageError(
                    f"file is {size / 2**20:.0f} MB, over the limit of {MAX_FILE_BYTES / 2**20:.0f} MB"
                )
            data = path.read_bytes()
        except OSError as exc:
            raise InvalidImageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    else:
        data = bytes(source)
    name = name or ""
    if not data:
        raise InvalidImageError("file is empty (0 bytes)")
    if len(data) > MAX_FILE_BYTES:
        raise InvalidImageError(
            f"file is {len(data) / 2**20:.0f} MB, over the limit of {MAX_FILE_BYTES / 2**20:.0f} MB"
        )
    image = _decode_dicom(data) if is_dicom(data, name) else _decode_raster(data)
    # The decoders above already check; this is the contract every caller relies on.
    if image.pixels.ndim != 2 or min(image.pixels.shape) < MIN_SIDE or not np.isfinite(image.pixels).all():
        raise InvalidImageError(
            f"decoded {image.format} image is unusable (shape {image.pixels.shape}, or non-finite values); "
            f"export it again as a grayscale {SUPPORTED_FORMATS} file"
        )
    return image
