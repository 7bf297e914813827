"""Simple, engine-independent evaluation: pixel IoU, object F1 for tuning defaults, and CPU timing.

Whole blocks are normalised the way the engine does it (2-98 percentile stretch per band over the whole extent),
padded to a multiple of 32 and predicted in one pass. Object F1 uses connected components of the thresholded
building map, split by interior seeds, matched to OSM footprints at IoU > 0.5 (SpaceNet's rule).

Kampala (ramp_hotosm area 2) is only ever scored here, never used to choose anything.

    training/.venv/bin/python -m training.evaluate --model models/buildings_unet_small.onnx
"""
import argparse
import glob
import json
import os
import time
from collections import defaultdict

import numpy as np
import rasterio
from scipy import ndimage

from training.data import CACHE_DIR, DATA_ROOT, TARGET_GSD_M, block_grid, mosaic, parse_chip, rectangular_blocks

SIZE_MULTIPLE = 32
PIXEL_AREA_M2 = TARGET_GSD_M**2


def stretch(image, valid=None, low=2.0, high=98.0):
    """(H, W, C) raw values -> float32 in [0, 1]: per band, percentile `low` -> 0 and `high` -> 1, clipped."""
    image = image.astype(np.float32)
    sample = image[valid.astype(bool)] if valid is not None else image.reshape(-1, image.shape[-1])
    lo, hi = np.percentile(sample, [low, high], axis=0)
    return np.clip((image - lo) / np.maximum(hi - lo, 1e-6), 0.0, 1.0)


def predict(run, image, valid=None):
    """Probabilities (2, H, W) for an (H, W, 3) image; `run` maps a (1, 3, h, w) float32 array to (1, 2, h, w)."""
    x = stretch(image, valid).transpose(2, 0, 1)
    h, w = x.shape[1:]
    ph, pw = -h % SIZE_MULTIPLE, -w % SIZE_MULTIPLE
    x = np.pad(x, ((0, 0), (0, ph), (0, pw)), mode="reflect")
    return run(x[None].astype(np.float32))[0, :, :h, :w]


def onnx_runner(path, threads=1):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    return lambda x: session.run(["probabilities"], {"image": x})[0]


def torch_runner(net):
    import torch

    def run(x):
        net.eval()
        device = next(net.parameters()).device
        with torch.no_grad():
            return net(torch.from_numpy(x).to(device)).cpu().numpy()
    return run


# ----------------------------------------------------------------------------------------------- data to score
def validation_blocks(cache_dir=CACHE_DIR):
    """(name, image, valid, building, instances) for every zoom variant of every validation block in the cache."""
    with open(os.path.join(cache_dir, "index.json")) as f:
        index = [e for e in json.load(f) if e["split"] == "val"]
    for e in index:
        d = np.load(os.path.join(cache_dir, e["name"] + ".npz"))
        for v, z in enumerate(d["zooms"]):
            yield f"{e['name']}_z{z}", d["images"][v], d["valid"][v], d["building"], d["instances"]


