"""Train a small U-Net (buildings or roads) within a wall-clock budget, exporting ONNX checkpoints as it goes.

Samples are random 256x256 crops of the cached 0.3 m blocks (training split only) with scale jitter, flips/rot90,
colour jitter, random grayscale, blur and noise, then the engine's normalisation (2-98 percentile stretch per
band). Every ~13 minutes from minute 20 the model is scored on the validation blocks; an improvement is
exported straight to models/ with defaults tuned on validation, so a usable model exists early.

    OMP_NUM_THREADS=1 training/.venv/bin/python -m training.train --minutes 60
    training/.venv/bin/python -m training.train --task roads --cache training/cache_roads --minutes 120

The default cache is the oam_buildings one (`training.data`), validated and tuned with `training.evaluate`; any
other cache (`training.spacenet_data`) is validated by pixel IoU at 0.5 on its `val` tiles.
"""
import argparse
import json
import math
import os
import random
import time

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812 (the PyTorch convention)
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from training import evaluate, export
from training.data import CACHE_DIR
from training.model import SmallUNet
from training.spacenet_data import contact_zone, small_building_share

CROP = 256
SCALE_RANGE = (0.8, 1.25)
RUNS_DIR = os.path.join(os.path.dirname(__file__), "runs")
SOURCE_WEIGHT = {"ramp5": 0.5}  # Nairobi labels are offset by 1-3 m: sample it less
TRAINING_AREAS = ["ramp_hotosm area 1 (Zanzibar, block at tile row 270960)", "ramp_hotosm area 3 (Banepa)",
                  "ramp_hotosm area 5 (Nairobi)", "banepa/train (fAIr, Banepa)"]
VALIDATION_AREAS = ["ramp_hotosm area 4 (Philippines)", "ramp_hotosm area 1 block at tile row 270995 (2.4 km away)"]


CHANNELS = {"buildings": ("building", "interior"), "roads": ("road",)}


def load_blocks(cache_dir=CACHE_DIR, channels=CHANNELS["buildings"], split="train"):
    with open(os.path.join(cache_dir, "index.json")) as f:
        index = [e for e in json.load(f) if e["split"] == split]
    blocks = []
    for e in index:
        d = np.load(os.path.join(cache_dir, e["name"] + ".npz"))
        labels = np.stack([d[name] for name in channels])
        instances = d["instances"] if "instances" in d.files else np.zeros(labels.shape[1:], np.int32)
        blocks.append(dict(images=torch.from_numpy(d["images"]).permute(0, 3, 1, 2).contiguous(),  # V,3,H,W uint8
                           labels=torch.from_numpy(labels), valid=torch.from_numpy(d["valid"]),
                           contact=torch.from_numpy(contact_zone(instances)),
                           small=torch.from_numpy(small_building_share(instances)),
                           weight=labels.shape[1] * labels.shape[2] * SOURCE_WEIGHT.get(e["source"], 1.0),
                           name=e["name"]))
    return blocks


def gaussian_blur(x, sigma):
    radius = max(1, int(math.ceil(2.5 * sigma)))
    k = torch.exp(-(torch.arange(-radius, radius + 1, dtype=torch.float32) ** 2) / (2 * sigma**2))
    k = (k / k.sum()).view(1, 1, 1, -1).repeat(x.shape[0], 1, 1, 1)
    x = F.conv2d(F.pad(x[None], (radius, radius, 0, 0), mode="reflect"), k, groups=x.shape[0])
    x = F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"), k.transpose(2, 3), groups=x.shape[1])
    return x[0]


