"""Building probabilities to map-ready footprints.

Threshold, fill small holes, split touching buildings (each pixel to the nearest seed of the model's interior
channel when it has one, else a watershed from seeds deep inside, by the distance to the building edge),
polygonise, then drop tiny objects, simplify and optionally square the corners of rectilinear buildings.

Large grids are processed in blocks with a halo: a building wholly inside a block's window belongs
to the block that holds its centre, so each is found once and exactly as a whole-grid run finds it;
a building cut by the window edge is clipped to the block's core and its pieces are joined again
across block borders.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely
import shapely.affinity
from rasterio import features
from rasterio.transform import Affine
from scipy import ndimage
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components
from shapely.geometry import Polygon, box, shape
from skimage.segmentation import watershed

from .. import progress
from .building_options import HOLE_AREA_M2, BuildingOptions  # noqa: F401 - callers know them from here
from .raster import to_map  # noqa: F401 - grid pixels to the map, as callers know it from here
from .tiling import halo_blocks

SEED_DEPTH_M = 1.0  # distance-transform seeds: pixels at least this far inside a building
RECTANGLE_FILL = 0.85  # a building filling this share of its minimum rectangle becomes that rectangle
BLOCK = 2048  # block core size in grid pixels
FLAT_COST_PX = 32  # the watershed cost of distance seeds, clip(254 - 8 * distance, 0, 254), is 0 from 31.75 px on
HALO = 160  # pixels read around a block: buildings smaller than this are never cut
FOUR_CONNECTED = ndimage.generate_binary_structure(2, 1)


@dataclass
class Footprint:
    geometry: object  # shapely geometry in grid pixel coordinates until placed on the map
    probability_sum: float
    pixels: int

    @property
    def score(self) -> float:
        return self.probability_sum / self.pixels if self.pixels else 0.0


def segment(prob: np.ndarray, interior, options: BuildingOptions, pixel_m: float) -> np.ndarray:
    """Labels [H, W] (0 = background, 1..n = buildings) from probabilities in [0, 1]."""
    mask = prob >= options.threshold
    if not mask.any():
        return np.zeros(prob.shape, dtype=np.int32)
    if options.hole_area_m2 > 0:
        mask = _fill_small_holes(mask, int(options.hole_area_m2 / pixel_m**2))
    if interior is not None:
        seeds, _ = ndimage.label(mask & (interior >= options.interior_threshold))
    else:
        depth = max(1.0, SEED_DEPTH_M / pixel_m)
        # The whole-array distance transform is the costly step: seeds come from an erosion and distances from
        # windows instead, with the same results; only a mask without background has nothing to measure from.
        whole = ndimage.distance_transform_edt(mask) if mask.all() else None
        seeds, _ = ndimage.label(whole >= depth if whole is not None else _at_least(mask, depth))
    components, n_components = ndimage.label(mask)
    labels = components.copy()
    for window, region, markers in seeded_components(components, n_components, seeds):
        if interior is not None:
            split = _nearest_seed(markers, region)
        else:
            distance = whole[window] if whole is not None else _distance_in(mask, window, region)
            cost = np.clip(254 - distance * 8, 0, 254)
            split = _watershed(cost.astype(np.uint8), markers, region)
        # split parts are numbered after every component, by their seed: numbers stay unique
        labels[window][region] = split[region] + n_components
    return labels


def seeded_components(components: np.ndarray, n_components: int, seeds: np.ndarray):
    """The components that hold several seeds, as (window, region mask, seed markers in the region): a component
    with one seed or none is one building; only those with several need splitting."""
    seed_component = np.zeros(seeds.max() + 1, dtype=np.int64)
    seed_component[seeds[seeds > 0]] = components[seeds > 0]
    seed_count = np.bincount(seed_component[1:], minlength=n_components + 1)
    objects = ndimage.find_objects(components)
    for component in np.nonzero(seed_count > 1)[0]:
        window = objects[component - 1]
        region = components[window] == component
        yield window, region, np.where(region, seeds[window], 0).astype(np.int32)


def _at_least(mask: np.ndarray, depth: float) -> np.ndarray:
    """``distance_transform_edt(mask) >= depth``: no background pixel closer than ``depth``, i.e. the erosion
    by the disc of offsets nearer than ``depth`` (outside the array is not background, as for the transform).
    The disc is a stack of horizontal runs, so the erosion is a few dozen shifted ANDs."""
    reach = int(math.ceil(depth))
    # the transform's distances are float64 square roots of integer sums: the same test gives the same disc
    half = {dy: max(dx for dx in range(reach + 1) if math.sqrt(dy * dy + dx * dx) < depth)
            for dy in range(-reach, reach + 1) if math.sqrt(dy * dy) < depth}
    pad = max(max(half.values()), max(abs(dy) for dy in half))
    height, width = mask.shape
    padded = np.pad(mask, pad, constant_values=True)
    run = padded[:, pad : pad + width].copy()  # run of half-width w: every pixel within w along the row
    deep = np.ones(mask.shape, dtype=bool)
    for w in range(max(half.values()) + 1):
        if w:
            run &= padded[:, pad - w : pad - w + width]
            run &= padded[:, pad + w : pad + w + width]
        for dy in (dy for dy, half_width in half.items() if half_width == w):
            deep &= run[pad + dy : pad + dy + height]
    return deep


def _distance_in(mask: np.ndarray, window: tuple, region: np.ndarray) -> np.ndarray:
    """``distance_transform_edt(mask)[window]`` on ``region`` as far as the watershed's cost tells distances
    apart, from a window widened by a margin.

    A window's transform sees fewer background pixels, so it is never below the whole one; where it is at most
    the margin, the nearest background pixel lies within the margin, inside the window, and the two agree. And
    ``segment``'s cost, ``clip(254 - 8 * distance, 0, 254)``, is 0 from ``FLAT_COST_PX`` on: beyond a
    margin of that many pixels both are that far or farther, and the cost is the same."""
    rows, cols = window
    height, width = mask.shape
    # a building's distances rarely exceed half its window's short side: then one transform is exact
    margin = min(FLAT_COST_PX, max(8, min(rows.stop - rows.start, cols.stop - cols.start) // 2 + 2))
    while True:
        r0, c0 = max(rows.start - margin, 0), max(cols.start - margin, 0)
        r1, c1 = min(rows.stop + margin, height), min(cols.stop + margin, width)
        whole = (r0, c0, r1, c1) == (0, 0, height, width)
        local = mask[r0:r1, c0:c1]
        if local.all():  # no background within the margin: every distance is beyond it
            if whole or margin >= FLAT_COST_PX:
                return np.full((rows.stop - rows.start, cols.stop - cols.start), np.inf)
            margin = FLAT_COST_PX
            continue
        distance = ndimage.distance_transform_edt(local)
        distance = distance[rows.start - r0 : rows.stop - r0, cols.start - c0 : cols.stop - c0]
        farthest = float(distance[region].max())
        if whole or farthest <= margin or margin >= FLAT_COST_PX:
            return distance
        margin = min(FLAT_COST_PX, int(math.ceil(farthest)))


def _watershed(cost: np.ndarray, markers: np.ndarray, region: np.ndarray) -> np.ndarray:
    # Outside the region is the most expensive ground, and scipy's watershed_ift treats the array as
    # wrapping around at its edges: a 1 px frame of that ground keeps opposite edges apart.
    cost = np.pad(np.where(region, cost, 255).astype(np.uint8), 1, constant_values=255)
    # four-connected flooding, as the labelling: a label never jumps a diagonal into another building
    return ndimage.watershed_ift(cost, np.pad(markers, 1), structure=FOUR_CONNECTED)[1:-1, 1:-1]


def _nearest_seed(markers: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Each pixel of the region to the interior seed nearest to it through the region. Interiors are the
    buildings shrunk by the same margin, so two touching buildings part midway between their interiors, where
    their shared wall is. (Flooding along the building probability instead puts that border wherever the
    plateau of a roof happens to be crossed first: on the validation areas, object F1 0.622 against 0.638.)"""
    # pixels flooded in order of their distance to the nearest seed; four-connected, as the labelling
    return watershed(ndimage.distance_transform_edt(markers == 0), markers, mask=region, connectivity=1)


