"""Vector files read and written in bulk through GDAL's own Python bindings, never one feature at a time in Python.

Reading: a layer's geometries (as WKB) and the few fields asked for come through GDAL's Arrow interface in batches
(``Layer.GetArrowStreamAsNumPy``, GDAL >= 3.6), whole or through an attribute filter, with their feature ids.

Writing: a GeoPackage polygon layer. GDAL creates the file and the empty layer (CRS, fields, metadata tables, the
empty spatial index and its triggers); the rows then go in through Python's sqlite3 as GeoPackage geometry blobs
(the standard header and envelope before the WKB), a chunk per ``executemany``, in one transaction, with the
spatial index loaded in bulk (``core.sqlite_rtree``) and the extent and feature count set once, as GDAL sets them.
GDAL 3.6 has no Arrow write path, and creating features through ``osgeo.ogr`` costs more per feature in Python calls
than QGIS's sink does. The file is written under a temporary name in the destination's folder and renamed when
complete: a failed or cancelled write leaves nothing behind.

``osgeo`` is the GDAL that QGIS itself links (Debian's python3-gdal; the QGIS installers ship theirs), so there is no
second GDAL in a QGIS process and no new dependency. Anything GDAL cannot do here raises :class:`BulkUnavailable`,
whose message says why: callers fall back to reading or writing feature by feature.

No QGIS here.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely

from . import sqlite_rtree
from .progress import IsCanceled, Report, check, silent

READ_BATCH = 50_000  # features per Arrow batch: a progress step and a cancel check each
WRITE_CHUNK = 20_000  # rows per executemany
KINDS = ("string", "real", "integer64")  # the field kinds write_polygons writes
_POLYGON, _MULTIPOLYGON = 3, 6  # shapely type ids
# A GeoPackage geometry blob's header: magic, version 0, flags (little-endian header, an xy envelope), the
# geometry's srs_id, then its envelope as minx, maxx, miny, maxy (GeoPackage 1.2, clause 2.1.3).
_HEADER = np.dtype([("magic", "S2"), ("version", "u1"), ("flags", "u1"), ("srs_id", "<i4"), ("envelope", "<f8", (4,))])
_FLAGS_LITTLE_ENDIAN_XY_ENVELOPE = 0b0000_0011


class BulkUnavailable(RuntimeError):  # noqa: N818 - it says what the caller meets: do it feature by feature
    """GDAL cannot read or write this in bulk here; the message says why."""


@dataclass
class Columns:
    """What :func:`read_columns` read, one entry per feature in the layer's order."""

    fids: np.ndarray  # int64 feature ids, as GDAL (and QGIS's OGR provider) number them
    wkbs: np.ndarray  # object array: the WKB of each geometry as bytes, None for a null geometry
    values: dict  # field name -> its values: a numpy array, masked where the value is null


@contextlib.contextmanager
def _gdal_quiet():
    """GDAL's errors kept off the console while it is tried (the caller says why when it falls back)."""
    from osgeo import gdal

    gdal.PushErrorHandler("CPLQuietErrorHandler")
    gdal.ErrorReset()
    try:
        yield gdal
    except RuntimeError as error:  # GDAL's own exceptions, where something turned them on for the whole process
        if isinstance(error, BulkUnavailable):
            raise
        raise BulkUnavailable(str(error)) from error
    finally:
        gdal.PopErrorHandler()


def _last_error(gdal, what: str) -> str:
    message = gdal.GetLastErrorMsg()
    return f"{what}: {message}" if message else what