def random_colour(rng):
    """A pointwise colour transform on raw 0-255 values; the percentile stretch cancels plain gain and offset,
    so what matters is what it cannot undo: band mixing, gamma, clipping."""
    gray = rng.random() < 0.25
    mix = torch.tensor(rng.dirichlet([4, 4, 4]), dtype=torch.float32).view(3, 1, 1)
    saturation = rng.uniform(0.5, 1.5)
    gamma = torch.tensor(rng.uniform(0.7, 1.4, 3 if not gray else 1), dtype=torch.float32).view(-1, 1, 1)
    exposure = rng.uniform(1.0, 1.4) if rng.random() < 0.3 else 1.0

    def apply(x):
        if gray:  # panchromatic: one band, replicated
            x = (x * mix).sum(0, keepdim=True).expand(3, -1, -1)
        else:
            mean = x.mean(0, keepdim=True)
            x = mean + (x - mean) * saturation
        x = 255.0 * (x.clamp(0, 255) / 255.0) ** gamma
        return (x * exposure).clamp(0, 255)
    return apply


def percentile_stretch(x, ref):
    """Map each band's 2nd percentile of `ref` to 0 and its 98th to 1, clip: the engine's normalisation."""
    q = torch.quantile(ref.reshape(ref.shape[0], -1), torch.tensor([0.02, 0.98]), dim=1)  # 2, C
    lo, hi = q[0].view(-1, 1, 1), q[1].view(-1, 1, 1)
    return ((x - lo) / (hi - lo).clamp_min(1e-6)).clamp(0, 1)


def sample(blocks, weights, rng):
    b = blocks[rng.choice(len(blocks), p=weights)]
    v = rng.integers(b["images"].shape[0])
    _, _, h, w = b["images"].shape
    scale = math.exp(rng.uniform(*np.log(SCALE_RANGE)))
    c = min(int(round(CROP * scale)), h, w)
    y, x = rng.integers(h - c + 1), rng.integers(w - c + 1)
    img = b["images"][v, :, y:y + c, x:x + c].float()
    lab = torch.cat([b["labels"][:, y:y + c, x:x + c], b["valid"][v:v + 1, y:y + c, x:x + c],
                     b["contact"][None, y:y + c, x:x + c], b["small"][None, y:y + c, x:x + c]]).float()
    if c != CROP:
        img = F.interpolate(img[None], size=(CROP, CROP), mode="bilinear", antialias=True, align_corners=False)[0]
        lab = F.interpolate(lab[None], size=(CROP, CROP), mode="bilinear", align_corners=False)[0]
        lab[:-1] = (lab[:-1] > 0.5).float()  # masks stay masks; the small-building share is a weight
    k = int(rng.integers(4))
    img, lab = torch.rot90(img, k, (1, 2)), torch.rot90(lab, k, (1, 2))
    if rng.random() < 0.5:
        img, lab = img.flip(2), lab.flip(2)

    colour = random_colour(rng)
    img = colour(img)
    if rng.random() < 0.5:
        # The engine stretches over the whole extent, not per tile: half the time take the percentiles over a
        # wider window around the crop.
        cy, cx = y + c // 2, x + c // 2
        r = 2 * c
        ref = b["images"][v, :, max(0, cy - r):cy + r:4, max(0, cx - r):cx + r:4].float()
        ref = colour(ref)
    else:
        ref = img
    if rng.random() < 0.25:
        img = gaussian_blur(img, rng.uniform(0.4, 1.3))
    if rng.random() < 0.3:
        img = (img + torch.randn_like(img) * rng.uniform(2, 8)).clamp(0, 255)
    return percentile_stretch(img, ref), lab