def _fill_small_holes(mask: np.ndarray, max_pixels: int) -> np.ndarray:
    holes, n = ndimage.label(~mask)
    if n == 0:
        return mask
    sizes = np.bincount(holes.ravel())
    small = sizes <= max_pixels
    small[0] = False
    # a "hole" that reaches the array edge is outside, not a hole
    edge = np.unique(np.concatenate([holes[0], holes[-1], holes[:, 0], holes[:, -1]]))
    small[edge] = False
    return mask | small[holes]


def _label_polygons(labels: np.ndarray, row0: int, col0: int) -> dict:
    """label -> polygon in grid pixel coordinates (the largest part when diagonal pixels split it)."""
    parts: dict = {}
    for geojson, value in features.shapes(
        labels, mask=labels > 0, connectivity=4, transform=Affine.translation(col0, row0)
    ):
        parts.setdefault(int(value), []).append(shape(geojson))
    return {label: max(polys, key=lambda p: p.area) for label, polys in parts.items()}


def footprints_on_grid(read, height, width, options, pixel_m, block=BLOCK, halo=HALO, report=None,
                       is_canceled=None, keep=None):
    """Footprints of a whole grid, read in blocks: ``read(row, col, h, w) -> (prob, interior or None)``.

    Each Footprint (grid pixel coordinates) goes through ``keep(footprint) -> result or None`` as soon as it
    is complete, so only finished results are held (raw pixel outlines of a city would fill the memory).
    ``report(fraction, None)`` after each block; raises progress.Canceled when ``is_canceled()`` turns True.
    """
    keep = keep or (lambda footprint: footprint)
    whole: list = []
    pieces: list = []  # (block number, Footprint) clipped to the block core
    all_blocks = halo_blocks(height, width, block, halo)
    step = progress.counted(report)
    for number, piece in enumerate(all_blocks):
        progress.check(is_canceled)
        found, cut = block_footprints(piece, *piece.read_window(read), options, pixel_m, (height, width))
        whole.extend(result for result in map(keep, found) if result is not None)
        pieces.extend((number, piece) for piece in cut)
        step(number + 1, len(all_blocks))
    return whole + joined_pieces(pieces, keep)


