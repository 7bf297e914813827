"""How wide a margin along nodata should the engine leave empty? Measured on the validation areas only.

Each validation block is cut into scattered chips (a random third of square cells made nodata, as Kampala's or
any mosaic's chips are scattered), the blank filled from the nearest data as the engine does, and object F1 scored
over the data with the model card's defaults, for margins of 0 to 5 pixels (0.3 m each):

    PYTHONPATH=. .venv/bin/python -m training.edge_margin

The engine's `EDGE_M` (core/extract.py) quotes these numbers.
"""
import json
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

from training import evaluate

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / ".build" / "plugins"))
from spacenet_toolkit.core import runtime  # noqa: E402
from spacenet_toolkit.core.extract import _filled  # noqa: E402

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
        x = _filled(evaluate.stretch(image, data).transpose(2, 0, 1), data)
        x = np.pad(x, ((0, 0), (0, -h % evaluate.SIZE_MULTIPLE), (0, -w % evaluate.SIZE_MULTIPLE)), mode="reflect")
        items.append((run(x[None].astype(np.float32))[0, :, :h, :w], data, instances))
    return items


def object_f1(items, card, margin_px: int) -> float:
    tp = n_pred = n_truth = 0
    for prob, data, instances in items:
        kept = ndimage.binary_erosion(data, iterations=margin_px, border_value=1) if margin_px else data
        labels = evaluate.instances_from(prob[0] * kept, prob[1] * kept, card.threshold, card.interior_threshold)
        counts = evaluate.object_counts(labels, instances, data, card.min_area_m2 / evaluate.PIXEL_AREA_M2)
        tp, n_pred, n_truth = tp + counts[0], n_pred + counts[1], n_truth + counts[2]
    return round(2 * tp / max(n_pred + n_truth, 1), 4)


def main():
    card = runtime.load(MODEL, "cpu", 2).card
    run = evaluate.onnx_runner(MODEL, threads=2)
    for seed, chip in LAYOUTS:
        items = scattered_predictions(run, seed, chip)
        scores = {f"{m} px": object_f1(items, card, m) for m in MARGINS_PX}
        print(json.dumps({"chip_px": chip, "seed": seed, "object_f1_by_margin": scores}))


if __name__ == "__main__":
    main()
