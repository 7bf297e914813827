"""Train a segmentation network (buildings or roads) within a wall-clock budget, exporting ONNX as it goes.

Batches are random 256x256 crops of the cached 0.3 m blocks (training split only), augmented for satellite
imagery by `training.augment` (on the GPU when there is one) and normalised as the engine does. Every ~13 minutes
from minute 20 the model is scored on the validation blocks; an improvement is exported straight to models/ with
defaults tuned on validation, so a usable model exists early. `--snapshot-every-minutes` instead saves the
weights now and then without validating (for a GPU machine without the validation data: `training.select`
validates the snapshots afterwards).

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

from training import augment, model, pack
from training.paths import CACHE_DIR

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
        if "contact" in d.files:  # a packed cache (training.pack) carries them, for machines without rasterio
            contact, small = d["contact"], d["small"].astype(np.float32) / 255
        else:
            from training.spacenet_data import contact_zone, small_building_share
            instances = d["instances"] if "instances" in d.files else np.zeros(labels.shape[1:], np.int32)
            contact, small = contact_zone(instances), small_building_share(instances)
        images = d["images"] if "images" in d.files else pack.unpack_images(d)
        blocks.append(dict(images=torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(),  # V,3,H,W uint8
                           labels=torch.from_numpy(labels), valid=torch.from_numpy(d["valid"]),
                           contact=torch.from_numpy(contact), small=torch.from_numpy(small),
                           weight=labels.shape[1] * labels.shape[2] * SOURCE_WEIGHT.get(e["source"], 1.0),
                           name=e["name"]))
    return blocks


def load_matching(net, state) -> list:
    """Load the weights of `state` whose names and shapes `net` shares; the names of those left as initialised."""
    own = net.state_dict()
    usable = {k: v.float() if v.is_floating_point() else v for k, v in state.items()
              if k in own and own[k].shape == v.shape}
    net.load_state_dict(usable, strict=False)
    return sorted(set(own) - set(usable))


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
    ap.add_argument("--warmup-steps", type=int, default=50, help="linear learning-rate warm-up")
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
    ap.add_argument("--arch", choices=model.ARCHITECTURES, default="effnet_lite0",
                    help="effnet_lite0: U-Net on an ImageNet-pretrained EfficientNet-Lite0 (the default); "
                         "unet_small: the small U-Net from scratch (buildings_unet_small)")
    ap.add_argument("--snapshot-every-minutes", type=float, default=0.0,
                    help="save the (averaged) weights this often instead of validating and exporting; "
                         "`training.select` validates the snapshots later")
    ap.add_argument("--cache", default=CACHE_DIR, help="a cache from training.data or training.spacenet_data")
    ap.add_argument("--run-dir", default=os.path.join(RUNS_DIR, time.strftime("%Y%m%d-%H%M%S")))
    args = ap.parse_args()

    start = time.time()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    torch.backends.cudnn.benchmark = True  # fixed crop size: let cuDNN pick its fastest kernels once
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
    snapshots = args.snapshot_every_minutes > 0
    oam_buildings = args.task == "buildings" and os.path.abspath(args.cache) == os.path.abspath(CACHE_DIR)
    validation = None if oam_buildings or snapshots else load_blocks(args.cache, channels, split="val")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    sampler = augment.BlockSampler(blocks, weights, device, seed=args.seed)
    del blocks
    net = model.build(args.arch, len(channels), pretrained=not args.init)
    if args.init:
        skipped = load_matching(net, torch.load(args.init, map_location="cpu")["model"])
        if skipped:
            note(event="init", fresh=skipped)  # e.g. a buildings head when training roads from its encoder
    net = net.to(device, memory_format=torch.channels_last)
    # bfloat16 on a GPU: twice the throughput, and no loss scaling needed
    autocast = torch.autocast("cuda", torch.bfloat16, enabled=device.type == "cuda")
    # the weights validated and exported: an average over the last steps smooths out the noise of small batches
    averaged = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(args.ema), use_buffers=True) if args.ema else None
    shipped = averaged.module if averaged is not None else net
    opt = torch.optim.AdamW(net.parameters(), lr=args.lr, weight_decay=1e-4)
    deadline = start + args.minutes * 60
    next_export = start + 60 * (args.snapshot_every_minutes if snapshots else args.first_export_minutes)
    best_f1, step, warmup = args.min_score, 0, args.warmup_steps
    timings = None

    def snapshot():
        path = os.path.join(args.run_dir, f"snapshot-{step:06d}.pt")
        state = {k: v.half() if v.is_floating_point() else v for k, v in shipped.state_dict().items()}
        torch.save({"model": state, "arch": args.arch, "task": args.task, "step": step,
                    "minutes": round((time.time() - start) / 60, 2), "hardware": _hardware(),
                    "batch": args.batch}, path)
        note(event="snapshot", step=step, path=os.path.basename(path))

    def checkpoint(final=False):
        nonlocal best_f1, timings
        if snapshots:
            return snapshot()
        from training import evaluate
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
            timings = cpu_timings(shipped, _card(result, {}, step, start, args), args.run_dir)
        publish(shipped, _card(result, timings, step, start, args), step, args.arch, args.run_dir)
        note(event="exported", step=step, seconds=round(time.time() - t0, 1))

    net.train()
    t_last, losses = time.time(), []
    while time.time() < deadline:
        progress = (time.time() - start) / (deadline - start)
        cosine = 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
        lr = args.lr * min(1.0, (step + 1) / warmup) * (0.02 + 0.98 * cosine)
        for g in opt.param_groups:
            g["lr"] = lr
        x, y = sampler.batch(args.batch)
        with autocast:
            logits = net.logits(x.contiguous(memory_format=torch.channels_last))
        loss, bce, dice = loss_fn(logits.float(), y, args.contact_weight, args.small_weight)
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
        if snapshots and time.time() >= next_export:
            snapshot()
            next_export = time.time() + args.snapshot_every_minutes * 60
        elif not snapshots and time.time() >= next_export and deadline - time.time() > 8 * 60:
            checkpoint()
            next_export = time.time() + args.export_every_minutes * 60
    checkpoint(final=True)
    if not snapshots:  # with snapshots, the last one is these weights
        torch.save({"model": shipped.state_dict(), "arch": args.arch, "step": step},
                   os.path.join(args.run_dir, "last.pt"))
    note(event="done", step=step, best_f1=round(best_f1, 4))


def cpu_timings(net, card, run_dir) -> dict:
    """The card's CPU milliseconds per 512 px tile, from a copy exported into the run folder (per run: two runs
    may time at once)."""
    from training import evaluate, export
    timing = os.path.join(run_dir, "timing.onnx")
    export.export(net, card, timing, timing + ".fp16")
    return {"cpu_ms_per_512_tile_1_thread": evaluate.cpu_ms_per_tile(timing, 1),
            "cpu_ms_per_512_tile_2_threads": evaluate.cpu_ms_per_tile(timing, 2)}


def publish(net, card, step, arch, run_dir):
    """Export the weights to models/ and keep them, with their card, as the run's best.pt and card.json."""
    from training import export
    export.export(net, card)
    torch.save({"model": net.state_dict(), "arch": arch, "card": card, "step": step},
               os.path.join(run_dir, "best.pt"))
    with open(os.path.join(run_dir, "card.json"), "w") as f:
        json.dump(card, f, indent=1)


