"""A JPEG 2000 codestream's code-blocks and precincts, counted from its marker segments before openjpeg decodes it.

openjpeg allocates a structure for every code-block and precinct of the image before it reads a single packet, and
their number is set by the coding style (COD and COC marker segments), not by the data: a 734-byte DICOM whose
5000x5000 codestream asks for 2x2 precincts took 5.9 GB in 17.5 s before a 6 GB memory limit stopped it (the bare
codestream, 11.4 GB under a 12 GB limit), and 4x4 code-blocks cost 620 MB more than the usual 64x64 at that size.
:func:`check_blocks` counts them from the main header and every tile-part header, the most that any of the coding
styles it finds would make of the whole image, and refuses a codestream over :data:`MAX_BLOCKS`. Used by
:mod:`covid_core.decode` for DICOM films compressed as JPEG 2000.
"""

from __future__ import annotations

from .errors import InvalidImageError

#: Most code-blocks and precincts a codestream may ask for, over every component and resolution (openjpeg's
#: structures cost about 400 bytes each, measured: 500,000 about 200 MB). An encoder's usual 64x64 code-blocks
#: make about 20,000 of a 60-megapixel film, 32x32 ones about 80,000.
MAX_BLOCKS = 500_000
#: Most tile-parts, marker segments (main and tile-part headers together) and distinct coding styles read; a
#: codestream with more is refused. A film's encoder writes one tile-part or a few hundred, a handful of segments in
#: its main header and few or none in each tile-part's, and one coding style (one more a component at most).
MAX_TILE_PARTS = 65_536
MAX_SEGMENTS = 100_000
MAX_STYLES = 1_000

_SOT, _SOD, _EOC, _COD, _COC, _SIZ = 0xFF90, 0xFF93, 0xFFD9, 0xFF52, 0xFF53, 0xFF51


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _too_many(what: str) -> InvalidImageError:
    return InvalidImageError(f"the JPEG 2000 film inside the DICOM has {what}: refused before they were read one by "
                             "one. Export it again")


def _style(body: bytes, coc: bool, wide_components: bool) -> tuple | None:
    """(decomposition levels, code-block width and height exponents, precinct exponents per resolution) of a COD or
    COC segment's body, or None where it is too short to say."""
    at = (2 if wide_components else 1) if coc else 0  # COC names its component first
    scod = body[at] if len(body) > at else 0
    at += 1 if coc else 5  # COD: Scod, then progression order, layers and colour transform
    if len(body) < at + 5 or body[at] > 32:  # at most 32 decomposition levels; the decoder refuses more
        return None
    levels, xcb, ycb = body[at], body[at + 1] + 2, body[at + 2] + 2
    sizes = body[at + 5:at + 6 + levels] if scod & 1 else b""
    precincts = tuple((b & 0x0F, b >> 4) for b in sizes) + ((15, 15),) * (levels + 1 - len(sizes))
    return levels, xcb, ycb, precincts


def _blocks(width: int, height: int, style: tuple) -> int:
    """Code-blocks and precincts one component of width x height makes with ``style``."""
    levels, xcb, ycb, precincts = style
    total = 0
    for r in range(levels + 1):
        scale = 2 ** (levels - r)
        res_w, res_h = _ceil_div(width, scale), _ceil_div(height, scale)
        ppx, ppy = precincts[r]
        total += _ceil_div(res_w, 2 ** ppx) * _ceil_div(res_h, 2 ** ppy)
        # a code-block never spans precincts; above the lowest resolution each sub-band has half the precinct's size
        block_w, block_h = min(xcb, max(ppx - (r > 0), 0)), min(ycb, max(ppy - (r > 0), 0))
        bands, band_w, band_h = (1, res_w, res_h) if r == 0 else (3, _ceil_div(res_w, 2), _ceil_div(res_h, 2))
        total += bands * _ceil_div(band_w, 2 ** block_w) * _ceil_div(band_h, 2 ** block_h)
    return total


def count_blocks(stream: bytes) -> int:
    """The most code-blocks and precincts that any coding style of the codestream (its main header's, or a tile-part
    header's) would make of the whole image, over all its components; 0 where the header cannot be read (the decoder
    then says what is wrong)."""
    width = height = components = 0
    styles, walked = [], 0

    def segments(pos: int, end: int):
        """(marker, body) of the marker segments from pos to the first SOT, SOD or EOC, or to end; then the position
        where they stopped."""
        nonlocal walked
        while pos + 4 <= end and stream[pos] == 0xFF:
            marker = int.from_bytes(stream[pos:pos + 2], "big")
            if marker in (_SOT, _SOD, _EOC):
                break
            walked += 1
            if walked > MAX_SEGMENTS:
                raise _too_many(f"over {MAX_SEGMENTS:,} marker segments in its headers")
            length = int.from_bytes(stream[pos + 2:pos + 4], "big")
            yield marker, stream[pos + 4:pos + 2 + length]
            pos += 2 + max(length, 2)
        yield None, pos

    pos = 2  # after SOC
    for marker, body in segments(pos, len(stream)):
        if marker is None:
            pos = body
        elif marker == _SIZ and len(body) >= 36:
            x, y, x0, y0 = (int.from_bytes(body[i:i + 4], "big") for i in (2, 6, 10, 14))
            width, height, components = max(x - x0, 0), max(y - y0, 0), int.from_bytes(body[34:36], "big")
        elif marker in (_COD, _COC):
            styles.append(_style(body, marker == _COC, components > 256))
    for tile_part in range(MAX_TILE_PARTS + 1):  # each tile-part's header, up to SOD; the next one Psot bytes on
        if pos + 12 > len(stream) or int.from_bytes(stream[pos:pos + 2], "big") != _SOT:
            break
        if tile_part == MAX_TILE_PARTS:
            raise _too_many(f"over {MAX_TILE_PARTS:,} tile-parts")
        psot = int.from_bytes(stream[pos + 6:pos + 10], "big")
        end = pos + psot if psot >= 12 else len(stream)
        styles += [_style(body, marker == _COC, components > 256)
                   for marker, body in segments(pos + 12, min(end, len(stream))) if marker in (_COD, _COC)]
        if psot < 12:  # 0: the last tile-part runs to the end
            break
        pos = end
    distinct = set(filter(None, styles))
    if len(distinct) > MAX_STYLES:
        raise _too_many(f"over {MAX_STYLES:,} coding styles")
    return max((_blocks(width, height, s) for s in distinct), default=0) * components


def check_blocks(stream: bytes) -> None:
    """Raise InvalidImageError, with the reason, for a codestream of over :data:`MAX_BLOCKS` code-blocks and
    precincts."""
    blocks = count_blocks(stream)
    if blocks > MAX_BLOCKS:
        raise InvalidImageError(
            f"the JPEG 2000 film inside the DICOM divides its image into {blocks:,} code-blocks and precincts (an "
            f"encoder makes tens of thousands at most; the limit is {MAX_BLOCKS:,}): refused before the decoder "
            "allocated them (such a file can take gigabytes). Export it again")