def block_footprints(piece, prob, interior, options, pixel_m, grid_shape) -> tuple:
    """One block of ``footprints_on_grid``: (footprints it owns whole, pieces cut by its window's edge), from the
    probabilities read over its window. A pure function of its inputs, so a block may run anywhere."""
    labels = segment(prob, interior, options, pixel_m)
    if not labels.any():
        return [], []
    (r0, r1), (c0, c1), (wr0, wr1), (wc0, wc1) = piece.rows, piece.cols, piece.window_rows, piece.window_cols
    return _collect(labels, prob, (wr0, wc0, wr1, wc1), (r0, c0, r1, c1), grid_shape)


def joined_pieces(pieces, keep) -> list:
    """``keep`` of the buildings that ``pieces`` ((block number, Footprint) in block order) make across block
    borders, those it keeps."""
    return [result for result in map(keep, _join_pieces(pieces)) if result is not None]


def _collect(labels, prob, window, core, grid_shape) -> tuple:
    """(footprints this block owns whole, pieces cut by the window edge clipped to the block core)."""
    whole, pieces = [], []
    wr0, wc0, wr1, wc1 = window
    r0, c0, r1, c1 = core
    size = labels.max() + 1
    sums = np.bincount(labels.ravel(), weights=prob.ravel(), minlength=size)
    counts = np.bincount(labels.ravel(), minlength=size)
    # window edges that are not grid edges cut whatever touches them
    cut_top, cut_left = wr0 > 0, wc0 > 0
    cut_bottom, cut_right = wr1 < grid_shape[0], wc1 < grid_shape[1]
    polygons = _label_polygons(labels, wr0, wc0)
    core_box = box(c0, r0, c1, r1)
    core_labels = labels[r0 - wr0 : r1 - wr0, c0 - wc0 : c1 - wc0]
    core_prob = prob[r0 - wr0 : r1 - wr0, c0 - wc0 : c1 - wc0]
    core_sums = core_counts = None
    for index, slices in enumerate(ndimage.find_objects(labels)):
        label = index + 1
        if slices is None or label not in polygons:
            continue
        rows, cols = slices
        cut = (
            (cut_top and rows.start == 0)
            or (cut_left and cols.start == 0)
            or (cut_bottom and rows.stop == labels.shape[0])
            or (cut_right and cols.stop == labels.shape[1])
        )
        if not cut:
            # owned by the block holding its bounding box's centre: the same for every window that sees it whole
            cy, cx = wr0 + (rows.start + rows.stop) / 2, wc0 + (cols.start + cols.stop) / 2
            if r0 <= cy < r1 and c0 <= cx < c1:
                whole.append(Footprint(polygons[label], float(sums[label]), int(counts[label])))
            continue
        piece = polygons[label].intersection(core_box)
        if piece.is_empty or piece.area == 0:
            continue
        if core_sums is None:
            core_sums = np.bincount(core_labels.ravel(), weights=core_prob.ravel(), minlength=size)
            core_counts = np.bincount(core_labels.ravel(), minlength=size)
        pieces.append(Footprint(piece, float(core_sums[label]), int(core_counts[label])))
    return whole, pieces


