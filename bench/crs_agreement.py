"""How much of an extraction survives warping its raster into another CRS: the footprints of a raster and of
its warped copy (other pixels: resampled, turned by the grid convergence), compared with the F1 scorer (IoU >= 0.5).

The same pixels give the same footprints in any CRS (tests/e2e/test_same_pixels_any_crs_cli.py); a warped copy
is another image, and the figure here measures the model's robustness to resampling, not the CRS handling.

    .venv/bin/python bench/crs_agreement.py [--model NAME] [RASTER TARGET_CRS RESAMPLING ...]
"""

import argparse
import json
import tempfile
from pathlib import Path

from paths import REPO

import numpy as np
import rasterio
import shapely
from rasterio.warp import Resampling, calculate_default_transform, reproject, transform_geom

from spacenet_toolkit.core.extract.extract import ExtractRequest, extract_buildings  # found through paths
from spacenet_toolkit.core.score import f1

FIXTURES = REPO.parent / "shared" / "fixtures"
CASES = (
    (FIXTURES / "spacenet/sn4_atlanta_pan/sample_geotiff.tif", "EPSG:4326", "nearest"),
    (FIXTURES / "spacenet/sn4_atlanta_pan/sample_geotiff.tif", "EPSG:4326", "bilinear"),
    (FIXTURES / "spacenet/sn3_vegas_rgb_roads/RGB-PanSharpen_AOI_2_Vegas_img0.tif", "EPSG:32611", "bilinear"),
)


def warped(source: Path, crs: str, resampling: str, destination: Path) -> Path:
    """``source`` warped into ``crs`` as gdalwarp does by default (its own resolution and extent)."""
    with rasterio.open(source) as src:
        transform, width, height = calculate_default_transform(src.crs, crs, src.width, src.height, *src.bounds)
        profile = src.profile | {"crs": crs, "transform": transform, "width": width, "height": height,
                                 "nodata": src.nodata if src.nodata is not None else 0}
        with rasterio.open(destination, "w", **profile) as out:
            for band in range(1, src.count + 1):
                reproject(rasterio.band(src, band), rasterio.band(out, band),
                          resampling=Resampling[resampling], dst_nodata=profile["nodata"])
    return destination


def agreement(source: Path, crs: str, resampling: str, model: str, work: Path) -> str:
    original = extract_buildings(ExtractRequest(raster_path=str(source), model_path=model))
    copy = warped(source, crs, resampling, work / "warped.tif")
    moved = extract_buildings(ExtractRequest(raster_path=str(copy), model_path=model))
    back = np.array([shapely.from_geojson(json.dumps(transform_geom(crs, original.crs_wkt, json.loads(
        shapely.to_geojson(f.geometry))))) for f in moved.footprints], dtype=object)
    reference = np.array([f.geometry for f in original.footprints], dtype=object)
    counts = f1.score(f1.PolygonSet(reference), f1.PolygonSet(back)).total
    score = 2 * counts.tp / max(2 * counts.tp + counts.fp + counts.fn, 1)
    return (f"{source.name} -> {crs} ({resampling}): {len(reference)} vs {len(back)} footprints, "
            f"TP {counts.tp} FP {counts.fp} FN {counts.fn}, F1 between the two {score:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="buildings_unet_small")
    parser.add_argument("case", nargs="*", help="RASTER TARGET_CRS RESAMPLING, repeated")
    args = parser.parse_args()
    cases = [tuple(args.case[i:i + 3]) for i in range(0, len(args.case), 3)] or CASES
    model = str(REPO / "models" / f"{args.model}.onnx")
    with tempfile.TemporaryDirectory() as work:
        for source, crs, resampling in cases:
            print(agreement(Path(source), crs, resampling, model, Path(work)), flush=True)


if __name__ == "__main__":
    main()
