"""The data of the shipped roads baseline: the only openly licensed 0.3 m road labels here, two SpaceNet 3 Vegas tiles.

- Training: `sn3_vegas_pan_roads` (panchromatic, replicated to gray RGB) and the top half of `sn3_vegas_rgb_roads`.
  The panchromatic tile is only partly labelled, so there only pixels within 25 m of a labelled centerline count:
  an unlabelled street elsewhere on it must not teach the model that streets are background.
- Held out: the bottom half of `sn3_vegas_rgb_roads`, written as a GeoTIFF with its labels clipped to it, scored
  with the plugin's engine and APLS (`training.engine_eval --roads`).

    training/.venv/bin/python -m training.roads_baseline --out training/cache_roads
    training/.venv/bin/python -m training.train --task roads --cache training/cache_roads --minutes 30

These tiles are the project's evaluation fixtures; the issue that asked for this baseline allows exactly this use.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import rasterio
import shapely
from rasterio.crs import CRS
from rasterio.windows import Window
from rasterio.windows import bounds as window_bounds

from training.spacenet_data import TilePair, read_label_geometries, road_mask, tile_arrays

FIXTURES = Path(os.environ.get("SPACENET_FIXTURES",
                               Path(__file__).resolve().parents[2] / "shared" / "fixtures")) / "spacenet"
PAN = FIXTURES / "sn3_vegas_pan_roads"
RGB = FIXTURES / "sn3_vegas_rgb_roads"
RGB_IMAGE, RGB_LABELS = RGB / "RGB-PanSharpen_AOI_2_Vegas_img0.tif", RGB / "AOI_2_Vegas_img0.geojson"
LABELLED_RADIUS_M = 25.0


def split_rgb_tile(out_dir: Path) -> dict:
    """Write the top and bottom halves of the RGB tile and their clipped labels; {half: (image, labels)}."""
    halves = {}
    with rasterio.open(RGB_IMAGE) as src:
        half = src.height // 2
        for name, window in (("top", Window(0, 0, src.width, half)),
                             ("bottom", Window(0, half, src.width, src.height - half))):
            image = out_dir / f"vegas_rgb_{name}_img0.tif"
            profile = dict(src.profile, height=window.height, width=window.width,
                           transform=src.window_transform(window))
            with rasterio.open(image, "w", **profile) as dst:
                dst.write(src.read(window=window))
                dst.colorinterp = src.colorinterp
            labels = out_dir / f"vegas_rgb_{name}_img0.geojson"
            _write_clipped(RGB_LABELS, shapely.box(*window_bounds(window, src.transform)), labels)
            halves[name] = (image, labels)
    return halves


def _write_clipped(source: Path, frame, target: Path) -> None:
    with open(source) as f:
        collection = json.load(f)
    features = []
    for feature in collection["features"]:
        clipped = shapely.geometry.shape(feature["geometry"]).intersection(frame)
        for part in getattr(clipped, "geoms", [clipped]):
            if part.geom_type == "LineString" and part.length > 0:
                features.append(dict(type="Feature", properties=feature["properties"],
                                     geometry=shapely.geometry.mapping(part)))
    target.write_text(json.dumps(dict(type="FeatureCollection", crs=collection.get("crs"), features=features)))


def prepare(out_dir) -> list:
    out_dir = Path(out_dir)
    held_out = out_dir / "held_out"
    held_out.mkdir(parents=True, exist_ok=True)
    halves = split_rgb_tile(held_out)
    pan = tile_arrays(TilePair("img0", PAN / "road_mask_input.tif", PAN / "sample_roads_for_masking.geojson"), "roads")
    lines = read_label_geometries(PAN / "sample_roads_for_masking.geojson", CRS.from_wkt(str(pan["crs"])))
    labelled = road_mask(lines, pan["valid"].shape[1:], rasterio.Affine(*pan["transform"]), LABELLED_RADIUS_M) > 0
    pan["valid"] &= labelled[None]
    top = tile_arrays(TilePair("img0", *halves["top"]), "roads")
    index = []
    for name, arrays in (("vegas_pan_img_partly_labelled", pan), ("vegas_rgb_img0_top", top)):
        np.savez_compressed(out_dir / f"{name}.npz", **arrays)
        h, w = arrays["road"].shape
        index.append(dict(name=name, source=name, task="roads", split="train", zooms=[0], height=h, width=w,
                          label_fraction=round(float(arrays["road"].mean()), 4)))
        print(f"{name:32s} {w}x{h} road={arrays['road'].mean():.3f} valid={arrays['valid'].mean():.3f}")
    (out_dir / "index.json").write_text(json.dumps(index, indent=1))
    return index


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "cache_roads"))
    prepare(parser.parse_args(argv).out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