def _join_pieces(pieces) -> list:
    """Pieces of cut buildings joined across block borders: pieces of different blocks sharing an edge."""
    if not pieces:
        return []
    geometries = [footprint.geometry for _, footprint in pieces]
    tree = shapely.STRtree(geometries)
    left, right = tree.query(geometries, predicate="intersects")
    shared_edge = np.array([
        i < j and pieces[i][0] != pieces[j][0] and geometries[i].intersection(geometries[j]).length > 0
        for i, j in zip(left.tolist(), right.tolist())
    ], dtype=bool)
    n = len(pieces)
    edges = csr_matrix((np.ones(shared_edge.sum()), (left[shared_edge], right[shared_edge])), shape=(n, n))
    _, group_of = connected_components(edges, directed=False)
    groups: dict = {}
    for (_, footprint), group in zip(pieces, group_of.tolist()):
        groups.setdefault(group, []).append(footprint)
    joined = []
    for members in groups.values():
        geometry = shapely.union_all([m.geometry for m in members])
        if geometry.geom_type == "MultiPolygon":
            geometry = max(geometry.geoms, key=lambda g: g.area)
        joined.append(
            Footprint(geometry, sum(m.probability_sum for m in members), sum(m.pixels for m in members))
        )
    return joined


def finish(footprint: Footprint, options: BuildingOptions, pixel_area_m2: float, pixel_m: float):
    """The footprint simplified and regularised, or None when under the minimum area or score (grid pixel
    coordinates)."""
    if footprint.score < options.min_score:
        return None
    geometry = footprint.geometry
    if options.simplify_m > 0:
        simpler = geometry.simplify(options.simplify_m / pixel_m, preserve_topology=True)
        geometry = simpler if simpler.is_valid and not simpler.is_empty else geometry
    if options.regularize:
        geometry = regularize(geometry)
    if geometry.area * pixel_area_m2 < options.min_area_m2:
        return None
    return Footprint(geometry, footprint.probability_sum, footprint.pixels)


