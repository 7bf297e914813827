"""spacenet:scoref1: score building footprints against truth with the SpaceNet F1 metric."""

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsFeature,
    QgsFeatureSink,
    QgsGeometry,
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsWkbTypes,
)

from ..core import choices, dependencies
from ..core.score.scored_fields import GROUP_NAME
from ..qgis_adapter.qt_compat import FieldType
from ..qgis_adapter.sinks import fields_of
from ..qgis_adapter.styles import ScoreStatusStyler
from .base import SpaceNetAlgorithm, reporting

# Enum index -> core.score.f1 matching rule. The order is API: scripts pass the index.
PROGRESS_READ_END, PROGRESS_SCORE_END = 30.0, 90.0  # reading, then scoring, then writing


class ScoreF1(SpaceNetAlgorithm):
    TRUTH = "TRUTH"
    PROPOSALS = "PROPOSALS"
    IOU_THRESHOLD = "IOU_THRESHOLD"
    MATCHING = "MATCHING"
    ORDER_FIELD = "ORDER_FIELD"
    GROUP_FIELD = "GROUP_FIELD"
    MIN_AREA_TRUTH = "MIN_AREA_TRUTH"
    MIN_AREA_PROPOSALS = "MIN_AREA_PROPOSALS"
    OUTPUT = "OUTPUT"
    OUTPUT_TABLE = "OUTPUT_TABLE"
    OUTPUT_HTML = "OUTPUT_HTML"

    GROUP = "evaluation"
    REQUIRES = ("numpy", "shapely")

    def name(self):
        return "scoref1"

    def displayName(self):  # noqa: N802
        return self.tr("Score building footprints (SpaceNet F1)")

    def shortHelpString(self):  # noqa: N802
        return self.tr(
            "<p>Scores proposed building footprints against truth footprints with the SpaceNet building metric: "
            "each proposal is matched to at most one truth polygon by intersection over union (IoU); a match at "
            "or above the IoU threshold is a true positive (TP), an unmatched proposal a false positive (FP), an "
            "unmatched truth polygon a false negative (FN). TP, FP and FN are summed over all groups (images or "
            "tiles) before precision, recall and F1 = 2PR/(P+R) are computed.</p>"
            "<p><b>Truth</b>, <b>Proposals</b>: polygon layers in any CRS (proposals are transformed to the "
            "truth's CRS), or SpaceNet challenge CSV files (ImageId, BuildingId, PolygonWKT_Pix[, Confidence]; "
            "pixel coordinates, one group per ImageId, 'POLYGON EMPTY' rows for images with no building). Both "
            "inputs must be of the same kind.</p>"
            "<p><b>IoU threshold</b>: 0.5 in every SpaceNet challenge.</p>"
            "<p><b>Matching</b>: <i>greedy, IoU ≥ threshold</i> as the SpaceNet evaluator; <i>greedy, IoU > "
            "threshold</i> as solaris; <i>optimal</i> is the maximum-weight bipartite matching, which can find more "
            "matches than greedy only below a threshold of 0.5.</p>"
            "<p><b>Proposal order field</b>: greedy matching takes proposals in this field's descending order "
            "(a confidence score); empty means input order, as the SpaceNet evaluator.</p>"
            "<p><b>Group field</b>: the image or tile id field, with the same name in both layers; polygons are "
            "matched only within their group. Empty means one group. Challenge CSVs always group by ImageId.</p>"
            "<p><b>Minimum area</b>: truth polygons smaller than this, and proposals not larger than it, are left "
            "out (solaris' SN2 scoring used 20 px²). Units: m² for layers (measured on the ellipsoid for geographic "
            "CRSs, never in degrees, and for projections that stretch areas where the data lie, such as Web "
            "Mercator; planar in UTM), pixels² for challenge CSVs.</p>"
            "<p>Invalid polygons are repaired (their polygonal part is kept) and empty or zero-area ones skipped; "
            "the log reports every repair and skip.</p>"
            "<p><b>Outputs</b>: the scored layer (proposals and missed truth polygons with <i>status</i> TP/FP/FN, "
            "<i>iou</i>, <i>match_id</i> and <i>group_name</i>; styled green/red/blue), a per-group table "
            "(<i>level</i>, <i>group_name</i>, counts and scores; per-AOI and overall rows; a run without groups "
            "has the overall row only), an HTML report that says what was scored (inputs, feature counts, CRS, "
            "time, plugin and model versions) with charts, and the numbers PRECISION, RECALL, F1, TP, FP, FN for the "
            "next step of a model. Each file output is optional: left out, only the numbers are computed.</p>"
        )

    def initAlgorithm(self, config=None):  # noqa: N802
        polygon_or_table = [QgsProcessing.SourceType.TypeVectorPolygon, QgsProcessing.SourceType.TypeVector]
        self.addParameter(QgsProcessingParameterFeatureSource(self.TRUTH, self.tr("Truth"), polygon_or_table))
        self.addParameter(QgsProcessingParameterFeatureSource(self.PROPOSALS, self.tr("Proposals"), polygon_or_table))
        self.addParameter(
            QgsProcessingParameterNumber(
                self.IOU_THRESHOLD, self.tr("IoU threshold"), QgsProcessingParameterNumber.Type.Double,
                defaultValue=0.5, minValue=0.0, maxValue=1.0,
            )
        )
        self.addParameter(
            QgsProcessingParameterEnum(
                self.MATCHING, self.tr("Matching"),
                options=[
                    self.tr("Greedy, IoU ≥ threshold (SpaceNet evaluator)"),
                    self.tr("Greedy, IoU > threshold (solaris)"),
                    self.tr("Optimal (maximum-weight bipartite matching)"),
                ],
                defaultValue=0,
            )
        )
        self.addParameter(
            QgsProcessingParameterField(
                self.ORDER_FIELD, self.tr("Proposal order field (confidence, descending)"),
                parentLayerParameterName=self.PROPOSALS, type=QgsProcessingParameterField.DataType.Numeric,
                optional=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterField(
                self.GROUP_FIELD, self.tr("Group field (image or tile id, in both layers)"),
                parentLayerParameterName=self.TRUTH, optional=True,
            )
        )
        for key, label in ((self.MIN_AREA_TRUTH, "Minimum truth area"), (self.MIN_AREA_PROPOSALS,
                                                                          "Minimum proposal area")):
            parameter = QgsProcessingParameterNumber(
                key, self.tr(f"{label} (m² for layers, pixels² for CSVs)"),
                QgsProcessingParameterNumber.Type.Double, defaultValue=0.0, minValue=0.0,
            )
            parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
            self.addParameter(parameter)
        self.addParameter(
            QgsProcessingParameterFeatureSink(
                self.OUTPUT, self.tr("Scored footprints"), QgsProcessing.SourceType.TypeVectorPolygon,
                optional=True, createByDefault=True,  # left out (qgis_process, a model): the numbers only
            )
        )
        self.addParameter(
            QgsProcessingParameterFeatureSink(
                self.OUTPUT_TABLE, self.tr("Scores per group"), QgsProcessing.SourceType.TypeVector, optional=True
            )
        )
        self.addParameter(
            QgsProcessingParameterFileDestination(
                self.OUTPUT_HTML, self.tr("Report"), self.tr("HTML files (*.html)"), optional=True
            )
        )
        for key, label in (("PRECISION", "Precision"), ("RECALL", "Recall"), ("F1", "F1"),
                           ("TP", "True positives"), ("FP", "False positives"), ("FN", "False negatives")):
            self.addOutput(QgsProcessingOutputNumber(key, self.tr(label)))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        # numpy and shapely are imported on first use, not at plugin start (the plugin loads without them).
        from ..core.run_facts import local_time
        from ..core.score import f1, f1_report
        from . import polygon_inputs

        started = local_time()
        options = f1.F1Options(
            iou_threshold=self.parameterAsDouble(parameters, self.IOU_THRESHOLD, context),
            matching=choices.MATCHING[self.parameterAsEnum(parameters, self.MATCHING, context)],
            min_area_truth=self.parameterAsDouble(parameters, self.MIN_AREA_TRUTH, context),
            min_area_proposals=self.parameterAsDouble(parameters, self.MIN_AREA_PROPOSALS, context),
        )
        reader = polygon_inputs.InputReader(self, parameters, context, feedback, options, self.TRUTH, self.PROPOSALS,
                                            self.GROUP_FIELD, self.ORDER_FIELD)
        truth, proposals = reader.read()
        if feedback.isCanceled():
            return {}
        feedback.pushInfo(self.tr(f"Scoring {len(proposals.geometries)} proposals against "
                                  f"{len(truth.geometries)} truth polygons in {reader.group_count} group(s)."))
        try:
            result = self.run_core(feedback, f1.score, truth, proposals, options, low=PROGRESS_READ_END,
                                   high=PROGRESS_SCORE_END)
        except ImportError as error:  # scipy, needed by optimal matching only
            raise QgsProcessingException(dependencies.describe_missing([error.name or "scipy"])) from error
        if result is None:
            return {}  # nothing written yet: a cancelled run leaves no output behind
        notes = _cleaning_notes(result)
        for note in notes:
            feedback.pushWarning(note)

        outputs = {}
        if parameters.get(self.OUTPUT) is not None:
            outputs[self.OUTPUT] = self._write_scored(parameters, context, feedback, reader, result)
            if outputs[self.OUTPUT] is None:
                return {}  # canceled while writing it: nothing was left behind
        if parameters.get(self.OUTPUT_TABLE) is not None:
            outputs[self.OUTPUT_TABLE] = self._write_table(parameters, context, result)
        html_path = self.parameterAsFileOutput(parameters, self.OUTPUT_HTML, context)
        if html_path:
            facts = self._facts(parameters, context, reader, started)
            f1_report.write(html_path, f1_report.render(result, options, notes=notes, facts=facts))
            outputs[self.OUTPUT_HTML] = html_path
        total = result.total
        outputs.update(PRECISION=total.precision, RECALL=total.recall, F1=total.f1, TP=total.tp, FP=total.fp,
                       FN=total.fn)
        feedback.pushInfo(self.tr(f"TP {total.tp}, FP {total.fp}, FN {total.fn}: precision {total.precision:.4f}, "
                                  f"recall {total.recall:.4f}, F1 {total.f1:.4f}"))
        feedback.setProgress(100)
        return outputs

    def _facts(self, parameters, context, reader, started):
        """What the report says was scored (``core.run_facts.RunFacts``)."""
        from . import polygon_inputs, report_facts

        pixels = polygon_inputs.CSV in reader.kinds.values()
        inputs = [
            report_facts.input_facts(self, parameters, key, role, reader.sources[key], context,
                                     crs=report_facts.PIXELS if reader.kinds.get(key) == polygon_inputs.CSV else None)
            for key, role in ((self.TRUTH, "Truth"), (self.PROPOSALS, "Proposals"))
        ]
        compared_in = ("pixel coordinates (challenge CSV)" if pixels else
                       f"{report_facts.crs_text(reader.crs) or 'no CRS'} (the truth's; proposals transformed to it)")
        if reader.model_pairs is not None:  # read with the proposals, in bulk
            from ..core.run_facts import models_from

            models = models_from(reader.model_pairs)
        else:
            models = report_facts.model_facts(self, parameters, self.PROPOSALS, reader.sources[self.PROPOSALS],
                                              context)
        return report_facts.run_facts(self, started, inputs, compared_in, reader.group_description(), models)

    def _sink(self, parameters, name, context, fields, geometry_type, crs):
        """The sink of output ``name``; a CSV file writes its numbers unquoted (score_fields.CSV_TABLE_OPTIONS)."""
        from .score_fields import table_layer_options

        destination = self.parameterAsOutputLayer(parameters, name, context)
        sink, dest_id = self.parameterAsSink(parameters, name, context, fields, geometry_type, crs,
                                             layerOptions=table_layer_options(destination))
        if sink is None:
            raise QgsProcessingException(self.invalidSinkError(parameters, name))
        return sink, dest_id

    def _write_scored(self, parameters, context, feedback, reader, result):
        """The scored layer: proposals that were scored, then truth polygons missed, with their original geometry.
        A GeoPackage file is written in bulk (``core.vector_bulk``), anything else feature by feature through
        QGIS's sink, with the same features. Returns its destination; None when the run was canceled meanwhile."""
        from ..core import vector_bulk
        from ..core.progress import Canceled
        from ..qgis_adapter import bulk_io

        rows = ScoredRows(reader, result)
        path = bulk_io.geopackage_destination(parameters.get(self.OUTPUT), context)
        dest_id = None
        if path:
            try:
                vector_bulk.write_polygons(
                    path, bulk_io.geopackage_layer_name(path), bulk_io.crs_wkt(reader.crs), rows.shapes(),
                    [vector_bulk.Field(name, kind, values) for (name, _, kind), values in zip(SCORED_FIELDS,
                                                                                             rows.columns())],
                    report=reporting(feedback, PROGRESS_SCORE_END, 99), is_canceled=feedback.isCanceled,
                    wkbs=rows.wkbs())
            except Canceled:
                return None
            except vector_bulk.BulkUnavailable as error:
                feedback.pushDebugInfo(self.tr(f"The scored layer is written feature by feature: {error}."))
            else:
                dest_id = bulk_io.register_vector_output(self, parameters, self.OUTPUT, context)
        if dest_id is None:
            dest_id = self._write_scored_features(parameters, context, reader, rows)
        if context.willLoadLayerOnCompletion(dest_id):
            context.layerToLoadOnCompletionDetails(dest_id).setPostProcessor(ScoreStatusStyler.shared())
        return dest_id

    def _write_scored_features(self, parameters, context, reader, rows):
        fields = fields_of(*((name, kind) for name, kind, _ in SCORED_FIELDS))
        sink, dest_id = self._sink(parameters, self.OUTPUT, context, fields, QgsWkbTypes.Type.MultiPolygon,
                                   reader.crs)
        for geometry, attributes in zip(rows.qgis_geometries(), zip(*rows.columns())):
            feature = QgsFeature(fields)
            geometry = QgsGeometry(geometry)
            geometry.convertToMultiType()
            feature.setGeometry(geometry)
            feature.setAttributes(list(attributes))
            sink.addFeature(feature, QgsFeatureSink.Flag.FastInsert)
        return dest_id

    def _write_table(self, parameters, context, result):
        """One row per group, per AOI (when group ids name SpaceNet AOIs) and the total; a run without groups has
        the total row only (its one group would repeat it with an empty name)."""
        from ..core.html_report import ungrouped
        from ..core.score.scored_fields import GROUP_NAME

        fields = fields_of(("level", FieldType.String), (GROUP_NAME, FieldType.String),
                           *((name, FieldType.LongLong) for name in ("tp", "fp", "fn")),
                           *((name, FieldType.Double) for name in ("precision", "recall", "f1")))
        sink, dest_id = self._sink(parameters, self.OUTPUT_TABLE, context, fields, QgsWkbTypes.Type.NoGeometry,
                                   QgsCoordinateReferenceSystem())
        rows = []
        if not ungrouped(result.groups):
            rows += [("group", key, counts) for key, counts in result.groups.items()]
            rows += [("aoi", key, counts) for key, counts in result.aoi_sums().items()]
        rows.append(("total", "", result.total))
        for level, key, counts in rows:
            feature = QgsFeature(fields)
            feature.setAttributes([level, key, counts.tp, counts.fp, counts.fn,
                                   counts.precision, counts.recall, counts.f1])
            sink.addFeature(feature, QgsFeatureSink.Flag.FastInsert)
        return dest_id


# The scored layer's fields: (name, QGIS type, core.vector_bulk kind).
SCORED_FIELDS = (("status", FieldType.String, "string"), ("iou", FieldType.Double, "real"),
                 ("match_id", FieldType.LongLong, "integer64"), (GROUP_NAME, FieldType.String, "string"),
                 ("layer", FieldType.String, "string"), ("source_id", FieldType.LongLong, "integer64"))


class ScoredRows:
    """The features of the scored layer, whichever way it is written: the proposals that were scored (not
    skipped), then the truth polygons missed (FN), each with its status, IoU, the id of its match, group, side and
    own id."""

    def __init__(self, reader, result):
        import numpy as np

        from ..core.score.f1 import SKIPPED

        self.parts = (
            ("proposal", np.flatnonzero(result.proposal_status != SKIPPED), result.proposal_status,
             result.proposal_iou, result.proposal_match, reader.proposals, reader.truth),
            ("truth", np.flatnonzero(result.truth_status == "FN"), result.truth_status, result.truth_iou,
             result.truth_match, reader.truth, reader.proposals),
        )

    def columns(self) -> list:
        """The values of each of SCORED_FIELDS, one list each (None for null)."""
        import numpy as np

        columns = [[] for _ in SCORED_FIELDS]
        for layer, indices, status, iou, match, own, other in self.parts:
            matched = match[indices]
            match_ids = other.ids[np.maximum(matched, 0)] if len(other.ids) else np.zeros(len(indices), np.int64)
            ious = iou[indices]
            columns[0] += [str(value) for value in status[indices].tolist()]
            columns[1] += _with_nulls(ious, np.isnan(ious))
            columns[2] += _with_nulls(match_ids, matched < 0)
            columns[3] += [str(value) for value in own.groups[indices].tolist()]
            columns[4] += [layer] * len(indices)
            columns[5] += own.ids[indices].tolist()
        return columns

    def shapes(self):
        """The shapely geometries as read (not repaired)."""
        import numpy as np

        return np.concatenate([own.polygon_set.geometries[indices] for _, indices, *_, own, _ in self.parts])

    def wkbs(self):
        """The WKB the geometries were read from in bulk (None for those read feature by feature)."""
        import numpy as np

        return np.concatenate([own.wkbs[indices] if own.wkbs is not None else np.full(len(indices), None, object)
                               for _, indices, *_, own, _ in self.parts])

    def qgis_geometries(self):
        for _, indices, *_, own, _ in self.parts:
            for index in indices.tolist():
                yield own.qgis_geometry(index)


def _with_nulls(values, null) -> list:
    """``values`` (a numpy array) as Python numbers, None where ``null``."""
    objects = values.astype(object)  # Python ints and floats, as tolist() gives them
    objects[null] = None
    return objects.tolist()


def _cleaning_notes(result) -> list:
    notes = []
    for side, report in (("truth", result.truth_cleaning), ("proposal", result.proposal_cleaning)):
        for count, what in (
            (report.repaired, "invalid {side} polygon(s) repaired (make_valid, polygonal part kept)"),
            (report.non_polygonal_parts_dropped, "non-polygonal part(s) dropped from {side} geometries"),
            (report.skipped_null_or_empty, "null or empty {side} geometries skipped"),
            (report.skipped_zero_area, "{side} geometries with no area skipped"),
            (report.skipped_small, "{side} polygon(s) below the minimum area left out"),
        ):
            if count:
                notes.append(f"{count} " + what.format(side=side))
    return notes