def kampala_blocks():
    """Kampala GeoTIFF chips (chips/ + val-chips/) and their binary masks, mosaicked per zoom on the 0.3 m grid."""
    root = f"{DATA_ROOT}/ramp_hotosm"
    images, masks = defaultdict(dict), defaultdict(dict)
    for chip_dir, mask_dir in (("chips", "binarymasks"), ("val-chips", "val-binarymasks")):
        for p in glob.glob(f"{root}/{chip_dir}/*.tif"):
            x, y, z = parse_chip(p)
            images[z][(x, y)] = p
            masks[z][(x, y)] = p.replace(f"/{chip_dir}/", f"/{mask_dir}/").replace(".tif", ".mask.tif")

    def read_mask(path):
        with rasterio.open(path) as src:
            return src.read(1)

    for z in sorted(images):
        k = 2 ** (z - 19)
        for block in rectangular_blocks({(x // k, y // k) for x, y in images[z]}):
            size, _ = block_grid(block)
            img, valid = mosaic(images[z], block, z, 256 * k, size)
            mask, _ = mosaic(masks[z], block, z, 256 * k, size, reader=read_mask)
            yield f"kampala_{block[0]}_{block[1]}_z{z}", img, valid, mask[:, :, 0], None


# ----------------------------------------------------------------------------------------------- metrics
def pixel_counts(prob, truth, valid, threshold):
    pred, truth, valid = prob >= threshold, truth > 0, valid.astype(bool)
    return int((pred & truth & valid).sum()), int(((pred | truth) & valid).sum())


def instances_from(prob_building, prob_interior, threshold, interior_threshold):
    """Label building components, splitting those with several interior seeds by growing the seeds inside them."""
    mask = prob_building >= threshold
    seeds, n_seeds = ndimage.label((prob_interior >= interior_threshold) & mask)
    labels = seeds
    for _ in range(32):  # seeds sit ~3 px inside the outline; a few steps reach every pixel they can
        grown = ndimage.grey_dilation(labels, size=3)
        todo = mask & (labels == 0) & (grown > 0)
        if not todo.any():
            break
        labels = np.where(todo, grown, labels)
    rest, _ = ndimage.label(mask & (labels == 0))  # components without any seed stay whole
    return np.where(rest > 0, rest + n_seeds, labels)


def components(pred_labels, truth_labels, valid, prob, min_truth_px=20):
    """Each predicted component's area (px), score (mean building probability, as the engine's footprints carry
    it) and whether it matches a truth building at IoU > 0.5 (SpaceNet's rule; at that IoU matches are one-to-one,
    so dropping one component never changes another's); and how many truth buildings count (>= min_truth_px)."""
    valid = valid.astype(bool)
    pred_labels = np.where(valid, pred_labels, 0)
    truth_labels = np.where(valid, truth_labels, 0)
    p_area = np.bincount(pred_labels.ravel())
    t_area = np.bincount(truth_labels.ravel())
    p_score = np.bincount(pred_labels.ravel(), weights=prob.ravel(), minlength=len(p_area)) / np.maximum(p_area, 1)
    both = (pred_labels > 0) & (truth_labels > 0)
    pairs, inter = np.unique(np.stack([pred_labels[both], truth_labels[both]]), axis=1, return_counts=True)
    iou = inter / (p_area[pairs[0]] + t_area[pairs[1]] - inter)
    matched = np.zeros(len(p_area), bool)
    matched[pairs[0][(iou > 0.5) & (t_area[pairs[1]] >= min_truth_px)]] = True
    present = np.flatnonzero(p_area[1:]) + 1
    return dict(area_px=p_area[present], score=p_score[present], matched=matched[present],
                n_truth=int((t_area[1:] >= min_truth_px).sum()))


THRESHOLDS = (0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.65, 0.7)
INTERIOR_THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7)
MIN_AREAS_M2 = (0, 2, 4, 6, 8, 10, 15, 20)
MIN_SCORES = (0.0, 0.6, 0.65, 0.7, 0.75, 0.8)


def tune(predictions, thresholds=THRESHOLDS, interior_thresholds=INTERIOR_THRESHOLDS, min_areas_m2=MIN_AREAS_M2,
         min_scores=MIN_SCORES):
    """Pick threshold, interior threshold, min area and min score maximising object F1 over (prob, valid,
    instances) items."""
    best = None
    for t in thresholds:
        for it in interior_thresholds:
            tables = [components(instances_from(p[0], p[1], t, it), inst, valid, p[0])
                      for p, valid, inst in predictions]
            for a in min_areas_m2:
                for s in min_scores:
                    scores = object_scores(tables, a, s)
                    if best is None or scores["f1"] > best["f1"]:
                        best = dict(f1=scores["f1"], threshold=round(float(t), 2), interior_threshold=it,
                                    min_area_m2=a, min_score=s, precision=scores["precision"],
                                    recall=scores["recall"])
    return best


def card_defaults(tuned):
    """The model card's defaults from a `tune` result."""
    return {key: tuned[key] for key in ("threshold", "min_area_m2", "min_score", "interior_threshold")}


def object_scores(tables, min_area_m2, min_score=0.0):
    """Object F1, precision and recall with TP and counts summed over `components` tables, keeping components
    of at least `min_area_m2` (and one pixel) and a score of at least `min_score`: the engine's rules."""
    tp = n_pred = n_truth = 0
    for table in tables:
        keep = (table["area_px"] >= max(min_area_m2 / PIXEL_AREA_M2, 1)) & (table["score"] >= min_score)
        tp += int(table["matched"][keep].sum())
        n_pred, n_truth = n_pred + int(keep.sum()), n_truth + table["n_truth"]
    return dict(f1=2 * tp / max(n_pred + n_truth, 1), precision=tp / max(n_pred, 1), recall=tp / max(n_truth, 1))


def score(run, blocks, threshold):
    """Pixel IoU (pooled over all blocks) and the per-block predictions."""
    inter = union = 0
    preds = []
    for _name, image, valid, truth, inst in blocks:
        prob = predict(run, image, valid)
        i, u = pixel_counts(prob[0], truth, valid, threshold)
        inter, union = inter + i, union + u
        preds.append((prob, valid, inst))
    return inter / max(union, 1), preds


def cache_scores(run, blocks, threshold=0.5):
    """Pixel IoU of channel 0 at `threshold` over the validity masks of `blocks` (training.train.load_blocks);
    also under the key "f1", which picks the checkpoint."""
    inter = union = 0
    for block in blocks:
        for v in range(block["images"].shape[0]):
            image = block["images"][v].permute(1, 2, 0).numpy()
            valid = block["valid"][v].numpy()
            prob = predict(run, image, valid)
            i, u = pixel_counts(prob[0], block["labels"][0].numpy(), valid, threshold)
            inter, union = inter + i, union + u
    if not union:
        return dict(f1=0.0, threshold=threshold)  # nothing to validate on
    return dict(f1=inter / union, pixel_iou=inter / union, threshold=threshold)


def evaluate(run):
    """Tune the defaults on the validation areas, then score validation and Kampala at the tuned threshold."""
    blocks = list(validation_blocks())
    _, preds = score(run, blocks, 0.5)
    tuned = tune(preds)
    vi = vu = 0
    for (prob, valid, _), block in zip(preds, blocks):
        i, u = pixel_counts(prob[0], block[3], valid, tuned["threshold"])
        vi, vu = vi + i, vu + u
    kampala_iou, _ = score(run, list(kampala_blocks()), tuned["threshold"])
    return dict(tuned, validation_pixel_iou=vi / max(vu, 1), kampala_pixel_iou=kampala_iou)


def cpu_ms_per_tile(path, threads, size=512, repeats=10):
    run = onnx_runner(path, threads)
    x = np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32)
    for _ in range(3):
        run(x)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        run(x)
        times.append(time.perf_counter() - t)
    return round(1000 * float(np.median(times)), 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="models/buildings_unet_small.onnx")
    ap.add_argument("--threshold", type=float, help="score at this threshold instead of the card's")
    args = ap.parse_args()
    import onnx
    card = json.loads({p.key: p.value for p in onnx.load(args.model).metadata_props}["spacenet_model_card"])
    threshold = args.threshold or card["defaults"]["threshold"]
    run = onnx_runner(args.model, threads=1)
    val_iou, _ = score(run, list(validation_blocks()), threshold)
    kampala_iou, _ = score(run, list(kampala_blocks()), threshold)
    print(json.dumps(dict(model=args.model, threshold=threshold, validation_pixel_iou=round(val_iou, 4),
                          kampala_pixel_iou=round(kampala_iou, 4),
                          cpu_ms_per_512_tile_1_thread=cpu_ms_per_tile(args.model, 1),
                          cpu_ms_per_512_tile_2_threads=cpu_ms_per_tile(args.model, 2)), indent=1))


if __name__ == "__main__":
    main()