def loss_fn(logits, target, contact_weight=0.0, small_weight=0.0):
    """BCE + soft Dice on every label channel, masked by the validity channel (after the labels); BCE counts a
    pixel 1 + `contact_weight` x contact zone (the next channel) + `small_weight` x small-building share (the
    last) times."""
    n = target.shape[1] - 3
    labels, valid = target[:, :n], target[:, n:n + 1].expand(-1, n, -1, -1)
    weight = valid * (1 + contact_weight * target[:, n + 1:n + 2] + small_weight * target[:, n + 2:n + 3])
    bce = F.binary_cross_entropy_with_logits(logits, labels, weight=weight, reduction="none").sum((0, 2, 3))
    bce = bce / valid.sum((0, 2, 3)).clamp_min(1)
    p = torch.sigmoid(logits) * valid
    dice = 1 - (2 * (p * labels).sum((0, 2, 3)) + 1) / (p.sum((0, 2, 3)) + (labels * valid).sum((0, 2, 3)) + 1)
    return (bce + dice).sum(), bce.detach(), dice.detach()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=60.0, help="wall-clock budget of the training loop")
    ap.add_argument("--first-export-minutes", type=float, default=20.0)
    ap.add_argument("--export-every-minutes", type=float, default=13.0)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1, help="CPU threads for PyTorch")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--task", choices=sorted(CHANNELS), default="buildings")
    ap.add_argument("--init", help="start from this checkpoint's weights (a best.pt or last.pt)")
    ap.add_argument("--min-score", type=float, default=-1.0,
                    help="export only validation scores above this (e.g. the shipped model's, when fine-tuning)")
    ap.add_argument("--ema", type=float, default=0.0,
                    help="validate and export an exponential moving average of the weights with this decay "
                         "(e.g. 0.999); 0: the weights as they are")
    ap.add_argument("--contact-weight", type=float, default=0.0,
                    help="extra BCE weight where two buildings are within 1 m (teaches the interior seeds to part)")
    ap.add_argument("--small-weight", type=float, default=0.0,
                    help="extra BCE weight on roofs of 20 m² or less, tapering on larger ones (for recall in dense "
                         "settlements of small buildings)")
    ap.add_argument("--cache", default=CACHE_DIR, help="a cache from training.data or training.spacenet_data")
    ap.add_argument("--run-dir", default=os.path.join(RUNS_DIR, time.strftime("%Y%m%d-%H%M%S")))
    args = ap.parse_args()

    start = time.time()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    random.seed(args.seed)
    os.makedirs(args.run_dir, exist_ok=True)
    log_path = os.path.join(args.run_dir, "log.jsonl")

    def note(**kv):
        kv["minutes"] = round((time.time() - start) / 60, 2)
        print(json.dumps(kv), flush=True)
        with open(log_path, "a") as log:
            log.write(json.dumps(kv) + "\n")

    channels = CHANNELS[args.task]
    blocks = load_blocks(args.cache, channels)
    if not blocks:
        raise SystemExit(f"{args.cache} has no training tiles (index.json split 'train').")
    weights = np.array([b["weight"] for b in blocks])
    weights /= weights.sum()
    oam_buildings = args.task == "buildings" and os.path.abspath(args.cache) == os.path.abspath(CACHE_DIR)
    validation = None if oam_buildings else load_blocks(args.cache, channels, split="val")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    net = SmallUNet(out_channels=len(channels))
    if args.init:
        net.load_state_dict(torch.load(args.init, map_location="cpu")["model"])
    net = net.to(device, memory_format=torch.channels_last)
    # the weights validated and exported: an average over the last steps smooths out the noise of small batches
    averaged = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(args.ema), use_buffers=True) if args.ema else None
    shipped = averaged.module if averaged is not None else net
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    deadline = start + args.minutes * 60
    next_export = start + args.first_export_minutes * 60
    best_f1, step, warmup = args.min_score, 0, 50
    timings = None

    def checkpoint(final=False):
        nonlocal best_f1, timings
        t0 = time.time()
        runner = evaluate.torch_runner(shipped)
        result = evaluate.evaluate(runner) if oam_buildings else evaluate.cache_scores(runner, validation)
        net.train()
        rounded = {k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}
        note(event="validation", step=step, **rounded)
        if result["f1"] <= best_f1 and not (final and not validation and not oam_buildings):
            return  # without validation tiles the last weights are the ones exported
        best_f1 = result["f1"]
        if timings is None or final:
            timing = os.path.join(args.run_dir, "timing.onnx")  # per run: two runs may time at once
            export.export(shipped, _card(result, {}, step, start, args), timing, timing + ".fp16")
            timings = {"cpu_ms_per_512_tile_1_thread": evaluate.cpu_ms_per_tile(timing, 1),
                       "cpu_ms_per_512_tile_2_threads": evaluate.cpu_ms_per_tile(timing, 2)}
        card = _card(result, timings, step, start, args)
        export.export(shipped, card)
        torch.save({"model": shipped.state_dict(), "card": card, "step": step}, os.path.join(args.run_dir, "best.pt"))
        with open(os.path.join(args.run_dir, "card.json"), "w") as f:
            json.dump(card, f, indent=1)
        note(event="exported", step=step, seconds=round(time.time() - t0, 1))

    net.train()
    t_last, losses = time.time(), []
    while time.time() < deadline:
        progress = (time.time() - start) / (deadline - start)
        cosine = 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
        lr = args.lr * min(1.0, (step + 1) / warmup) * (0.02 + 0.98 * cosine)
        for g in opt.param_groups:
            g["lr"] = lr
        batch = [sample(blocks, weights, rng) for _ in range(args.batch)]
        x = torch.stack([b[0] for b in batch]).to(device).contiguous(memory_format=torch.channels_last)
        y = torch.stack([b[1] for b in batch]).to(device)
        loss, bce, dice = loss_fn(net.logits(x), y, args.contact_weight, args.small_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if averaged is not None:
            averaged.update_parameters(net)
        losses.append([loss.item(), *bce.tolist(), *dice.tolist()])
        step += 1
        if step % 50 == 0:
            m = np.mean(losses, 0)
            n = len(channels)
            note(event="train", step=step, lr=round(lr, 6), loss=round(m[0], 4),
                 bce=[round(v, 4) for v in m[1:1 + n]], dice=[round(v, 4) for v in m[1 + n:]],
                 s_per_step=round((time.time() - t_last) / 50, 3))
            t_last, losses = time.time(), []
        if time.time() >= next_export and deadline - time.time() > 8 * 60:
            checkpoint()
            next_export = time.time() + args.export_every_minutes * 60
    checkpoint(final=True)
    torch.save({"model": shipped.state_dict(), "step": step}, os.path.join(args.run_dir, "last.pt"))
    note(event="done", step=step, best_f1=round(best_f1, 4))


def _card(result, timings, step, start, args):
    run = {"hardware": _hardware(), "duration_minutes": round((time.time() - start) / 60, 1),
           "epochs_or_steps": f"{step} steps of {args.batch} crops 256x256"}
    if args.task == "buildings" and "kampala_pixel_iou" in result:
        defaults = evaluate.card_defaults(result)
        scores = {"kampala_pixel_iou": round(result["kampala_pixel_iou"], 4),
                  "validation_pixel_iou": round(result["validation_pixel_iou"], 4),
                  "validation_object_f1": round(result["f1"], 4), **timings}
        training = {"data": ("HOT OSM fAIr / RAMP oam_buildings: OpenAerialMap XYZ chips (z19 native, z20/z21 "
                             "downsampled) resampled to 0.3 m, OSM building footprints rasterised"),
                    "areas": TRAINING_AREAS, "validation": VALIDATION_AREAS,
                    "held_out": "ramp_hotosm area 2 (Kampala)", **run}
        return export.model_card(defaults, scores, training)
    with open(os.path.join(args.cache, "index.json")) as f:
        index = json.load(f)
    defaults = {"threshold": 0.5} if args.task == "roads" else {"threshold": 0.5, "min_area_m2": 10.0,
                                                                 "interior_threshold": 0.5}
    scores = {"validation_pixel_iou": round(result["pixel_iou"], 4)} if "pixel_iou" in result else {}
    training = {"data": f"SpaceNet tiles resampled to 0.3 m ({os.path.basename(os.path.abspath(args.cache))})",
                "areas": [e["name"] for e in index if e["split"] == "train"],
                "validation": [e["name"] for e in index if e["split"] == "val"], **run}
    return export.model_card(defaults, {**scores, **timings}, training, task=args.task)


def _hardware():
    threads = torch.get_num_threads()
    if torch.cuda.is_available():
        return f"GPU ({torch.cuda.get_device_name(0)})"
    return f"CPU, {threads} thread{'s' if threads > 1 else ''}"


if __name__ == "__main__":
    main()
