"""Object F1 of a model on the held-out chips, by the plugin's own engine and metric, at the model's defaults.

Each held-out chip is extracted as a user would extract it (``core.extract``, the card's defaults), over the chip
and a margin around it so its edge roofs have their context; a footprint counts when its centroid lies on a
known pixel of a held-out chip, and so does a truth footprint. Both sides are compared on the model grid's pixels
(IoU does not depend on the units), one to one at IoU >= 0.5, as the SpaceNet metric does.
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely
from shapely.affinity import affine_transform

from ..extract import modelcard, onnx_file, preview
from ..extract.building_options import EXTRACTION, BuildingOptions
from ..extract.extract import ExtractRequest, extract_buildings
from ..progress import check, silent, span
from ..score import f1
from .chips import ChipSet

CONTEXT_PX = 64


@dataclass(frozen=True)
class HeldOutScore:
    f1: float
    precision: float
    recall: float
    tp: int
    fp: int
    fn: int

    def as_card(self) -> dict:
        return dict(object_f1=round(self.f1, 4), precision=round(self.precision, 4), recall=round(self.recall, 4),
                    tp=self.tp, fp=self.fp, fn=self.fn)


# What tuning tries for the adapted model: a fine-tuned model is less sure of itself than its base for a while,
# so its footprints' mean probability (min_score) and the threshold move. The interior threshold stays the base's:
# tuned too, it raised the F1 on the chips it was tuned on but moved nothing held out (Kampala's east half), and
# each option added to the grid gives an area's few tuning chips more ways to be overfitted.
TUNED_THRESHOLDS = (0.3, 0.4, 0.5)
TUNED_MIN_SCORES = (0.5, 0.6, 0.7, 0.8)


def tune(model_path: str, raster_path: str, chips: ChipSet, tuning: list, truth: list, device: str = "auto",
         cpu_threads: int = 0, report=silent, is_canceled=None) -> tuple[dict, HeldOutScore]:
    """The threshold and min_score that give the best F1 on the ``tuning`` chips, and that score; ties go to the
    stricter min_score. The model runs once per chip: its probabilities are vectorised by the engine's own rules at
    each threshold, and each min_score is then a filter on those footprints (min_score only drops finished
    footprints by their score: core.extract.buildings.finish)."""
    defaults = BuildingOptions.of_card(modelcard.read_card(*onnx_file.read(model_path)), EXTRACTION)
    truth_px = _truth_on(truth, chips, tuning)
    results = []
    with tempfile.TemporaryDirectory(prefix="spacenet-tune-") as work:
        rasters = _probabilities(model_path, raster_path, chips, tuning, device, cpu_threads,
                                 span(report, 0.0, 0.8), is_canceled, Path(work))
        for number, threshold in enumerate(TUNED_THRESHOLDS):
            check(is_canceled)
            options = dataclasses.replace(defaults, threshold=threshold, min_score=0.0)
            found = []
            for i, path in rasters:
                run = preview.footprints_of_raster(path, options)
                found += [(geometry, run.scores[k]) for k, geometry in _on_chips(run.geometries, chips, [i])]
            for min_score in TUNED_MIN_SCORES:
                kept = [geometry for geometry, score in found if score >= min_score]
                results.append((_compare(truth_px, kept), dict(threshold=threshold, min_score=min_score)))
            report(0.8 + 0.2 * (number + 1) / len(TUNED_THRESHOLDS), None)
    best = max(results, key=lambda r: (round(r[0].f1, 12), r[1]["min_score"]))
    return best[1], best[0]


def _probabilities(model_path, raster_path, chips: ChipSet, indices: list, device, cpu_threads, report, is_canceled,
                   work: Path) -> list:
    """(chip, its probability raster in ``work``) for each chip ``indices``, extracted as a user would, over the chip
    and a margin of context."""
    rasters = []
    for number, i in enumerate(indices):
        path = work / f"chip_{i}.tif"
        request = dataclasses.replace(_request(model_path, raster_path, chips, i, device, cpu_threads, None),
                                      probability_path=str(path), work_dir=str(work))
        extract_buildings(request, span(report, number / len(indices), (number + 1) / len(indices)), is_canceled)
        rasters.append((i, path))
    return rasters


def score(model_path: str, raster_path: str, chips: ChipSet, held_out: list, truth: list, device: str = "auto",
          cpu_threads: int = 0, report=silent, is_canceled=None, options=None) -> HeldOutScore:
    """F1 of ``model_path``'s footprints (at its card's defaults, or ``options``) against ``truth`` (polygons in
    the raster's CRS) on the ``held_out`` chips of ``chips``."""
    found = _found(model_path, raster_path, chips, held_out, device, cpu_threads, report, is_canceled, options)
    return _compare(_truth_on(truth, chips, held_out), [geometry for geometry, _ in found])


def _found(model_path, raster_path, chips: ChipSet, indices: list, device, cpu_threads, report, is_canceled,
           options) -> list:
    """(footprint in grid pixels, its score) for each footprint the model finds on the chips ``indices``, each chip
    extracted as a user would, over the chip and a margin of context."""
    found = []
    for number, i in enumerate(indices):
        request = _request(model_path, raster_path, chips, i, device, cpu_threads, options)
        part = span(report, number / len(indices), (number + 1) / len(indices))
        # a roof in two chips' margins is found twice: each run keeps what lies on its own chip
        run = extract_buildings(request, part, is_canceled)
        on_chip = _on_chips([footprint.geometry for footprint in run.footprints], chips, [i])
        found += [(geometry, run.footprints[k].score) for k, geometry in on_chip]
    return found


def _request(model_path, raster_path, chips: ChipSet, i: int, device, cpu_threads, options) -> ExtractRequest:
    """The extraction of chip ``i`` and a margin of context around it, as a user would run it."""
    left, bottom, right, top = chips.bounds(i)
    margin_x, margin_y = CONTEXT_PX * chips.grid.transform.a, CONTEXT_PX * abs(chips.grid.transform.e)
    return ExtractRequest(raster_path=raster_path, model_path=model_path, bands=chips.bands,
                          extent=(left - margin_x, bottom - margin_y, right + margin_x, top + margin_y),
                          device=device, cpu_threads=cpu_threads, scheduler="in-process", options=dict(options or {}))


def _truth_on(truth: list, chips: ChipSet, indices: list) -> list:
    return [geometry for _, geometry in _on_chips([shapely.make_valid(g) for g in truth if g is not None], chips,
                                                  indices)]


def _compare(truth_px: list, found_px: list) -> HeldOutScore:
    counts = f1.score(f1.PolygonSet(np.array(truth_px, dtype=object)),
                      f1.PolygonSet(np.array(found_px, dtype=object))).total
    return HeldOutScore(counts.f1, counts.precision, counts.recall, counts.tp, counts.fp, counts.fn)


def _on_chips(geometries, chips: ChipSet, indices: list) -> list:
    """(position in ``geometries``, the geometry in grid pixels) for each geometry (map coordinates) whose centroid
    lies on a known pixel of one of the chips ``indices``."""
    to_pixels = (~chips.grid.transform).to_shapely()
    kept = []
    for position, geometry in enumerate(geometries):
        if geometry is None or geometry.is_empty:
            continue
        in_pixels = affine_transform(geometry, to_pixels)
        centre = in_pixels.centroid
        for i in indices:
            row, col = int(np.floor(centre.y)) - chips.origins[i][0], int(np.floor(centre.x)) - chips.origins[i][1]
            if 0 <= row < chips.size and 0 <= col < chips.size and chips.known[i, row, col]:
                kept.append((position, in_pixels))
                break
    return kept
