"""Read a SpaceNet challenge CSV (truth or submission) into a :class:`PolygonSet` for scoring.

The format: ``ImageId,BuildingId,PolygonWKT_Pix[,Confidence][,PolygonWKT_Geo]``, WKT in pixel coordinates and often
3-D (z is dropped). An image without buildings has a single ``POLYGON EMPTY`` row: it keeps its ImageId as a group,
so the image is still scored, but its geometry is empty and the scorer skips (and counts) it.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import shapely

from .f1 import PolygonSet

IMAGE_ID, BUILDING_ID, WKT_PIX, CONFIDENCE = "ImageId", "BuildingId", "PolygonWKT_Pix", "Confidence"
REQUIRED = (IMAGE_ID, WKT_PIX)


def read_challenge_csv(path) -> PolygonSet:
    """Geometries (2-D), ImageId groups, BuildingId ids (as text) and, when the column exists, Confidence as the
    order (NaN where a row has none)."""
    path = Path(path)
    header, rows, line_numbers = _read_rows(path)
    image_ids = np.array([(row[IMAGE_ID] or "").strip() for row in rows], dtype=object)  # " img1" is img1
    ids = np.array([row.get(BUILDING_ID, "") for row in rows], dtype=object) if BUILDING_ID in header else None
    geometries = _parse_wkt([row[WKT_PIX] for row in rows], line_numbers, path)
    order = _parse_confidence(rows, line_numbers, path) if CONFIDENCE in header else None
    return PolygonSet(geometries=geometries, groups=image_ids, order=order, ids=ids)


def _read_rows(path: Path):
    # utf-8-sig: a spreadsheet-saved CSV starts with a byte-order mark that would otherwise stick to "ImageId".
    with path.open(newline="", encoding="utf-8-sig") as stream:
        first = stream.readline()
        stream.seek(0)
        # a spreadsheet in a comma-decimal locale saves with semicolons; tab-separated files exist too
        delimiter = max((",", ";", "\t"), key=first.count)
        reader = csv.DictReader(stream, delimiter=delimiter)
        header = [name.strip() for name in (reader.fieldnames or [])]
        reader.fieldnames = header
        _require_columns(header, path)
        rows, line_numbers = [], []
        for row in reader:
            rows.append(row)
            line_numbers.append(reader.line_num)
    return header, rows, line_numbers


def _require_columns(header, path: Path) -> None:
    for column in REQUIRED:
        if column not in header:
            found = ", ".join(header) if header else "none (empty file?)"
            needed = ", ".join(REQUIRED)
            raise ValueError(f"{path}: no {column!r} column; a challenge CSV needs {needed} (found {found})")


def _parse_wkt(texts, line_numbers, path: Path) -> np.ndarray:
    texts = np.array([text or "" for text in texts], dtype=object)
    try:
        geometries = shapely.from_wkt(texts, on_invalid="raise")
    except shapely.errors.GEOSException:
        geometries = None
    if geometries is None or np.any(shapely.is_missing(geometries)):
        _raise_first_bad_wkt(texts, line_numbers, path)
    return shapely.force_2d(geometries)


def _raise_first_bad_wkt(texts, line_numbers, path: Path) -> None:
    # Only on failure: find the culprit one row at a time, to name its line.
    for text, line in zip(texts, line_numbers):
        try:
            geometry = shapely.from_wkt(text, on_invalid="raise")
        except shapely.errors.GEOSException as error:
            raise ValueError(f"{path}, line {line}: bad {WKT_PIX} {_clip(text)!r}: {error}") from None
        if geometry is None:
            hint = "write POLYGON EMPTY for an image with no building"
            raise ValueError(f"{path}, line {line}: empty {WKT_PIX} ({hint})")


def _parse_confidence(rows, line_numbers, path: Path) -> np.ndarray:
    values = np.empty(len(rows))
    for index, (row, line) in enumerate(zip(rows, line_numbers)):
        text = (row.get(CONFIDENCE) or "").strip()
        try:
            values[index] = float(text) if text else np.nan  # no confidence: taken last
        except ValueError:
            raise ValueError(f"{path}, line {line}: {CONFIDENCE} {_clip(text)!r} is not a number") from None
    return values


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "..."
