"""Read the truth and proposal inputs of a scoring algorithm into ``core.score.f1.PolygonSet``s.

Inputs are polygon layers (any provider and CRS; proposals are transformed to the truth's CRS) or SpaceNet
challenge CSV files. A layer that is a file GDAL reads (``qgis_adapter.bulk_io.ogr_file``), in the truth's CRS, is
read in bulk: its geometries and the group and order fields through GDAL's Arrow interface (``core.vector_bulk``),
tens of times faster than QGIS's features one by one. Everything else (memory and database layers, the selected
features, proposals in another CRS) is read feature by feature; both give the same polygons, ids, groups, order and
areas. Imported only when an algorithm runs: it needs numpy and shapely.
"""

from pathlib import Path

import numpy as np
from qgis.core import (
    NULL,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsCsException,
    QgsDistanceArea,
    QgsFeatureRequest,
    QgsGeometry,
    QgsProcessingException,
    QgsProcessingFeatureSource,
    QgsProviderRegistry,
    QgsRectangle,
    QgsUnitTypes,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import QUrl

from ..core import progress, vector_bulk
from ..core.score import challenge_csv, f1
from ..qgis_adapter import bulk_io
from ..qgis_adapter.geometry import from_shapely, from_wkb, linear, to_shapely, to_wkb
from ..qgis_adapter.layers import source_path
from .base import features, reporting
from .score_fields import group_field, group_label

CSV_COLUMNS = ("ImageId", "PolygonWKT_Pix")
POLYGONS, CSV, EMPTY = "polygons", "csv", "empty"  # the kinds of input
READ_PROGRESS = 30.0  # share of the progress bar for reading both inputs


class Side:
    """One input as the engine needs it, plus what the writer needs to copy features back out: the QGIS geometries
    as read feature by feature, or the WKB read in bulk (``qgis_geometries`` None)."""

    def __init__(self, polygon_set, qgis_geometries, ids, wkbs=None):
        self.polygon_set = polygon_set
        self.qgis_geometries = qgis_geometries
        self.wkbs = wkbs
        self.ids = ids
        self.groups = polygon_set.groups if polygon_set.groups is not None else np.full(len(ids), "", dtype=object)
        self.bulk = qgis_geometries is None

    def qgis_geometry(self, index: int):
        """The QGIS geometry of feature ``index`` as read (not repaired)."""
        if self.qgis_geometries is not None:
            return self.qgis_geometries[index]
        return from_wkb(self.wkbs[index]) if self.wkbs[index] is not None else QgsGeometry()


class InputReader:
    """Turns the TRUTH and PROPOSALS parameters into ``core.score.f1.PolygonSet``s."""

    def __init__(self, algorithm, parameters, context, feedback, options, truth_key, proposals_key, group_key,
                 order_key):
        self.algorithm, self.parameters, self.context, self.feedback = algorithm, parameters, context, feedback
        self.options = options
        self.truth_key, self.proposals_key = truth_key, proposals_key
        self.group_key, self.order_key = group_key, order_key
        self.crs = QgsCoordinateReferenceSystem()
        self.areas = None  # an AreaMeter in self.crs
        self.truth = self.proposals = None
        self.group_count = 0
        self.kinds = {}
        self.sources = {}  # parameter key -> its QgsProcessingFeatureSource
        self.group_by = (None, None)  # the truth's and the proposals' group field (None: no groups)
        self.model_pairs = None  # (model, version) of every proposal where read in bulk with them (report_facts)

    def error(self, message):
        return QgsProcessingException(self.algorithm.tr(message))

    def source(self, key):
        source = self.algorithm.parameterAsSource(self.parameters, key, self.context)
        if source is None:
            raise QgsProcessingException(self.algorithm.invalidSourceError(self.parameters, key))
        return source

    def read(self):
        truth_source, proposal_source = self.source(self.truth_key), self.source(self.proposals_key)
        self.sources = {self.truth_key: truth_source, self.proposals_key: proposal_source}
        self.kinds = kinds = {key: self.kind(key, source) for key, source in
                              ((self.truth_key, truth_source), (self.proposals_key, proposal_source))}
        # an empty input is scored as one of the other's kind (both empty: as polygon layers)
        known = {kind for kind in kinds.values() if kind != EMPTY} or {POLYGONS}
        if len(known) > 1:
            raise self.error("TRUTH and PROPOSALS must both be polygon layers or both challenge CSV files "
                             f"(got {kinds[self.truth_key]} and {kinds[self.proposals_key]}).")
        if known == {CSV}:
            self.truth = self.read_csv(self.truth_key, order_field=None)
            self.proposals = self.read_csv(self.proposals_key, order_field=self.order_field(proposal_source))
        else:
            self.crs = self.common_crs(truth_source, proposal_source)
            self.areas = AreaMeter(self.crs, self.context, self.extent_in_crs(truth_source, proposal_source))
            self.group_by = truth_group, proposal_group = self.group_fields(truth_source, proposal_source)
            self.truth = self.read_layer(self.truth_key, truth_source, truth_group, None,
                                         self.options.min_area_truth, 0)
            self.proposals = self.read_layer(self.proposals_key, proposal_source, proposal_group,
                                             self.order_field(proposal_source), self.options.min_area_proposals, 1,
                                             model_fields=model_fields(proposal_source))
        consequences = {self.truth_key: "every proposal is a false positive",
                        self.proposals_key: "every truth polygon is a false negative"}
        for key, side in ((self.truth_key, self.truth), (self.proposals_key, self.proposals)):
            if len(side.ids) == 0:
                self.feedback.pushWarning(self.algorithm.tr(f"{key} has no features: {consequences[key]}."))
        truth_groups, proposal_groups = set(self.truth.groups), set(self.proposals.groups)
        self.group_count = len(truth_groups | proposal_groups)
        if len(self.truth.ids) and len(self.proposals.ids) and not truth_groups & proposal_groups:
            examples = f"'{sorted(truth_groups)[0]}' and '{sorted(proposal_groups)[0]}'"
            self.feedback.pushWarning(self.algorithm.tr(
                f"TRUTH and PROPOSALS share no group (e.g. {examples}): nothing can match, every building scores a "
                "miss. Check that both name their images (or tiles) the same way."))
        return self.truth.polygon_set, self.proposals.polygon_set

    def common_crs(self, truth_source, proposal_source):
        """The CRS both sides are compared in: the truth's (the proposals' when the truth has none, e.g. an empty
        GeoJSON). A side without a CRS facing one with a CRS is refused: its coordinates would be taken as the
        other's, and every building scored a miss without a word."""
        crs = {key: source.sourceCrs() for key, source in ((self.truth_key, truth_source),
                                                           (self.proposals_key, proposal_source))}
        with_data = [key for key in crs if self.kinds[key] != EMPTY]
        if len(with_data) == 2 and crs[self.truth_key].isValid() != crs[self.proposals_key].isValid():
            missing, other = ((self.truth_key, self.proposals_key) if not crs[self.truth_key].isValid()
                              else (self.proposals_key, self.truth_key))
            named = crs[other].authid() or crs[other].description()
            raise self.error(f"{missing} has no CRS while {other} is in {named}: set the CRS of {missing} (Layer "
                             "Properties > Source, or Vector > Data Management Tools > Assign Projection) so that "
                             "both are compared in one.")
        return crs[self.truth_key] if crs[self.truth_key].isValid() else crs[self.proposals_key]

    def extent_in_crs(self, *sources):
        """Where the data lie, in ``self.crs``: the extent of the first side that has features (for AreaMeter)."""
        for source in sources:
            extent = source.sourceExtent()
            if source.featureCount() and not extent.isNull() and not extent.isEmpty():
                if source.sourceCrs().isValid() and source.sourceCrs() != self.crs:
                    try:
                        extent = QgsCoordinateTransform(source.sourceCrs(), self.crs,
                                                        self.context.transformContext()).transformBoundingBox(extent)
                    except QgsCsException:
                        continue
                return extent
        return None

    def kind(self, key, source):
        names = set(source.fields().names())
        if set(CSV_COLUMNS) <= names and self.is_csv_file(key):
            return CSV  # also when GDAL took another WKT column of it (ogr2ogr's "WKT") for the geometry
        if source.wkbType() == QgsWkbTypes.Type.NoGeometry:
            if set(CSV_COLUMNS) <= names:
                return CSV
            if source.featureCount() == 0:
                # a GeoJSON FeatureCollection without features has no geometry type in QGIS: it is an empty
                # input (scored, with a warning), not a table
                return EMPTY
            raise self.error(f"{key} has no geometry and is not a SpaceNet challenge CSV (it needs the columns "
                             f"{', '.join(CSV_COLUMNS)}; found {', '.join(sorted(names)) or 'none'}).")
        geometry_type = QgsWkbTypes.geometryType(source.wkbType())
        if geometry_type != QgsWkbTypes.GeometryType.PolygonGeometry:
            raise self.error(f"{key} must be a polygon layer, but its geometries are "
                             f"{QgsWkbTypes.displayString(source.wkbType())}: buildings are scored as polygons.")
        return POLYGONS

    def is_csv_file(self, key) -> bool:
        try:
            return file_path(self.algorithm.parameterAsVectorLayer(self.parameters, key, self.context)).lower() \
                .endswith(".csv")
        except QgsProcessingException:  # no file behind the layer
            return False

    def group_name(self) -> str:
        """The GROUP_FIELD asked for; "" for none."""
        return self.algorithm.parameterAsString(self.parameters, self.group_key, self.context) or ""

    def group_fields(self, truth_source, proposal_source):
        """(truth's, proposals') group field: GROUP_FIELD in each, or its other spelling where a layer has only
        that (``group`` in older scored layers, ``group_name`` in newer ones); (None, None) for no groups."""
        name = self.group_name()
        if not name:
            return None, None
        found = []
        for key, source in ((self.truth_key, truth_source), (self.proposals_key, proposal_source)):
            if self.kinds.get(key) == EMPTY:  # an empty one has no fields
                found.append(name)
                continue
            field = group_field(source, name)
            if not field:
                raise self.error(f"The group field '{name}' is missing from {key}: it must have the same name in "
                                 "both layers (or leave GROUP_FIELD empty to score everything as one group).")
            found.append(field)
        return tuple(found)

    def group_description(self) -> str:
        """The group field as a report states it; "" for no groups."""
        if CSV in self.kinds.values():
            return "ImageId (challenge CSV)"
        truth_group, proposal_group = self.group_by
        if truth_group == proposal_group:
            return truth_group or ""
        return f"{truth_group} (truth), {proposal_group} (proposals)"

    def order_field(self, proposal_source):
        name = self.algorithm.parameterAsString(self.parameters, self.order_key, self.context)
        if name and self.kinds.get(self.proposals_key) != EMPTY and proposal_source.fields().lookupField(name) < 0:
            raise self.error(f"The order field '{name}' is not a field of PROPOSALS.")
        return name or None

    def read_layer(self, key, source, group_field, order_field, min_area, step, model_fields=()):
        """The layer of parameter ``key``: in bulk where GDAL can read its file, else feature by feature. Read in
        bulk, the ``model_fields`` come too (where GDAL reads them as QGIS does) for ``model_pairs``."""
        half = READ_PROGRESS / 2
        low, high = step * half, (step + 1) * half
        file, why = self.bulk_file(key, source, [name for name in (group_field, order_field) if name])
        if file is not None:
            layer = self.algorithm.parameterAsVectorLayer(self.parameters, key, self.context)
            if model_fields and bulk_io.bulk_fields(layer, model_fields):
                model_fields = ()
            try:
                return self.read_file(file, group_field, order_field, min_area, low, high,
                                      multi=QgsWkbTypes.isMultiType(source.wkbType()), model_fields=model_fields)
            except vector_bulk.BulkUnavailable as error:
                why = str(error)
        self.feedback.pushDebugInfo(self.algorithm.tr(f"{key} is read feature by feature: {why}."))
        return self.read_features(source, group_field, order_field, min_area, low, high)

    def bulk_file(self, key, source, fields):
        """(the file GDAL reads for the input ``key``, "") or (None, why it cannot be read in bulk)."""
        if source.sourceCrs() != self.crs:
            return None, "its features are transformed to the truth's CRS"
        layer = self.algorithm.parameterAsVectorLayer(self.parameters, key, self.context)
        file, why = bulk_io.ogr_file(layer, self.parameters.get(key))
        why = why or bulk_io.bulk_fields(layer, fields)
        return (None, why) if why else (file, "")

    def read_file(self, file, group_field, order_field, min_area, low, high, multi=False, model_fields=()):
        """A layer's file read in bulk, as :meth:`read_features` reads its features: polygons made multi-part
        where QGIS calls the layer multi-part (it does for every shapefile) and gives its features so."""
        try:
            columns = vector_bulk.read_columns(
                file.path, file.layer_name, file.layer_index, file.where,
                list(dict.fromkeys(name for name in (group_field, order_field, *model_fields) if name)),
                report=reporting(self.feedback, low, high), is_canceled=self.feedback.isCanceled)
        except progress.Canceled:  # the caller sees the feedback canceled and writes nothing
            return Side(f1.PolygonSet(np.empty(0, dtype=object)), None, np.empty(0, dtype=np.int64),
                        np.empty(0, dtype=object))
        measured = None
        if min_area > 0:
            measured = np.array([self.areas.square_metres(from_wkb(wkb) if wkb is not None else QgsGeometry())
                                 for wkb in columns.wkbs], dtype=float)
        shapes = vector_bulk.geometries(columns.wkbs)
        polygon_set = f1.PolygonSet(
            geometries=vector_bulk.multi_polygons(shapes) if multi else shapes,
            groups=group_names(columns.values[group_field]) if group_field else None,
            order=np.ma.filled(columns.values[order_field].astype(float), -np.inf) if order_field else None,
            areas=measured,
        )
        if model_fields:
            model, *version = (python_values(columns.values[name]) for name in model_fields)
            self.model_pairs = set(zip(model, version[0] if version else [None] * len(model)))
        return Side(polygon_set, None, columns.fids, columns.wkbs)

    def read_features(self, source, group_field, order_field, min_area, low, high):
        request = QgsFeatureRequest()
        request.setDestinationCrs(self.crs, self.context.transformContext())  # proposals into the truth's CRS
        areas = self.areas if min_area > 0 else None
        wkbs, geometries, ids, groups, order, measured = [], [], [], [], [], []
        for feature in features(source, request, self.feedback, low, high,
                                QgsProcessingFeatureSource.Flag.FlagSkipGeometryValidityChecks):
            geometry = linear(feature.geometry())
            geometries.append(geometry)
            wkbs.append(to_wkb(geometry))
            ids.append(feature.id())
            if group_field:
                groups.append(group_label(feature[group_field]))
            if order_field:
                value = feature[order_field]
                order.append(-np.inf if value is None or value == NULL else float(value))  # nulls last
            if areas is not None:
                measured.append(areas.square_metres(geometry))

        polygon_set = f1.PolygonSet(
            geometries=to_shapely(wkbs),
            groups=np.array(groups, dtype=object) if group_field else None,
            order=np.array(order, dtype=float) if order_field else None,
            areas=np.array(measured, dtype=float) if areas is not None else None,
        )
        return Side(polygon_set, geometries, np.array(ids, dtype=np.int64))

    def read_csv(self, key, order_field):
        if self.kinds.get(key) == EMPTY:  # facing a challenge CSV: an empty one (no image, no building)
            return Side(f1.PolygonSet(geometries=np.empty(0, dtype=object), groups=np.empty(0, dtype=object)),
                        [], np.empty(0, dtype=np.int64))
        path = file_path(self.algorithm.parameterAsVectorLayer(self.parameters, key, self.context))
        try:
            polygon_set = challenge_csv.read_challenge_csv(path)
        except (OSError, ValueError) as error:
            raise self.error(f"{key}: {error}") from error
        if order_field is None:
            polygon_set.order = None  # the SpaceNet evaluator takes proposals in file order
        elif order_field != "Confidence":
            raise self.error(f"A challenge CSV can be ordered by its Confidence column only, not '{order_field}'.")
        qgis_geometries = [from_shapely(g) for g in polygon_set.geometries]
        return Side(polygon_set, qgis_geometries, numeric_ids(polygon_set.ids, len(qgis_geometries)))


class AreaMeter:
    """Areas in m²: on the ellipsoid in a geographic CRS (never in degrees) and in a projected one whose areas are
    off by more than MAX_AREA_DISTORTION where the data lie (Web Mercator: 1.44 times at 34°N), planar otherwise
    (UTM: within 0.1 %, and as the SpaceNet evaluators measure)."""

    MAX_AREA_DISTORTION = 0.005

    def __init__(self, crs, context, extent=None):
        self.distance_area = QgsDistanceArea()
        self.distance_area.setSourceCrs(crs, context.transformContext())
        ellipsoid = crs.ellipsoidAcronym() or "EPSG:7030"
        distorted = (crs.isValid() and not crs.isGeographic() and extent is not None
                     and self._distortion(crs, context, extent, ellipsoid) > self.MAX_AREA_DISTORTION)
        if crs.isGeographic() or distorted:
            self.distance_area.setEllipsoid(ellipsoid)

    def _distortion(self, crs, context, extent, ellipsoid) -> float:
        """How far the planar area of a small square at the centre of ``extent`` is from its area on the
        ellipsoid, relatively."""
        centre, side = extent.center(), max(extent.width(), extent.height(), 1e-9) / 100
        square = QgsGeometry.fromRect(QgsRectangle(centre.x(), centre.y(), centre.x() + side, centre.y() + side))
        planar = self.square_metres(square)
        on_ellipsoid = QgsDistanceArea()
        on_ellipsoid.setSourceCrs(crs, context.transformContext())
        if not on_ellipsoid.setEllipsoid(ellipsoid):
            return 0.0
        true_area = on_ellipsoid.convertAreaMeasurement(on_ellipsoid.measureArea(square),
                                                        QgsUnitTypes.AreaUnit.AreaSquareMeters)
        return abs(planar / true_area - 1) if true_area > 0 and planar > 0 else 0.0

    def square_metres(self, geometry) -> float:
        if geometry.isNull():
            return 0.0
        area = self.distance_area.measureArea(geometry)
        return self.distance_area.convertAreaMeasurement(area, QgsUnitTypes.AreaUnit.AreaSquareMeters)


def model_fields(source) -> tuple:
    """The fields that name the model of the proposals (``report_facts``: a ``model`` and a ``device`` field, with
    or without ``model_version``) that the report reads: read with the proposals where they are read in bulk, so
    that the report need not read every feature again; () when the layer has no such fields."""
    from .report_facts import DEVICE_FIELD, MODEL_FIELD, MODEL_VERSION_FIELD

    names = source.fields().names()
    if MODEL_FIELD not in names or DEVICE_FIELD not in names:
        return ()
    return tuple(name for name in (MODEL_FIELD, MODEL_VERSION_FIELD) if name in names)


def python_values(column) -> list:
    """A field read in bulk as the Python values QGIS gives (text, int, float), None for null."""
    if column.dtype.kind == "S":
        return vector_bulk.strings(column).tolist()
    objects = np.ma.getdata(column).astype(object)
    objects[np.ma.getmaskarray(column)] = None
    return objects.tolist()


def group_names(column) -> np.ndarray:
    """A group field read in bulk as the group names :meth:`InputReader.read_features` makes of QGIS's values
    (``score_fields.group_label``: text as it is, ``3`` for an integer or a real 3.0), "" for null."""
    if column.dtype.kind == "S":
        names = vector_bulk.strings(column)
    else:
        names = np.empty(len(column), dtype=object)
        names[:] = [group_label(value) for value in np.ma.getdata(column).tolist()]
    names[np.ma.getmaskarray(column)] = ""
    return names


def numeric_ids(ids, count) -> np.ndarray:
    """Challenge CSV BuildingIds as integers; the row number stands in for an id that is not one."""
    if ids is None:
        return np.arange(count, dtype=np.int64)
    return np.array([int(i) if str(i).strip().lstrip("-").isdigit() and abs(int(i)) < 2 ** 63 else row
                     for row, i in enumerate(ids)], dtype=np.int64)


def file_path(layer) -> str:
    """The file behind a CSV layer, whether OGR or the delimited-text provider opened it."""
    if layer is None:
        raise QgsProcessingException("The challenge CSV could not be opened as a layer.")
    parts = QgsProviderRegistry.instance().decodeUri(layer.providerType(), layer.source())
    path = parts.get("path") or QUrl(layer.source()).toLocalFile() or source_path(layer)
    if not Path(path).is_file():
        raise QgsProcessingException(f"Cannot find the file behind layer '{layer.name()}' ({layer.source()}).")
    return path
