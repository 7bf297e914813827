"""Read a remote GeoTIFF's georeferencing from a few small byte ranges instead of the whole file.

A GeoTIFF keeps its size, CRS and geotransform in the first image directory (IFD) and in the tag
values the IFD points to. GDAL-written tiles usually put the IFD right after the 8-byte header, so
one 16 KiB range is enough; others put it at the end, which costs one or two more ranges. The bytes
are laid out at their offsets in a sparse temporary file and rasterio (GDAL) interprets them, so the
CRS and transform come from GDAL's own GeoTIFF reader, not from a parser of ours.
"""

from __future__ import annotations

import os
import struct
import tempfile
from collections.abc import Callable
from dataclasses import dataclass

FIRST_READ = 16 * 1024
MAX_TAG_SPAN = 1024 * 1024  # tag arrays larger than this (huge strip tables) are not needed for georeferencing

# TIFF field type -> size in bytes of one value.
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8}


class NotAGeoTiff(ValueError):  # noqa: N818 - reads as a statement about the file
    pass


@dataclass(frozen=True)
class RasterHeader:
    width: int
    height: int
    count: int
    dtype: str
    crs_wkt: str
    transform: tuple[float, float, float, float, float, float]  # GDAL order: x0, dx, rx, y0, ry, dy


ReadRange = Callable[[int, int], bytes]  # (start, end exclusive) -> bytes


def read_header(read_range: ReadRange, size: int) -> RasterHeader:
    """The georeferencing of a GeoTIFF of ``size`` bytes, reading only the ranges it needs."""
    chunks: dict[int, bytes] = {0: read_range(0, min(FIRST_READ, size))}
    layout = _Layout.parse(chunks[0])
    for _ in range(3):  # IFD, then the tag values it points to; rarely more than one extra round
        missing = _missing(layout.spans(chunks), chunks)
        if not missing:
            break
        start, end = min(s for s, _ in missing), min(size, max(e for _, e in missing))
        # one request covering every gap is cheaper than one request per gap
        chunks[start] = read_range(start, max(end, min(size, start + FIRST_READ)))
    return _interpret(chunks)


@dataclass(frozen=True)
class _Layout:
    order: str
    big: bool
    ifd_offset: int

    @classmethod
    def parse(cls, head: bytes) -> _Layout:
        if head[:2] not in (b"II", b"MM"):
            raise NotAGeoTiff("the file does not start with a TIFF header")
        order = "<" if head[:2] == b"II" else ">"
        magic = struct.unpack(order + "H", head[2:4])[0]
        if magic == 42:
            return cls(order, False, struct.unpack(order + "I", head[4:8])[0])
        if magic == 43:
            return cls(order, True, struct.unpack(order + "Q", head[8:16])[0])
        raise NotAGeoTiff(f"unknown TIFF version {magic}")

    def spans(self, chunks: dict[int, bytes]) -> list[tuple[int, int]]:
        """Byte ranges needed so far: the IFD's entry count, its entries, and the values they point to."""
        count_size, entry_size, pointer = (8, 20, 8) if self.big else (2, 12, 4)
        needed = [(self.ifd_offset, self.ifd_offset + count_size)]
        raw = _read(chunks, self.ifd_offset, count_size)
        if raw is None:
            return needed
        count = struct.unpack(self.order + ("Q" if self.big else "H"), raw)[0]
        entries_end = self.ifd_offset + count_size + count * entry_size + pointer
        needed.append((self.ifd_offset, entries_end))
        entries = _read(chunks, self.ifd_offset + count_size, count * entry_size)
        if entries is None:
            return needed
        for index in range(count):
            entry = entries[index * entry_size:(index + 1) * entry_size]
            if self.big:
                _tag, kind, n = struct.unpack(self.order + "HHQ", entry[:12])
                value_size, offset = _TYPE_SIZES.get(kind, 1) * n, struct.unpack(self.order + "Q", entry[12:20])[0]
            else:
                _tag, kind, n = struct.unpack(self.order + "HHI", entry[:8])
                value_size, offset = _TYPE_SIZES.get(kind, 1) * n, struct.unpack(self.order + "I", entry[8:12])[0]
            if pointer < value_size <= MAX_TAG_SPAN:  # small values sit inside the entry itself
                needed.append((offset, offset + value_size))
        return needed


def _read(chunks: dict[int, bytes], start: int, length: int) -> bytes | None:
    for offset, data in chunks.items():
        if offset <= start and start + length <= offset + len(data):
            return data[start - offset:start - offset + length]
    return None


def _missing(spans, chunks) -> list[tuple[int, int]]:
    return [(start, end) for start, end in spans if _read(chunks, start, end - start) is None]


def read_file_header(path) -> RasterHeader:
    """The same for a raster on disk (a downloaded tile): GDAL reads only what it needs."""
    import rasterio  # imported on use: the plugin starts without it

    try:
        with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"), rasterio.open(path) as tif:
            if tif.crs is None:
                raise NotAGeoTiff("the GeoTIFF has no coordinate reference system")
            return RasterHeader(tif.width, tif.height, tif.count, tif.dtypes[0], tif.crs.to_wkt(),
                                tuple(tif.transform.to_gdal()))
    except rasterio.errors.RasterioIOError as error:
        raise NotAGeoTiff(f"GDAL could not read the header: {error}") from error


def _interpret(chunks: dict[int, bytes]) -> RasterHeader:
    handle, path = tempfile.mkstemp(suffix=".tif", prefix="spacenet-header-")
    try:
        with os.fdopen(handle, "wb") as sparse:  # holes read as zeros and cost no disk
            for offset, data in sorted(chunks.items()):
                sparse.seek(offset)
                sparse.write(data)
        return read_file_header(path)
    finally:
        os.unlink(path)