def read_columns(path, layer_name: str = "", layer_index: int = 0, where: str = "", fields=(),
                 report: Report | None = None, is_canceled: IsCanceled | None = None) -> Columns:
    """The feature ids, WKB geometries and ``fields`` of a layer of the vector file ``path``: the layer named
    ``layer_name``, else the one at ``layer_index``; only the features that pass the attribute filter ``where``
    (the driver's SQL dialect, as a QGIS subset filter on an OGR layer) when given. :class:`BulkUnavailable` when
    GDAL cannot open the layer, knows no such field, reads curved geometries (shapely reads none) or has no Arrow
    interface; :class:`core.progress.Canceled` when ``is_canceled()`` turns True between batches."""
    from osgeo import ogr

    report = report or silent
    with _gdal_quiet() as gdal:
        if not hasattr(ogr.Layer, "GetArrowStreamAsNumPy"):
            raise BulkUnavailable(f"GDAL {gdal.__version__} has no Arrow interface (3.6 or later has)")
        dataset = gdal.OpenEx(str(path), gdal.OF_VECTOR | gdal.OF_READONLY)
        if dataset is None:
            raise BulkUnavailable(_last_error(gdal, f"GDAL cannot open {path}"))
        layer = dataset.GetLayerByName(layer_name) if layer_name else dataset.GetLayer(layer_index)
        if layer is None:
            raise BulkUnavailable(f"{path} has no layer {layer_name or layer_index}")
        if ogr.GT_IsNonLinear(layer.GetGeomType()):
            raise BulkUnavailable("the layer holds curved geometries")
        definition = layer.GetLayerDefn()
        names = [definition.GetFieldDefn(i).GetName() for i in range(definition.GetFieldCount())]
        missing = [name for name in fields if name not in names]
        if missing:
            raise BulkUnavailable(f"GDAL finds no field {', '.join(missing)} in {path}")
        # a field the filter names is read too: the shapefile driver filters on ignored fields as if null
        kept = set(fields) | {name for name in names if _names(where, name)}
        if layer.SetIgnoredFields([name for name in names if name not in kept]) != 0:
            raise BulkUnavailable(_last_error(gdal, "GDAL cannot leave the other fields out"))
        try:
            if where and layer.SetAttributeFilter(where) != 0:
                raise BulkUnavailable(_last_error(gdal, f"GDAL cannot apply the filter {where!r}"))
            total = layer.GetFeatureCount()
        except BulkUnavailable:
            raise
        except RuntimeError as error:  # GDAL's exceptions on (QGIS 3.40's Processing turns them on)
            raise BulkUnavailable(f"GDAL cannot apply the filter {where!r}: {error}") from error
        if total < 0:  # a filter GDAL's driver could not run
            raise BulkUnavailable(_last_error(gdal, f"GDAL cannot apply the filter {where!r}"))
        fid_column = layer.GetFIDColumn() or "OGC_FID"
        geometry_column = layer.GetGeometryColumn() or "wkb_geometry"
        gdal.ErrorReset()
        stream = layer.GetArrowStreamAsNumPy(options=["INCLUDE_FID=YES", f"MAX_FEATURES_IN_BATCH={READ_BATCH}"])
        if stream is None:
            raise BulkUnavailable(_last_error(gdal, "GDAL gives no Arrow stream for this layer"))
        fids, wkbs, values, done = [], [], {name: [] for name in fields}, 0
        for batch in stream:
            check(is_canceled)
            fids.append(np.asarray(batch[fid_column], dtype=np.int64))
            wkbs.append(_wkb_objects(batch[geometry_column]) if geometry_column in batch
                        else np.full(len(fids[-1]), None, dtype=object))
            for name in fields:
                values[name].append(batch[name])
            done += len(fids[-1])
            report(min(done / max(total, 1), 1.0), None)
        failed = gdal.GetLastErrorType() >= gdal.CE_Failure and _last_error(gdal, "GDAL failed to read")
        stream = layer = dataset = None  # released here, where GDAL's messages are kept quiet
    if failed:
        raise BulkUnavailable(failed)
    if not fids:
        return Columns(np.empty(0, dtype=np.int64), np.empty(0, dtype=object),
                       {name: np.ma.masked_array(np.empty(0)) for name in fields})
    return Columns(np.concatenate(fids), np.concatenate(wkbs),
                   {name: np.ma.concatenate(parts) for name, parts in values.items()})


def _names(where: str, field: str) -> bool:
    """Whether the SQL filter ``where`` may name ``field`` (as a whole word, in any case, quoted or not)."""
    return bool(where) and re.search(rf"(?<![\w]){re.escape(field)}(?![\w])", where, re.IGNORECASE) is not None