def _card(result, timings, step, start, args):
    run = {"hardware": _hardware(), "duration_minutes": round((time.time() - start) / 60, 1),
           "epochs_or_steps": f"{step} steps of {args.batch} crops 256x256"}
    return card(result, timings, run, args)


def card(result, timings, run, args):
    """The model card of weights scored `result` (training.evaluate or cache_scores); `run` says where and how
    long they trained; `args` names the task, architecture and cache."""
    from training import evaluate, export
    if args.task == "buildings" and "kampala_pixel_iou" in result:
        defaults = evaluate.card_defaults(result)
        scores = {"kampala_pixel_iou": round(result["kampala_pixel_iou"], 4),
                  "validation_pixel_iou": round(result["validation_pixel_iou"], 4),
                  "validation_object_f1": round(result["f1"], 4), **timings}
        training = {"data": ("HOT OSM fAIr / RAMP oam_buildings: OpenAerialMap XYZ chips (z19 native, z20/z21 "
                             "downsampled) resampled to 0.3 m, OSM building footprints rasterised"),
                    "areas": TRAINING_AREAS, "validation": VALIDATION_AREAS,
                    "held_out": "ramp_hotosm area 2 (Kampala)", **run}
        return export.model_card(defaults, scores, training, arch=args.arch)
    with open(os.path.join(args.cache, "index.json")) as f:
        index = json.load(f)
    defaults = {"threshold": 0.5} if args.task == "roads" else {"threshold": 0.5, "min_area_m2": 10.0,
                                                                 "interior_threshold": 0.5}
    scores = {"validation_pixel_iou": round(result["pixel_iou"], 4)} if "pixel_iou" in result else {}
    training = {"data": f"SpaceNet tiles resampled to 0.3 m ({os.path.basename(os.path.abspath(args.cache))})",
                "areas": [e["name"] for e in index if e["split"] == "train"],
                "validation": [e["name"] for e in index if e["split"] == "val"], **run}
    return export.model_card(defaults, {**scores, **timings}, training, task=args.task, arch=args.arch)


def _hardware():
    threads = torch.get_num_threads()
    if torch.cuda.is_available():
        return f"GPU ({torch.cuda.get_device_name(0)})"
    return f"CPU, {threads} thread{'s' if threads > 1 else ''}"


if __name__ == "__main__":
    main()