def regularize(polygon: Polygon) -> Polygon:
    """Right angles along the building's dominant orientation; the input when squaring would distort it."""
    if polygon.geom_type != "Polygon" or polygon.area == 0:
        return polygon
    rectangle = polygon.minimum_rotated_rectangle
    if rectangle.area > 0 and polygon.area / rectangle.area >= RECTANGLE_FILL:
        return rectangle
    return squared_along(polygon, rectangle)


def regularize_all(geometries: np.ndarray) -> np.ndarray:
    """``regularize`` of each, the minimum rectangles (the costly step: a Python fallback in shapely with
    GEOS < 3.12) taken in one call."""
    out = geometries.copy()
    areas = shapely.area(geometries)
    candidates = np.nonzero((shapely.get_type_id(geometries) == shapely.GeometryType.POLYGON) & (areas != 0))[0]
    rectangles = shapely.oriented_envelope(geometries[candidates])
    rectangle_areas = shapely.area(rectangles)
    with np.errstate(divide="ignore", invalid="ignore"):
        fills = (rectangle_areas > 0) & (areas[candidates] / rectangle_areas >= RECTANGLE_FILL)
    out[candidates[fills]] = rectangles[fills]
    for index, rectangle in zip(candidates[~fills], rectangles[~fills]):
        out[index] = squared_along(geometries[index], rectangle)
    return out


def squared_along(polygon: Polygon, rectangle: Polygon) -> Polygon:
    """The polygon with right angles along its minimum rectangle's orientation, or itself when that distorts it."""
    angle = _dominant_angle(rectangle)
    origin = polygon.centroid
    upright = shapely.affinity.rotate(polygon, -angle, origin=origin, use_radians=True)
    ring = _orthogonal_ring(list(upright.exterior.coords)[:-1])
    if ring is None:
        return polygon
    squared = Polygon(ring)
    if not squared.is_valid:
        return polygon
    squared = shapely.affinity.rotate(squared, angle, origin=origin, use_radians=True)
    overlap = squared.intersection(polygon).area / squared.union(polygon).area
    return squared if overlap >= 0.75 else polygon


def _dominant_angle(rectangle: Polygon) -> float:
    (x0, y0), (x1, y1) = list(rectangle.exterior.coords)[:2]
    return math.atan2(y1 - y0, x1 - x0)


def _orthogonal_ring(points):
    """Axis-aligned ring from a roughly rectilinear one: each edge becomes horizontal or vertical, runs of
    the same direction merge, and corners sit where consecutive horizontal and vertical lines cross."""
    n = len(points)
    if n < 4:
        return None
    runs: list = []  # [is_horizontal, weighted coordinate sum, total length]
    for i in range(n):
        (xa, ya), (xb, yb) = points[i], points[(i + 1) % n]
        dx, dy = xb - xa, yb - ya
        length = math.hypot(dx, dy)
        if length == 0:
            continue
        horizontal = abs(dx) >= abs(dy)
        coordinate = (ya + yb) / 2 if horizontal else (xa + xb) / 2
        if runs and runs[-1][0] == horizontal:
            runs[-1][1] += coordinate * length
            runs[-1][2] += length
        else:
            runs.append([horizontal, coordinate * length, length])
    if len(runs) > 1 and runs[0][0] == runs[-1][0]:
        first = runs.pop(0)
        runs[-1][1] += first[1]
        runs[-1][2] += first[2]
    if len(runs) < 4 or len(runs) % 2:
        return None
    lines = [(h, s / length) for h, s, length in runs]
    ring = []
    for (h_a, c_a), (_, c_b) in zip(lines, lines[1:] + lines[:1]):
        ring.append((c_b, c_a) if h_a else (c_a, c_b))
    return ring