def _wkb_objects(column) -> np.ndarray:
    """An Arrow binary column (an object array of bytes, or a fixed-size void array when every value has one size;
    masked where null) as an object array of bytes with None for null."""
    mask = np.ma.getmaskarray(column)
    data = np.ma.getdata(column)
    objects = data.astype(object) if data.dtype != object else data.copy()
    objects[mask] = None
    return objects


def strings(column) -> np.ndarray:
    """An Arrow string column read by :func:`read_columns` as an object array of str (UTF-8), None for null."""
    decoded = np.empty(len(column), dtype=object)
    decoded[:] = [value.decode("utf-8") for value in np.ma.getdata(column).tolist()]
    decoded[np.ma.getmaskarray(column)] = None
    return decoded


def geometries(wkbs: np.ndarray) -> np.ndarray:
    """Shapely geometries of :func:`read_columns`'s WKB (None stays None); :class:`BulkUnavailable` for a
    geometry shapely cannot read (a curve inside a collection)."""
    result = np.empty(len(wkbs), dtype=object)
    if len(wkbs):
        try:
            result[:] = shapely.from_wkb(wkbs)
        except shapely.errors.GEOSException as error:
            raise BulkUnavailable(f"shapely cannot read a geometry: {error}") from error
    return result


@dataclass(frozen=True)
class Field:
    """A field of a written layer: its name, kind (one of ``KINDS``) and one value per feature (None for null)."""

    name: str
    kind: str
    values: list


def write_polygons(path, layer_name: str, srs_wkt: str, shapes, fields: list, report: Report | None = None,
                   is_canceled: IsCanceled | None = None, wkbs=None) -> None:
    """A GeoPackage at ``path`` holding one MultiPolygon layer ``layer_name`` in the CRS ``srs_wkt`` ("" for none):
    ``shapes`` (polygons or multi-polygons, none empty, written as 2-D multi-polygons with ids 1, 2, ... in their
    order) with ``fields`` (:class:`Field`), its spatial index, extent and feature count, as GDAL writes them.
    ``wkbs``, when given, holds the WKB each shape was read from (None where there is none): a 2-D polygon or
    multi-polygon among them is written as it is, without writing the shape's WKB again. An existing file at ``path``
    is replaced once the new one is complete. :class:`BulkUnavailable` when GDAL cannot create it;
    :class:`core.progress.Canceled` between chunks when ``is_canceled()`` turns True. Either way nothing is left
    behind."""
    report = report or silent
    path = Path(path)
    partial = path.with_name(f".{path.stem}.partial.gpkg")
    shapes = np.asarray(shapes, dtype=object)
    if not writable_polygons(shapes):
        raise BulkUnavailable("only polygons and multi-polygons are written in bulk")
    for field in fields:
        if field.kind not in KINDS or len(field.values) != len(shapes):
            raise BulkUnavailable(f"field {field.name}: kind {field.kind}, {len(field.values)} values")
    try:
        _discard(partial)
        table, fid_column, geometry_column = _create_layer(partial, layer_name, srs_wkt, fields)
        report(0.05, None)
        try:
            indexed = _insert_rows(partial, table, fid_column, geometry_column, shapes, wkbs, fields, report,
                                   is_canceled)
        except sqlite3.Error as error:
            raise BulkUnavailable(f"SQLite cannot write {partial}: {error}") from error
        check(is_canceled)
        if not indexed:
            _create_spatial_index(partial, table, geometry_column)
        os.replace(partial, path)
    finally:
        _discard(partial)
    report(1.0, None)


def writable_polygons(shapes) -> bool:
    """Whether :func:`write_polygons` takes every one of ``shapes``: polygons and multi-polygons, none null or empty."""
    shapes = np.asarray(shapes, dtype=object)
    type_ids = shapely.get_type_id(shapes)
    return bool(np.isin(type_ids, (_POLYGON, _MULTIPOLYGON)).all() and not shapely.is_empty(shapes).any())


