"""spacenet:calibrate: the building threshold and minimum area that score best against truth (SpaceNet F1)."""


from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsFeatureRequest,
    QgsFeatureSink,
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingFeatureSource,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsRectangle,
    QgsWkbTypes,
)

from ..qgis_adapter.geometry import to_shapely, to_wkb
from ..qgis_adapter.layers import NotARasterFileError
from ..qgis_adapter.qt_compat import FieldType
from ..qgis_adapter.sinks import fields_of
from ..qgis_adapter.web_sources import dataset_name
from .base import SpaceNetAlgorithm, features

PROGRESS_READ_END, PROGRESS_CALIBRATE_END = 5.0, 97.0  # reading the truth, calibrating, writing


class Calibrate(SpaceNetAlgorithm):
    PROBABILITY = "PROBABILITY"
    TRUTH = "TRUTH"
    EXTENT = "EXTENT"
    THRESHOLDS = "THRESHOLDS"
    MIN_AREAS = "MIN_AREAS"
    SIMPLIFY = "SIMPLIFY"
    REGULARIZE = "REGULARIZE"
    OUTPUT_TABLE = "OUTPUT_TABLE"
    OUTPUT_HTML = "OUTPUT_HTML"
    BEST_THRESHOLD = "BEST_THRESHOLD"
    BEST_MIN_AREA = "BEST_MIN_AREA"
    BEST_F1 = "BEST_F1"

    GROUP = "evaluation"
    REQUIRES = ("numpy", "scipy", "shapely", "rasterio")

    def name(self):
        return "calibrate"

    def displayName(self):  # noqa: N802
        return self.tr("Calibrate threshold and minimum area")

    def shortHelpString(self):  # noqa: N802
        return self.tr(
            "<p>Finds the building threshold and minimum area that give the best SpaceNet F1 (IoU ≥ 0.5) against "
            "truth footprints, to use in <i>Extract building footprints</i> on imagery like the labelled area. "
            "Each threshold is turned into footprints once, exactly as the extraction does it; each minimum area "
            "then only drops the smaller footprints before scoring. Ties go to the higher threshold, then to the "
            "smaller minimum area.</p>"
            "<p><b>Building probability</b>: the probability raster written by <i>Extract building footprints</i> "
            "(its <i>Building probability</i> output: 0 to 1). Touching buildings are split as the extraction split "
            "them: with its <i>interior probability</i> band at the interior threshold it used; a raster of one band "
            "(from another tool) with distance seeds. A Byte raster is read as value / 255; nodata counts as no "
            "building.</p>"
            "<p><b>Truth</b>: polygon layer of the buildings of the labelled area, in any CRS (transformed to the "
            "raster's).</p>"
            "<p><b>Labelled area</b>: where the truth is complete: footprints and truth outside it are not "
            "scored, and those cut by its edge are clipped. Empty: the truth layer's extent, within the raster. "
            "Give it when the labels cover more than their buildings' extent (a whole SpaceNet tile).</p>"
            "<p><b>Thresholds</b>: probabilities to try, as a list (0.3, 0.4, 0.5) or a range start:stop:step "
            "(0.2:0.8:0.05, stop included), or both. Empty: 0.2 to 0.8 in steps of 0.05. Each threshold costs one "
            "vectorisation of the raster.</p>"
            "<p><b>Minimum areas</b> (m²): the same syntax. Empty: 0, 2, 5, 10, 15, 20, 30, 50. Cheap: no "
            "vectorisation each.</p>"
            "<p><b>Simplify</b> (m), <b>Regularize</b> (advanced): the outline settings you will extract with "
            "(the extraction's default simplification is 0.5 m): they change the shapes, so the IoU.</p>"
            "<p><b>Outputs</b>: a table with one row per threshold and minimum area (footprints, TP, FP, FN, "
            "precision, recall, F1, best), an HTML report with the F1 curves (one line per minimum area), and "
            "the numbers BEST_THRESHOLD, BEST_MIN_AREA and BEST_F1 for the next step of a model.</p>"
            "<p>Cancel stops at the next block or scoring step and writes nothing.</p>"
        )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer(self.PROBABILITY, self.tr("Building probability")))
        self.addParameter(QgsProcessingParameterFeatureSource(self.TRUTH, self.tr("Truth footprints"),
                                                              [QgsProcessing.SourceType.TypeVectorPolygon]))
        self.addParameter(QgsProcessingParameterExtent(self.EXTENT, self.tr("Labelled area (empty: the truth's "
                                                                            "extent)"), optional=True))
        self.addParameter(QgsProcessingParameterString(
            self.THRESHOLDS, self.tr("Thresholds (list or start:stop:step; empty: 0.2:0.8:0.05)"), optional=True))
        self.addParameter(QgsProcessingParameterString(
            self.MIN_AREAS, self.tr("Minimum areas, m² (empty: 0, 2, 5, 10, 15, 20, 30, 50)"), optional=True))
        simplify = QgsProcessingParameterNumber(self.SIMPLIFY, self.tr("Simplify outlines, m (as you will extract)"),
                                                QgsProcessingParameterNumber.Type.Double, defaultValue=0.5,
                                                minValue=0.0, maxValue=10.0)
        regularize = QgsProcessingParameterBoolean(self.REGULARIZE, self.tr("Regularize (as you will extract)"),
                                                   defaultValue=False)
        for advanced in (simplify, regularize):
            advanced.setFlags(advanced.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
            self.addParameter(advanced)
        self.addParameter(QgsProcessingParameterFeatureSink(
            self.OUTPUT_TABLE, self.tr("Scores per threshold and minimum area"), QgsProcessing.SourceType.TypeVector,
            optional=True))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT_HTML, self.tr("Report"), self.tr("HTML files (*.html)"), optional=True))
        for key, label in ((self.BEST_THRESHOLD, "Best threshold"), (self.BEST_MIN_AREA, "Best minimum area, m²"),
                           (self.BEST_F1, "Best F1")):
            self.addOutput(QgsProcessingOutputNumber(key, self.tr(label)))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        # numpy, shapely and rasterio are imported on first use, not at plugin start.
        from ..core.extract import calibrate, calibrate_report, raster
        from ..core.extract.building_options import BuildingOptions

        layer = self._probability_layer(parameters, context, feedback)
        try:
            thresholds = calibrate.parse_values(self.parameterAsString(parameters, self.THRESHOLDS, context),
                                                self.THRESHOLDS, 0.0, 1.0, calibrate.DEFAULT_THRESHOLDS,
                                                low_inclusive=False)
            min_areas = calibrate.parse_values(self.parameterAsString(parameters, self.MIN_AREAS, context),
                                               self.MIN_AREAS, 0.0, float("inf"), calibrate.DEFAULT_MIN_AREAS_M2)
        except calibrate.CalibrationError as error:
            raise QgsProcessingException(str(error)) from error
        extent = self._extent(parameters, context, layer)
        truth = self._read_truth(parameters, context, feedback, layer, extent)
        if feedback.isCanceled():
            return {}
        if extent is None:
            extent = self._truth_extent(truth, layer)
        feedback.pushInfo(self.tr(
            f"Calibrating on {len(truth)} truth polygons: {len(thresholds)} threshold(s) x {len(min_areas)} minimum "
            f"area(s); one vectorisation per threshold."
        ))
        options = BuildingOptions(simplify_m=self.parameterAsDouble(parameters, self.SIMPLIFY, context),
                                  regularize=self.parameterAsBoolean(parameters, self.REGULARIZE, context))
        try:
            result = self.run_core(
                feedback, calibrate.calibrate_raster, dataset_name(layer), truth, extent=extent,
                thresholds=thresholds, min_areas_m2=min_areas, options=options,
                canceled=self.tr("Canceled: nothing was written."), low=PROGRESS_READ_END, high=PROGRESS_CALIBRATE_END)
        except (calibrate.CalibrationError, raster.RasterError) as error:
            raise QgsProcessingException(str(error)) from error
        if result is None:
            return {}

        notes = self._notes(result)
        for note in notes:
            feedback.pushWarning(note)
        best = result.best
        outputs = {self.BEST_THRESHOLD: best.threshold, self.BEST_MIN_AREA: best.min_area_m2, self.BEST_F1: best.f1}
        if parameters.get(self.OUTPUT_TABLE) is not None:
            outputs[self.OUTPUT_TABLE] = self._write_table(parameters, context, result)
        html_path = self.parameterAsFileOutput(parameters, self.OUTPUT_HTML, context)
        if html_path:
            calibrate_report.write(html_path, calibrate_report.render(result, notes=notes))
            outputs[self.OUTPUT_HTML] = html_path
        for threshold in result.thresholds:
            row = ", ".join(f"{t.f1:.3f}" for t in result.by_min_area(threshold))
            feedback.pushInfo(f"F1 at threshold {threshold:g} (minimum areas "
                              f"{', '.join(f'{a:g}' for a in result.min_areas_m2)} m²): {row}")
        feedback.pushInfo(self.tr(
            f"Best: threshold {best.threshold:g}, minimum area {best.min_area_m2:g} m²: F1 {best.f1:.4f} "
            f"(precision {best.precision:.4f}, recall {best.recall:.4f}; TP {best.tp}, FP {best.fp}, FN {best.fn})."
        ))
        feedback.setProgress(100)
        return outputs

    def _probability_layer(self, parameters, context, feedback):
        layer = self.raster_parameter(parameters, self.PROBABILITY, context)
        try:
            path = dataset_name(layer)
        except NotARasterFileError as error:
            raise QgsProcessingException(str(error)) from error
        if not layer.crs().isValid():
            raise QgsProcessingException(self.tr(
                f"'{layer.name()}' has no coordinate reference system: assign one (Layer Properties > Source)."
            ))
        from ..core.extract import probability, raster

        try:
            bands = probability.locate(path, first_of_many=True)
        except (probability.ProbabilityError, raster.RasterError) as error:
            raise QgsProcessingException(str(error)) from error
        if bands.interior_band is not None:
            feedback.pushInfo(self.tr(
                f"Touching buildings are split with band {bands.interior_band} (interior probability) at "
                f"{bands.interior_threshold:g}, as the extraction that wrote '{layer.name()}' split them."
            ))
        if bands.settings.get("min_score"):
            feedback.pushInfo(self.tr(
                f"Footprints with a score under {bands.settings['min_score']:g} are dropped, as the extraction that "
                f"wrote '{layer.name()}' dropped them."
            ))
        if bands.interior_band is None and layer.bandCount() > 1:
            feedback.pushWarning(self.tr(
                f"'{layer.name()}' has {layer.bandCount()} bands: band {bands.band} is read as the building "
                "probability."
            ))
        return layer

    def _extent(self, parameters, context, layer):
        """The labelled area in the raster's CRS, or None when not given."""
        if self.given_extent(parameters, self.EXTENT, context, layer.crs()) is None:
            return None
        rect = self.parameterAsExtent(parameters, self.EXTENT, context, layer.crs())
        if not rect.intersects(layer.extent()):
            raise QgsProcessingException(self.tr(
                f"The labelled area ({rect.toString(2)}) does not overlap the probability raster "
                f"({layer.extent().toString(2)}, in {layer.crs().authid() or 'its CRS'})."
            ))
        return rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum()

    def _read_truth(self, parameters, context, feedback, layer, extent) -> list:
        """Truth polygons as shapely geometries in the raster's CRS (within the labelled area when given)."""
        source = self.parameterAsSource(parameters, self.TRUTH, context)
        if source is None:
            raise QgsProcessingException(self.invalidSourceError(parameters, self.TRUTH))
        if QgsWkbTypes.geometryType(source.wkbType()) != QgsWkbTypes.GeometryType.PolygonGeometry:
            raise QgsProcessingException(self.tr(
                f"TRUTH must be a polygon layer, but its geometries are {QgsWkbTypes.displayString(source.wkbType())}"
                ": buildings are scored as polygons."
            ))
        if source.featureCount() == 0:
            raise QgsProcessingException(self.tr(
                "TRUTH has no features: calibration needs the buildings of a labelled area."
            ))
        request = QgsFeatureRequest()
        request.setDestinationCrs(layer.crs(), context.transformContext())
        if extent is not None:
            request.setFilterRect(QgsRectangle(*extent))
        wkbs = []
        for feature in features(source, request, feedback, 0.0, PROGRESS_READ_END,
                                QgsProcessingFeatureSource.Flag.FlagSkipGeometryValidityChecks):
            wkb = to_wkb(feature.geometry())
            if wkb is not None:
                wkbs.append(wkb)
        if feedback.isCanceled():
            return []
        if not wkbs:
            where = "in the labelled area" if extent is not None else "with a geometry"
            raise QgsProcessingException(self.tr(
                f"TRUTH has no polygon {where}: calibration needs the buildings of a labelled area."
            ))
        return list(to_shapely(wkbs))

    def _truth_extent(self, truth, layer) -> tuple:
        """The truth's extent in the raster's CRS; a clear error when it misses the raster."""
        import shapely

        xmin, ymin, xmax, ymax = (float(v) for v in shapely.total_bounds(truth))
        raster_extent = layer.extent()
        if not QgsRectangle(xmin, ymin, xmax, ymax).intersects(raster_extent):
            raise QgsProcessingException(self.tr(
                f"The truth polygons ({xmin:.2f}, {ymin:.2f} - {xmax:.2f}, {ymax:.2f} in the raster's CRS) do not "
                f"overlap the probability raster ({raster_extent.toString(2)}): check that both cover the same place."
            ))
        return xmin, ymin, xmax, ymax

    def _notes(self, result) -> list:
        notes = []
        if result.truth_outside:
            notes.append(self.tr(f"{result.truth_outside} truth polygon(s) outside the labelled area or without area "
                                 "left out."))
        if result.best.f1 == 0:
            notes.append(self.tr("No pair matched any truth building at IoU ≥ 0.5: check that the probability "
                                 "raster and the truth show the same place and time, and the raster's "
                                 "georeferencing."))
        return notes

    def _write_table(self, parameters, context, result):
        fields = fields_of(("threshold", FieldType.Double), ("min_area_m2", FieldType.Double),
                           ("footprints", FieldType.LongLong), ("tp", FieldType.LongLong),
                           ("fp", FieldType.LongLong), ("fn", FieldType.LongLong),
                           ("precision", FieldType.Double), ("recall", FieldType.Double),
                           ("f1", FieldType.Double), ("best", FieldType.Int))
        sink, dest_id = self.parameterAsSink(parameters, self.OUTPUT_TABLE, context, fields,
                                             QgsWkbTypes.Type.NoGeometry, QgsCoordinateReferenceSystem())
        if sink is None:
            raise QgsProcessingException(self.invalidSinkError(parameters, self.OUTPUT_TABLE))
        for trial in result.trials:
            feature = QgsFeature(fields)
            feature.setAttributes([trial.threshold, trial.min_area_m2, trial.proposals, trial.tp, trial.fp, trial.fn,
                                   trial.precision, trial.recall, trial.f1, int(trial == result.best)])
            sink.addFeature(feature, QgsFeatureSink.Flag.FastInsert)
        return dest_id
