"""spacenet:scoreapls: score a road network against truth with APLS, the SpaceNet roads metric."""

from qgis.core import (
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsFeature,
    QgsFeatureRequest,
    QgsFeatureSink,
    QgsProcessing,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsWkbTypes,
)

from ..qgis_adapter.geometry import to_shapely, to_wkb
from ..qgis_adapter.qt_compat import FieldType
from ..qgis_adapter.sinks import fields_of
from .base import SpaceNetAlgorithm, features
from .score_fields import group_field, group_label

PROGRESS_READ_END = 20.0


class ScoreApls(SpaceNetAlgorithm):
    TRUTH = "TRUTH"
    PROPOSALS = "PROPOSALS"
    MAX_SNAP = "MAX_SNAP"
    CONTROL_SPACING = "CONTROL_SPACING"
    GROUP_FIELD = "GROUP_FIELD"
    OUTPUT_TABLE = "OUTPUT_TABLE"
    OUTPUT_HTML = "OUTPUT_HTML"
    APLS = "APLS"
    APLS_GT_TO_PROP = "APLS_GT_TO_PROP"
    APLS_PROP_TO_GT = "APLS_PROP_TO_GT"

    GROUP = "evaluation"
    REQUIRES = ("numpy", "scipy", "shapely", "rasterio")

    def name(self):
        return "scoreapls"

    def displayName(self):  # noqa: N802
        return self.tr("Score road network (APLS)")

    def shortHelpString(self):  # noqa: N802
        return self.tr(
            "<p>Scores a proposed road network against truth centerlines with APLS (Average Path Length "
            "Similarity), the SpaceNet roads metric. Both line layers become graphs (lines meet where they share a "
            "vertex; roads that only cross, as on a bridge, do not). Control points are placed at every junction "
            "and end and along every road; each one is snapped onto the other network when it lies within the "
            "snapping distance. For every pair of control points the shortest path in one network is compared with "
            "the path between the same places in the other: <i>min(1, |L - L'| / L)</i>, a missing place or path "
            "costing 1. <b>APLS_GT_TO_PROP</b> takes the truth's control points onto the proposal (missing roads "
            "cost), <b>APLS_PROP_TO_GT</b> the proposal's onto the truth (spurious roads cost); <b>APLS</b> is "
            "their harmonic mean, averaged over groups when a group field is given. Paths are weighted by length; "
            "lengths are measured in metres in the UTM zone of the data, whatever the layers' CRS (proposals are "
            "first transformed to the truth's CRS). An empty proposal scores 0.</p>"
            "<p><b>Truth</b>, <b>Proposals</b>: line layers (e.g. SpaceNet road labels and the output of "
            "<i>Extract road network</i>).</p>"
            "<p><b>Maximum snapping distance</b> (m): 4 in the SpaceNet challenges (the reference's "
            "max_snap_dist).</p>"
            "<p><b>Control point spacing</b> (m): the largest gap between control points along a road; 50 in the "
            "challenges.</p>"
            "<p><b>Group field</b>: the tile or image id field, with the same name in both layers; each group is "
            "scored on its own and APLS is the mean of the groups, as in the challenge. Empty: one group.</p>"
            "<p><b>Outputs</b>: APLS and its halves as numbers for the next step of a model, a table (<i>level</i> "
            "group with <i>group_name</i>, and their mean; a run without groups has one row, level total), and an "
            "HTML report that says what was scored (inputs, feature counts, CRS, time, plugin and model versions).</p>"
        )

    def initAlgorithm(self, config=None):  # noqa: N802
        from ..core.score.apls_options import CONTROL_SPACING_M, MAX_SNAP_M

        lines = [QgsProcessing.SourceType.TypeVectorLine]
        self.addParameter(QgsProcessingParameterFeatureSource(self.TRUTH, self.tr("Truth (road centerlines)"), lines))
        self.addParameter(QgsProcessingParameterFeatureSource(self.PROPOSALS, self.tr("Proposals (road network)"),
                                                              lines))
        self.addParameter(QgsProcessingParameterNumber(
            self.MAX_SNAP, self.tr("Maximum snapping distance, m"), QgsProcessingParameterNumber.Type.Double,
            defaultValue=MAX_SNAP_M, minValue=0.01, maxValue=1000.0))
        self.addParameter(QgsProcessingParameterNumber(
            self.CONTROL_SPACING, self.tr("Control point spacing, m"), QgsProcessingParameterNumber.Type.Double,
            defaultValue=CONTROL_SPACING_M, minValue=1.0, maxValue=10000.0))
        self.addParameter(QgsProcessingParameterField(
            self.GROUP_FIELD, self.tr("Group field (tile or image id, in both layers)"),
            parentLayerParameterName=self.TRUTH, optional=True))
        self.addParameter(QgsProcessingParameterFeatureSink(
            self.OUTPUT_TABLE, self.tr("APLS per group"), QgsProcessing.SourceType.TypeVector, optional=True))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT_HTML, self.tr("Report"), self.tr("HTML files (*.html)"), optional=True))
        for key, label in ((self.APLS, "APLS"), (self.APLS_GT_TO_PROP, "APLS truth to proposal"),
                           (self.APLS_PROP_TO_GT, "APLS proposal to truth")):
            self.addOutput(QgsProcessingOutputNumber(key, self.tr(label)))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        from ..core.run_facts import local_time
        from ..core.score import apls, apls_report

        started = local_time()
        truth_source = self._source(parameters, self.TRUTH, context)
        proposal_source = self._source(parameters, self.PROPOSALS, context)
        crs = truth_source.sourceCrs()
        if not crs.isValid() and truth_source.featureCount() != 0:  # an empty truth is said as such below
            raise QgsProcessingException(self.tr("The truth layer has no CRS: set one (Layer Properties > Source) "
                                                 "so that lengths can be measured in metres."))
        group_name = self.parameterAsString(parameters, self.GROUP_FIELD, context) or ""
        fields = {}  # each layer's own spelling of the group field (older layers: "group")
        for role, source in (("truth", truth_source), ("proposal", proposal_source)):
            fields[role] = group_field(source, group_name) if group_name else None
            if group_name and not fields[role]:
                raise QgsProcessingException(self.tr(
                    f"The {role} layer has no field '{group_name}': both layers need the group field."))
        truth, truth_groups = self._read(truth_source, crs, fields["truth"], context, feedback, 0.0)
        proposals, proposal_groups = self._read(proposal_source, crs, fields["proposal"], context, feedback, 0.5)
        if feedback.isCanceled():
            return {}
        if not truth:
            raise QgsProcessingException(self.tr("The truth layer has no lines: nothing to score against."))
        if not proposals:
            feedback.pushWarning(self.tr("The proposal layer has no lines: APLS is 0."))
        feedback.setProgress(PROGRESS_READ_END)

        options = apls.AplsOptions(max_snap_m=self.parameterAsDouble(parameters, self.MAX_SNAP, context),
                                   control_spacing_m=self.parameterAsDouble(parameters, self.CONTROL_SPACING, context))
        try:
            groups = self.run_core(
                feedback, apls.score_by_group,
                truth, truth_groups if group_name else None, proposals, proposal_groups if group_name else None,
                options, crs=crs.toWkt(QgsCoordinateReferenceSystem.WktVariant.WKT_PREFERRED),
                low=PROGRESS_READ_END, high=99.0)
        except apls.AplsInputError as error:
            raise QgsProcessingException(str(error)) from error
        if groups is None:
            return {}  # nothing written yet

        outputs = {self.APLS: groups.mean_apls, self.APLS_GT_TO_PROP: groups.mean_gt_to_prop,
                   self.APLS_PROP_TO_GT: groups.mean_prop_to_gt}
        if parameters.get(self.OUTPUT_TABLE) is not None:
            outputs[self.OUTPUT_TABLE] = self._write_table(parameters, context, groups)
        html_path = self.parameterAsFileOutput(parameters, self.OUTPUT_HTML, context)
        if html_path:
            facts = self._facts(parameters, context, truth_source, proposal_source, crs, group_name, fields, started)
            apls_report.write(html_path, apls_report.render(groups, options, facts=facts))
            outputs[self.OUTPUT_HTML] = html_path
        feedback.pushInfo(self.tr(
            f"APLS {groups.mean_apls:.4f} (truth to proposal {groups.mean_gt_to_prop:.4f}, proposal to truth "
            f"{groups.mean_prop_to_gt:.4f}) over {len(groups.groups)} group(s)."))
        feedback.setProgress(100)
        return outputs

    def _facts(self, parameters, context, truth_source, proposal_source, crs, group_name, fields, started):
        """What the report says was scored (``core.run_facts.RunFacts``)."""
        from . import report_facts

        inputs = [report_facts.input_facts(self, parameters, key, role, source, context)
                  for key, role, source in ((self.TRUTH, "Truth", truth_source),
                                            (self.PROPOSALS, "Proposals", proposal_source))]
        compared_in = (f"{report_facts.crs_text(crs)} (the truth's; proposals transformed to it), lengths in metres "
                       "in the UTM zone of each group")
        group = group_name
        if group_name and fields["truth"] != fields["proposal"]:
            group = f"{fields['truth']} (truth), {fields['proposal']} (proposals)"
        models = report_facts.model_facts(self, parameters, self.PROPOSALS, proposal_source, context)
        return report_facts.run_facts(self, started, inputs, compared_in, group, models)

    def _source(self, parameters, name, context):
        source = self.parameterAsSource(parameters, name, context)
        if source is None:
            raise QgsProcessingException(self.invalidSourceError(parameters, name))
        geometry_type = QgsWkbTypes.geometryType(source.wkbType())
        if geometry_type != QgsWkbTypes.GeometryType.LineGeometry and source.featureCount() != 0:
            # (an empty GeoJSON has no geometry type: it is an empty input, scored, not refused)
            holds = {QgsWkbTypes.GeometryType.PointGeometry: "holds points",
                     QgsWkbTypes.GeometryType.PolygonGeometry: "holds polygons"}.get(geometry_type, "has no geometry")
            raise QgsProcessingException(self.tr(
                f"{name.lower().capitalize()}: '{source.sourceName()}' {holds}; APLS compares road centerlines: "
                "choose a line layer."))
        return source

    def _read(self, source, crs, field, context, feedback, start) -> tuple:
        """(shapely lines in ``crs``, group keys); null and empty geometries skipped. The bar moves over the half
        of the reading's share from ``start`` (0 or 0.5); the user's cancel stops it early."""
        request = QgsFeatureRequest().setDestinationCrs(crs, context.transformContext())
        if crs.isValid() and not source.sourceCrs().isValid() and source.featureCount() != 0:
            raise QgsProcessingException(self.tr(
                f"The proposal layer has no CRS while the truth is in {crs.authid() or crs.description()}: set its "
                "CRS (Layer Properties > Source) so that both are compared in one."))
        if source.sourceCrs() != crs:
            # fail early with a clear message if the transform is impossible
            QgsCoordinateTransform(source.sourceCrs(), crs, context.transformContext())
        wkbs, groups = [], []
        low = PROGRESS_READ_END * start
        for feature in features(source, request, feedback, low, low + PROGRESS_READ_END / 2):
            wkb = to_wkb(feature.geometry())
            if wkb is None:
                continue
            wkbs.append(wkb)
            groups.append(group_label(feature[field]) if field else "")
        return list(to_shapely(wkbs)), groups

    def _write_table(self, parameters, context, groups) -> str:
        """``level`` "group" rows and their "mean"; a run without groups has one row, ``level`` "total"."""
        from ..core.html_report import ungrouped
        from ..core.score.scored_fields import GROUP_NAME
        from .score_fields import table_layer_options

        fields = fields_of(("level", FieldType.String), (GROUP_NAME, FieldType.String),
                           *((name, FieldType.Double)
                             for name in ("apls", "apls_gt_to_prop", "apls_prop_to_gt", "truth_km", "proposal_km")),
                           *((name, FieldType.LongLong)
                             for name in ("control_points_truth", "control_points_proposal")))
        destination = self.parameterAsOutputLayer(parameters, self.OUTPUT_TABLE, context)
        sink, dest_id = self.parameterAsSink(parameters, self.OUTPUT_TABLE, context, fields,
                                             QgsWkbTypes.Type.NoGeometry, QgsCoordinateReferenceSystem(),
                                             layerOptions=table_layer_options(destination))
        if sink is None:
            raise QgsProcessingException(self.invalidSinkError(parameters, self.OUTPUT_TABLE))
        level = "total" if ungrouped(groups.groups) else "group"
        for name, r in groups.groups.items():
            feature = QgsFeature(fields)
            feature.setAttributes([level, name, r.apls, r.gt_to_prop, r.prop_to_gt, r.length_truth_m / 1000,
                                   r.length_proposal_m / 1000, r.control_points_truth, r.control_points_proposal])
            sink.addFeature(feature, QgsFeatureSink.Flag.FastInsert)
        if level == "group":
            feature = QgsFeature(fields)
            feature.setAttributes(["mean", "", groups.mean_apls, groups.mean_gt_to_prop, groups.mean_prop_to_gt,
                                   None, None, None, None])
            sink.addFeature(feature, QgsFeatureSink.Flag.FastInsert)
        return dest_id