def _discard(partial: Path) -> None:
    for name in (partial, Path(f"{partial}-journal"), Path(f"{partial}-wal"), Path(f"{partial}-shm")):
        name.unlink(missing_ok=True)


def _create_layer(partial: Path, layer_name: str, srs_wkt: str, fields: list):
    """The empty layer, created by GDAL as its GeoPackage driver creates any, with its empty spatial index and
    triggers: (its table, FID column, geometry column)."""
    from osgeo import ogr, osr

    kinds = {"string": ogr.OFTString, "real": ogr.OFTReal, "integer64": ogr.OFTInteger64}
    with _gdal_quiet() as gdal:
        driver = ogr.GetDriverByName("GPKG")
        dataset = driver.CreateDataSource(str(partial)) if driver is not None else None
        if dataset is None:
            raise BulkUnavailable(_last_error(gdal, f"GDAL cannot create {partial}"))
        srs = None
        if srs_wkt:
            srs = osr.SpatialReference()
            if srs.ImportFromWkt(srs_wkt) != 0:
                raise BulkUnavailable("GDAL cannot read the CRS")
            srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
        layer = dataset.CreateLayer(layer_name, srs, ogr.wkbMultiPolygon)
        if layer is None:
            raise BulkUnavailable(_last_error(gdal, f"GDAL cannot create the layer {layer_name}"))
        for field in fields:
            if layer.CreateField(ogr.FieldDefn(field.name, kinds[field.kind])) != 0:
                raise BulkUnavailable(_last_error(gdal, f"GDAL cannot create the field {field.name}"))
        names = layer.GetName(), layer.GetFIDColumn(), layer.GetGeometryColumn()
        layer = None
        dataset = None  # closed: the tables, the empty index and its triggers are on disk
    return names


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _insert_rows(partial: Path, table: str, fid_column: str, geometry_column: str, shapes, wkbs, fields, report,
                 is_canceled) -> bool:
    """The rows, the spatial index (when GDAL made one: True), the extent and the feature count, in one
    transaction."""
    connection = sqlite3.connect(partial)
    try:
        connection.execute("PRAGMA synchronous = OFF")  # a temporary file, renamed only once complete
        (srs_id,) = connection.execute(
            "SELECT srs_id FROM gpkg_geometry_columns WHERE lower(table_name) = lower(?)", (table,)).fetchone()
        # GDAL's triggers index and count each inserted row: the index is filled and the count set once instead,
        # and the triggers put back as they were
        triggers = connection.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND lower(tbl_name) = lower(?)",
            (table,)).fetchall()
        for name, _ in triggers:
            connection.execute(f"DROP TRIGGER {_quoted(name)}")
        names = [fid_column, geometry_column, *(field.name for field in fields)]
        insert = (f"INSERT INTO {_quoted(table)} ({', '.join(_quoted(name) for name in names)}) "
                  f"VALUES ({', '.join('?' * len(names))})")
        fids = np.arange(1, len(shapes) + 1, dtype=np.int64)
        boxes = shapely.bounds(shapes)
        for start in range(0, len(shapes), WRITE_CHUNK):
            check(is_canceled)
            stop = min(start + WRITE_CHUNK, len(shapes))
            blobs = _geometry_blobs(shapes[start:stop], None if wkbs is None else wkbs[start:stop], boxes[start:stop],
                                    srs_id)
            connection.executemany(insert, zip(fids[start:stop].tolist(), blobs,
                                               *(field.values[start:stop] for field in fields)))
            report(0.05 + 0.75 * stop / len(shapes), None)
        check(is_canceled)
        rtree = connection.execute(
            "SELECT 'rtree_' || table_name || '_' || column_name FROM gpkg_extensions WHERE lower(table_name) = "
            "lower(?) AND extension_name = 'gpkg_rtree_index'", (table,)).fetchone()
        if rtree is not None:
            sqlite_rtree.fill(connection, rtree[0], fids, boxes)
        if len(shapes):
            min_x, min_y = boxes[:, 0].min(), boxes[:, 1].min()
            max_x, max_y = boxes[:, 2].max(), boxes[:, 3].max()
            connection.execute("UPDATE gpkg_contents SET min_x = ?, min_y = ?, max_x = ?, max_y = ? "
                               "WHERE lower(table_name) = lower(?)",
                               (float(min_x), float(min_y), float(max_x), float(max_y), table))
        if connection.execute("SELECT 1 FROM sqlite_master WHERE name = 'gpkg_ogr_contents'").fetchone():
            connection.execute("UPDATE gpkg_ogr_contents SET feature_count = ? WHERE lower(table_name) = lower(?)",
                               (len(shapes), table))
        for _, sql in triggers:
            connection.execute(sql)
        connection.commit()
    finally:
        connection.close()
    return rtree is not None


