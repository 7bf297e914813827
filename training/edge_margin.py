"""How wide a margin along nodata should the engine leave empty? Measured on the validation areas only.

Each validation block is cut into scattered chips (a random third of square cells made nodata, as Kampala's or
any mosaic's chips are scattered), the blank filled from the nearest data as the engine does, and object F1 scored
over the data with the model card's defaults, for margins of 0 to 5 pixels (0.3 m each):

    PYTHONPATH=. .venv/bin/python -m training.edge_margin [--model path/to/model.onnx]

The engine's `EDGE_M` (core/extract/extract.py) quotes these numbers for model 0.3.0 (`git show 69ede60:models/...`);
0.4.0 gives 0.599 / 0.658 / 0.536 with 1.5 m (5 px) and 0.617 / 0.672 / 0.577 with one pixel.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

from training import evaluate

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / ".build" / "plugins"))
from spacenet_toolkit.core.extract import runtime  # noqa: E402
from spacenet_toolkit.core.extract.tile_inference import filled as _filled  # noqa: E402

MODEL = "models/buildings_unet_small.onnx"
LAYOUTS = ((0, 128), (1, 255), (2, 64))  # (seed, chip size in pixels)
MARGINS_PX = (0, 1, 2, 3, 5)


def scattered_predictions(run, seed: int, chip: int) -> list:
    rng = np.random.default_rng(seed)
    items = []
    for _name, image, valid, _truth, instances in evaluate.validation_blocks():
        h, w = valid.shape
        kept = rng.random((-(-h // chip), -(-w // chip))) > 0.35
        data = valid.astype(bool) & np.kron(kept, np.ones((chip, chip), bool))[:h, :w]
        filled = _filled(image.transpose(2, 0, 1), data).transpose(1, 2, 0)  # as the engine fills, before the model
        items.append((evaluate.predict(run, filled, data), data, instances))
    return items


def object_f1(items, card, margin_px: int) -> float:
    tables = []
    for prob, data, instances in items:
        kept = ndimage.binary_erosion(data, iterations=margin_px, border_value=1) if margin_px else data
        labels = evaluate.instances_from(prob[0] * kept, prob[1] * kept, card.threshold, card.interior_threshold)
        tables.append(evaluate.components(labels, instances, data, prob[0]))
    return round(evaluate.object_scores(tables, card.min_area_m2, card.min_score)["f1"], 4)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=MODEL)
    model = ap.parse_args().model
    card = runtime.load(model, "cpu", 2).card
    run = evaluate.onnx_runner(model, threads=2)
    for seed, chip in LAYOUTS:
        items = scattered_predictions(run, seed, chip)
        scores = {f"{m} px": object_f1(items, card, m) for m in MARGINS_PX}
        print(json.dumps({"chip_px": chip, "seed": seed, "object_f1_by_margin": scores}))


if __name__ == "__main__":
    main()
