"""What a scoring report says was scored, gathered from QGIS: each input's name, source, feature count and CRS, and
the model that made the proposals where our extraction recorded it. ``core.run_facts`` holds the values,
``core.html_report`` renders them.

Our extraction records its model in every feature (fields ``model``, ``model_version`` and ``device``) and, in a
layer it loads into a project, in the layer's metadata keywords (``spacenet``: ``model=...``). A layer without them
gets no model line: the report never guesses one.
"""

from __future__ import annotations

from pathlib import Path

from qgis.core import NULL, QgsFeatureRequest

from ..core.run_facts import InputFacts, RunFacts, models_from, plugin_version

MODEL_FIELD, MODEL_VERSION_FIELD, DEVICE_FIELD = "model", "model_version", "device"
METADATA_KEYWORDS = "spacenet"
PIXELS = "none: pixel coordinates (challenge CSV)"


def crs_text(crs) -> str:
    """``EPSG:32616 - WGS 84 / UTM zone 16N``; "" for no CRS."""
    return crs.userFriendlyIdentifier() if crs is not None and crs.isValid() else ""


def input_facts(algorithm, parameters, key: str, role: str, source, context, crs: str | None = None) -> InputFacts:
    """The facts of the input parameter ``key`` read as ``source``; ``crs`` replaces the source's CRS text (a
    challenge CSV has pixel coordinates, not a CRS)."""
    layer = algorithm.parameterAsVectorLayer(parameters, key, context)
    name = layer.name() if layer is not None else source.sourceName()
    origin = _absolute(layer.publicSource()) if layer is not None else ""  # publicSource: no passwords in a report
    count = source.featureCount()
    return InputFacts(role=role, name=name, source=origin, feature_count=count if count >= 0 else None,
                      crs=crs_text(source.sourceCrs()) if crs is None else crs)


def model_facts(algorithm, parameters, key: str, source, context) -> tuple:
    """The models (``core.run_facts.ModelFacts``) that made the features of input ``key``, from the fields our
    extraction writes, else from the layer's metadata keywords; empty when neither says."""
    fields = source.fields()
    model, version, device = (fields.lookupField(name) for name in (MODEL_FIELD, MODEL_VERSION_FIELD, DEVICE_FIELD))
    if model >= 0 and device >= 0:  # both: a field named "model" alone could be anyone's
        request = QgsFeatureRequest().setFlags(QgsFeatureRequest.Flag.NoGeometry)
        request.setSubsetOfAttributes([index for index in (model, version) if index >= 0])
        pairs = {(_value(feature[model]), _value(feature[version]) if version >= 0 else None)
                 for feature in source.getFeatures(request)}
        return models_from(pairs)
    layer = algorithm.parameterAsVectorLayer(parameters, key, context)
    if layer is None:
        return ()
    recorded = dict(keyword.split("=", 1) for keyword in layer.metadata().keywords().get(METADATA_KEYWORDS, [])
                    if "=" in keyword)
    return models_from([(recorded.get(MODEL_FIELD), recorded.get(MODEL_VERSION_FIELD))])


def run_facts(algorithm, started: str, inputs, compared_in: str, group_field: str, models=()) -> RunFacts:
    """``started``: ``core.run_facts.local_time()`` when the run began."""
    return RunFacts(algorithm=f"spacenet:{algorithm.name()}", started=started, plugin_version=plugin_version(),
                    inputs=tuple(inputs), compared_in=compared_in, group_field=group_field, models=tuple(models))


def _absolute(source: str) -> str:
    """A file source with its path made absolute (a report is read from elsewhere); any other source unchanged."""
    path, separator, options = source.partition("|")
    return str(Path(path).resolve()) + separator + options if path and Path(path).is_file() else source


def _value(value):
    return None if value is None or value == NULL else value