def multi_polygons(shapes) -> np.ndarray:
    """``shapes`` with each polygon made a one-part multi-polygon (as QGIS makes them for a layer it calls
    multi-part, or writes them into one); everything else (None too) as it was."""
    multi = np.array(shapes, dtype=object)
    polygons = shapely.get_type_id(multi) == _POLYGON
    if polygons.any():
        parts = multi[polygons]
        multi[polygons] = shapely.multipolygons(parts, indices=np.arange(len(parts)))
    return multi


# little-endian 2-D WKB: a polygon's and a multi-polygon's first bytes, and what makes a polygon a one-part
# multi-polygon
_POLYGON_2D, _MULTIPOLYGON_2D = b"\x01\x03\x00\x00\x00", b"\x01\x06\x00\x00\x00"
_ONE_PART_MULTIPOLYGON = _MULTIPOLYGON_2D + b"\x01\x00\x00\x00"


def _geometry_blobs(shapes: np.ndarray, wkbs, boxes: np.ndarray, srs_id: int) -> list:
    """GeoPackage geometry blobs of ``shapes`` (with their ``boxes``): 2-D multi-polygons (a polygon becomes a
    one-part one), from ``wkbs`` where they are 2-D polygons already, else written by shapely."""
    ready = [None] * len(shapes) if wkbs is None else [
        _ONE_PART_MULTIPOLYGON + wkb if wkb is not None and wkb[:5] == _POLYGON_2D else
        wkb if wkb is not None and wkb[:5] == _MULTIPOLYGON_2D else None for wkb in wkbs.tolist()]
    missing = [index for index, wkb in enumerate(ready) if wkb is None]
    if missing:
        written = shapely.to_wkb(multi_polygons(shapes[missing]), output_dimension=2, byte_order=1)
        for index, wkb in zip(missing, written.tolist()):
            ready[index] = wkb
    header = np.zeros(len(shapes), dtype=_HEADER)
    header["magic"] = b"GP"
    header["flags"] = _FLAGS_LITTLE_ENDIAN_XY_ENVELOPE
    header["srs_id"] = srs_id
    header["envelope"] = boxes[:, [0, 2, 1, 3]]
    headers = header.tobytes()
    size = _HEADER.itemsize
    return [headers[i * size:(i + 1) * size] + wkb for i, wkb in enumerate(ready)]


def _create_spatial_index(partial: Path, table: str, geometry_column: str) -> None:
    """The spatial index built by GDAL, row by row, where its layer creation made none."""
    with _gdal_quiet() as gdal:
        dataset = gdal.OpenEx(str(partial), gdal.OF_VECTOR | gdal.OF_UPDATE)
        if dataset is None:
            raise BulkUnavailable(_last_error(gdal, f"GDAL cannot reopen {partial}"))
        gdal.ErrorReset()
        result = dataset.ExecuteSQL(f"SELECT CreateSpatialIndex({_literal(table)}, {_literal(geometry_column)})")
        if result is not None:
            dataset.ReleaseResultSet(result)
        error = gdal.GetLastErrorType() >= gdal.CE_Failure and gdal.GetLastErrorMsg()
        dataset = None
    if error:
        raise BulkUnavailable(f"GDAL cannot build the spatial index: {error}")
