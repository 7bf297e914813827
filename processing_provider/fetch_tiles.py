"""spacenet:fetchtiles: download SpaceNet imagery and labels for an extent from the public bucket."""

import contextlib
import os
from pathlib import Path

from qgis.core import (
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsFeatureSink,
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingOutputRasterLayer,
    QgsProcessingOutputVectorLayer,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
    QgsWkbTypes,
)

from ..core.fetch import catalog
from ..qgis_adapter.geometry import from_shapely
from ..qgis_adapter.qt_compat import FieldType
from ..qgis_adapter.sinks import fields_of
from .base import SpaceNetAlgorithm
from .loading import add_fetched_layers

WGS84 = "EPSG:4326"


def cache_dir() -> Path:
    """Footprint indexes live with the user's QGIS profile, shared by every project."""
    return Path(QgsApplication.qgisSettingsDirPath()) / "spacenet_toolkit" / "tile_index"


class FetchTiles(SpaceNetAlgorithm):
    DATASET = "DATASET"
    AOI = "AOI"
    SPLIT = "SPLIT"
    PRODUCTS = "PRODUCTS"
    EXTENT = "EXTENT"
    MAX_TILES = "MAX_TILES"
    OUTPUT_FOLDER = "OUTPUT_FOLDER"
    ENDPOINT = "ENDPOINT"
    TIMEOUT = "TIMEOUT"
    LOAD_OUTPUTS = "LOAD_OUTPUTS"
    TILE_INDEX = "TILE_INDEX"
    TILE_COUNT = "TILE_COUNT"
    IMAGERY = "IMAGERY"
    LABELS = "LABELS"

    GROUP = "data"
    REQUIRES = ("requests", "rasterio", "shapely")

    def __init__(self):
        super().__init__()
        self._fetched = None  # what processAlgorithm got, for postProcessAlgorithm (main thread) to load

    def name(self):
        return "fetchtiles"

    def displayName(self):  # noqa: N802
        return self.tr("Fetch SpaceNet tiles")

    def shortHelpString(self):  # noqa: N802
        return self.tr(
            "<p>Downloads SpaceNet imagery and labels from the public <i>spacenet-dataset</i> bucket (anonymous, "
            "over HTTPS; no AWS account or tool needed) and, from the dialog, adds them to the project.</p>"
            "<p><b>Dataset</b>, <b>AOI</b>, <b>Split</b>: e.g. SN2_buildings, AOI_2_Vegas, train. Test splits come "
            "without labels. <b>Products</b>: PS-RGB (pan-sharpened colour), PS-MS (8 bands), PAN, MS, and "
            "<i>labels</i> (the dataset's GeoJSON: building footprints or road centerlines).</p>"
            "<p><b>Extent</b>: only tiles that intersect it, in any CRS. Empty: the first tiles of the AOI. The "
            "first run for an AOI reads every tile's footprint from its GeoTIFF header (a few kilobytes each) and "
            "keeps them in a GeoPackage in your QGIS profile, so later selections are instant.</p>"
            "<p><b>Maximum tiles</b>: a cap on the number of tiles (0: no cap). A SpaceNet tile is 200-450 m "
            "wide and 1-30 MB per product.</p>"
            "<p>Files keep the bucket's folder layout under the output folder. Files already there are not "
            "downloaded again; a download that was canceled or cut off resumes where it stopped. Every file is "
            "checked against the listed size and MD5 before it takes its final name.</p>"
            "<p><b>Endpoint</b> (advanced): the bucket's base URL, for a mirror or a local S3 server, e.g. "
            "http://127.0.0.1:9000/spacenet-dataset.</p>"
            "<p><b>Timeout</b> (advanced): seconds a request may wait for an answer before it is tried again "
            "(default 30); the log says which request is waiting, and a server that never answers fails after "
            "three tries.</p>"
            "<p><b>Outputs</b>: the folder, the number of tiles fetched, and the tile index: one footprint per "
            "tile and product with its id, key, local path and status (downloaded, present, failed, canceled or "
            "refused). For the next step of a model: the <b>imagery</b> and <b>labels</b> of the first tile "
            "fetched (the first imagery product asked for).</p>"
        )

    def initAlgorithm(self, config=None):  # noqa: N802
        # Static strings: scripts and models store the plain names (SN2_buildings, AOI_2_Vegas, PS-RGB); the
        # numbers `qgis_process help` lists work too (SpaceNetAlgorithm.enum_value).
        for key, label, options, default in (
            (self.DATASET, "Dataset", list(catalog.DATASETS), "SN2_buildings"),
            (self.AOI, "AOI", list(catalog.ALL_AOIS), "AOI_2_Vegas"),
            (self.SPLIT, "Split", list(catalog.SPLITS), "train"),
        ):
            self.addParameter(QgsProcessingParameterEnum(key, self.tr(label), options=options, defaultValue=default,
                                                         usesStaticStrings=True))
        self.addParameter(QgsProcessingParameterEnum(
            self.PRODUCTS, self.tr("Products"), options=list(catalog.PRODUCTS), allowMultiple=True,
            defaultValue=["PS-RGB", catalog.LABELS], usesStaticStrings=True))
        self.addParameter(QgsProcessingParameterExtent(self.EXTENT, self.tr("Extent (tiles that intersect it)"),
                                                       optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            self.MAX_TILES, self.tr("Maximum tiles (0: no limit)"), QgsProcessingParameterNumber.Type.Integer,
            defaultValue=25, minValue=0))
        self.addParameter(QgsProcessingParameterFolderDestination(self.OUTPUT_FOLDER, self.tr("Output folder")))
        endpoint = QgsProcessingParameterString(self.ENDPOINT, self.tr("Bucket endpoint URL"),
                                                defaultValue=catalog.BUCKET_URL)
        endpoint.setFlags(endpoint.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
        self.addParameter(endpoint)
        timeout = QgsProcessingParameterNumber(
            self.TIMEOUT, self.tr("Timeout for an answer (seconds)"), QgsProcessingParameterNumber.Type.Double,
            defaultValue=catalog.DEFAULT_TIMEOUT, minValue=1)
        timeout.setFlags(timeout.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
        self.addParameter(timeout)
        self.addParameter(QgsProcessingParameterBoolean(self.LOAD_OUTPUTS, self.tr("Add the tiles to the project"),
                                                        defaultValue=True))
        self.addParameter(QgsProcessingParameterFeatureSink(
            self.TILE_INDEX, self.tr("Tile index"), QgsProcessing.SourceType.TypeVectorPolygon,
            optional=True, createByDefault=True))  # optional: qgis_process then needs no --TILE_INDEX
        self.addOutput(QgsProcessingOutputNumber(self.TILE_COUNT, self.tr("Tiles fetched")))
        # One raster and one vector layer that a model can chain into extraction and scoring.
        self.addOutput(QgsProcessingOutputRasterLayer(self.IMAGERY, self.tr("Imagery of the first tile")))
        self.addOutput(QgsProcessingOutputVectorLayer(self.LABELS, self.tr("Labels of the first tile")))

    def checkParameterValues(self, parameters, context):  # noqa: N802
        ok, message = super().checkParameterValues(parameters, context)
        if not ok:
            return ok, message
        try:
            self._request(parameters, context)
        except (catalog.CatalogError, QgsProcessingException) as error:
            return False, str(error)
        return True, ""

    def _request(self, parameters, context):
        from ..core.fetch.fetch import FetchRequest

        products = self.enum_values(parameters, self.PRODUCTS, context)
        return FetchRequest(
            dataset=self.enum_value(parameters, self.DATASET, context),
            split=self.enum_value(parameters, self.SPLIT, context),
            aoi=self.enum_value(parameters, self.AOI, context),
            products=tuple(products),
            output_folder=Path(self.parameterAsString(parameters, self.OUTPUT_FOLDER, context) or "."),
            extent=self._extent_wgs84(parameters, context),
            max_tiles=self.parameterAsInt(parameters, self.MAX_TILES, context),
            endpoint=(self.parameterAsString(parameters, self.ENDPOINT, context) or catalog.BUCKET_URL).strip(),
            cache_dir=cache_dir(),
            timeout=self.parameterAsDouble(parameters, self.TIMEOUT, context),
        )

    def _extent_wgs84(self, parameters, context):
        if not parameters.get(self.EXTENT):
            return None
        wgs84 = QgsCoordinateReferenceSystem(WGS84)
        rectangle = self.parameterAsExtentGeometry(parameters, self.EXTENT, context, wgs84).boundingBox()
        if rectangle.isEmpty():
            raise QgsProcessingException(self.tr("The extent is empty: draw it on the map or leave it empty."))
        return (rectangle.xMinimum(), rectangle.yMinimum(), rectangle.xMaximum(), rectangle.yMaximum())

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        try:
            request = self._request(parameters, context)
        except catalog.CatalogError as error:  # a model's steps are not checked beforehand
            raise QgsProcessingException(str(error)) from error
        created = missing_folders(request.output_folder)
        request.output_folder.mkdir(parents=True, exist_ok=True)
        feedback.pushInfo(self.tr(f"{request.dataset} {request.split} {request.aoi}: {', '.join(request.products)} "
                                  f"from {request.endpoint}"))

        try:
            result = self._fetch(request, feedback)
        except BaseException:
            remove_empty_folders(created)  # a failed run leaves no empty folder of its own behind
            raise
        if result is None:  # canceled
            remove_empty_folders(created)
            return {}
        for warning in result.warnings:
            feedback.pushWarning(warning)
        self._report(result, feedback)
        if self.parameterAsBoolean(parameters, self.LOAD_OUTPUTS, context):
            self._fetched = (request, result)
        outputs = {self.OUTPUT_FOLDER: str(request.output_folder),
                   self.TILE_COUNT: len({f.tile_id for f in result.complete}), **_first_tile(result)}
        if parameters.get(self.TILE_INDEX) is not None:
            outputs[self.TILE_INDEX] = self._write_index(parameters, context, result)
        return outputs

    def _fetch(self, request, feedback):
        from ..core.fetch import s3
        from ..core.fetch.fetch import fetch

        try:
            return self.run_core(feedback, fetch, request, canceled=self.tr(
                "Canceled. Partial downloads are kept and resume on the next run."))
        except s3.TimedOutError as error:
            raise QgsProcessingException(error.sentence(self.TIMEOUT)) from error
        except (s3.S3Error, catalog.CatalogError) as error:
            raise QgsProcessingException(str(error)) from error

    def postProcessAlgorithm(self, context, feedback):  # noqa: N802
        if self._fetched is not None and context.project() is not None:
            request, result = self._fetched
            add_fetched_layers(context.project(), request, result, feedback)
        return {}

    def _report(self, result, feedback):
        by_status = {}
        for file in result.files:
            by_status.setdefault(file.status, []).append(file)
        summary = ", ".join(f"{len(files)} {status}" for status, files in sorted(by_status.items()))
        feedback.pushInfo(self.tr(f"{len(result.tile_ids)} tiles, {len(result.files)} files: {summary}."))
        for file in by_status.get("failed", []):
            feedback.reportError(self.tr(f"{file.key}: {file.error}"))
        if by_status.get("failed"):
            feedback.pushWarning(self.tr("Some files failed; run again to retry them (complete files are kept)."))

    def _write_index(self, parameters, context, result):
        fields = fields_of(("tile_id", FieldType.String), ("product", FieldType.String),
                           ("key", FieldType.String), ("local_path", FieldType.String),
                           ("status", FieldType.String), ("size_bytes", FieldType.LongLong),
                           ("error", FieldType.String))
        sink, dest_id = self.parameterAsSink(parameters, self.TILE_INDEX, context, fields,
                                             QgsWkbTypes.Type.Polygon, QgsCoordinateReferenceSystem(WGS84))
        if sink is None:
            raise QgsProcessingException(self.invalidSinkError(parameters, self.TILE_INDEX))
        for file in result.files:
            feature = QgsFeature(fields)
            if file.footprint is not None:
                feature.setGeometry(from_shapely(file.footprint))
            feature.setAttributes([file.tile_id, file.product, file.key,
                                   str(file.local_path) if file.local_path else None, file.status, file.size,
                                   file.error or None])
            sink.addFeature(feature, QgsFeatureSink.Flag.FastInsert)
        return dest_id


def missing_folders(folder: Path) -> list:
    """``folder`` and those of its parents that are not there yet, deepest first: what ``mkdir(parents=True)``
    creates."""
    missing = []
    for path in (folder.absolute(), *folder.absolute().parents):
        if path.exists():
            break
        missing.append(path)
    return missing


def remove_empty_folders(created: list) -> None:
    """After a run that failed or was canceled: the folders this run created (``missing_folders``, deepest first)
    that hold no file, with the empty folders the run made inside them. A file, and any folder that was there
    before the run, stays."""
    if not created:
        return
    for root, _, _ in sorted(os.walk(created[0]), key=lambda entry: entry[0].count(os.sep), reverse=True):
        with contextlib.suppress(OSError):  # not empty: a partial download to resume, or a file of someone else
            Path(root).rmdir()
    for folder in created[1:]:
        with contextlib.suppress(OSError):
            folder.rmdir()


def _first_tile(result) -> dict:
    """IMAGERY and LABELS: the files of the first tile with complete imagery (labels may be missing)."""
    for tile_id in result.tile_ids:
        files = [f for f in result.complete if f.tile_id == tile_id]
        imagery = [f for f in files if not catalog.is_label(f.product)]
        if imagery:
            labels = [f for f in files if catalog.is_label(f.product)]
            outputs = {FetchTiles.IMAGERY: str(imagery[0].local_path)}
            if labels:
                outputs[FetchTiles.LABELS] = str(labels[0].local_path)
            return outputs
    return {}

