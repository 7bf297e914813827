"""How each output kind of the extraction (core.extract.extract.OUTPUT_KINDS) is written: its sinks, their fields
and styles, its numeric outputs and what the log says was found. A new kind adds its entry to WRITERS."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from qgis.core import QgsCoordinateReferenceSystem, QgsProcessingException, QgsWkbTypes

from ..qgis_adapter.qt_compat import FieldType
from ..qgis_adapter.sinks import add_feature, fields_of
from ..qgis_adapter.styles import BuildingStyler, RoadNodeStyler, RoadStyler


@dataclass(frozen=True)
class Writer:
    found: Callable  # (result) -> what was found, for the log
    write: Callable  # (algorithm, parameters, context, result) -> the algorithm's outputs of this kind


# Every feature says what made it: the scoring reports read these fields (processing_provider/report_facts.py).
MODEL_FIELDS = (("model", FieldType.String), ("model_version", FieldType.String),
                ("device", FieldType.String))


def _model_values(result) -> list:
    return [result.model_name, result.model_version or None, result.device]


def _buildings_found(result) -> str:
    return f"{len(result.footprints)} buildings"


def _write_buildings(algorithm, parameters, context, result) -> dict:
    fields = fields_of(("id", FieldType.Int), ("score", FieldType.Double),
                       ("area_m2", FieldType.Double), *MODEL_FIELDS)
    crs = QgsCoordinateReferenceSystem.fromWkt(result.crs_wkt)
    sink, dest_id = algorithm.parameterAsSink(parameters, algorithm.OUTPUT, context, fields,
                                              QgsWkbTypes.Type.MultiPolygon, crs)
    if sink is None:
        raise QgsProcessingException(algorithm.invalidSinkError(parameters, algorithm.OUTPUT))
    for number, footprint in enumerate(result.footprints, start=1):
        add_feature(sink, fields, footprint.geometry, [number, round(footprint.score, 4),
                                                       round(footprint.area_m2, 2), *_model_values(result)],
                    multi=True)
    _style(algorithm, context, {dest_id: BuildingStyler.for_run(result.settings)})
    return {algorithm.OUTPUT: dest_id, algorithm.BUILDING_COUNT: len(result.footprints)}


def _roads_found(result) -> str:
    edges = result.network.edges
    return (f"{len(edges)} road segments, {_length_km(result):.2f} km, "
            f"{len(result.network.nodes)} nodes")


def _length_km(result) -> float:
    return sum(edge.length_m for edge in result.network.edges) / 1000


def _write_roads(algorithm, parameters, context, result) -> dict:
    crs = QgsCoordinateReferenceSystem.fromWkt(result.crs_wkt)
    fields = fields_of(("id", FieldType.Int), ("length_m", FieldType.Double),
                       ("start_node", FieldType.Int), ("end_node", FieldType.Int), *MODEL_FIELDS)
    sink, lines_id = algorithm.parameterAsSink(parameters, algorithm.OUTPUT, context, fields,
                                               QgsWkbTypes.Type.LineString, crs)
    if sink is None:
        raise QgsProcessingException(algorithm.invalidSinkError(parameters, algorithm.OUTPUT))
    for number, edge in enumerate(result.network.edges, start=1):
        add_feature(sink, fields, edge.geometry, [number, round(edge.length_m, 2), edge.start + 1, edge.end + 1,
                                                  *_model_values(result)])
    outputs = {algorithm.OUTPUT: lines_id, algorithm.ROAD_COUNT: len(result.network.edges),
               algorithm.ROAD_LENGTH_KM: round(_length_km(result), 4)}
    stylers = {lines_id: RoadStyler.for_run(result.settings)}

    fields = fields_of(("id", FieldType.Int), ("degree", FieldType.Int), ("kind", FieldType.String))
    sink, nodes_id = algorithm.parameterAsSink(parameters, algorithm.OUTPUT_NODES, context, fields,
                                               QgsWkbTypes.Type.Point, crs)
    if sink is not None:  # None: not asked for
        for number, node in enumerate(result.network.nodes, start=1):
            kind = "dead end" if node.degree == 1 else "junction" if node.degree >= 3 else "through"
            add_feature(sink, fields, node.geometry, [number, node.degree, kind])
        outputs[algorithm.OUTPUT_NODES] = nodes_id
        stylers[nodes_id] = RoadNodeStyler.shared()
    _style(algorithm, context, stylers)
    return outputs


def _style(algorithm, context, stylers: dict) -> None:
    """Each layer loaded when the run completes gets its styler; the algorithm keeps them alive until then."""
    algorithm.stylers = list(stylers.values())
    for dest_id, styler in stylers.items():
        if context.willLoadLayerOnCompletion(dest_id):
            context.layerToLoadOnCompletionDetails(dest_id).setPostProcessor(styler)


WRITERS = {
    "buildings": Writer(found=_buildings_found, write=_write_buildings),
    "roads": Writer(found=_roads_found, write=_write_roads),
}
