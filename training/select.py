"""Choose among a run's snapshots on the validation areas, and export the best with defaults tuned there.

A GPU machine lent without the validation data trains with `--snapshot-every-minutes`; this scores each
snapshot with `training.evaluate` (object F1 on the validation areas, defaults tuned there; Kampala's pixel IoU is
reported, never used) and exports the best one to models/ as `training.train` would have.

    training/.venv/bin/python -m training.select training/runs/RUN [--cache training/cache] [--min-score F1]
"""
import argparse
import glob
import json
import os
import types

import torch

from training import evaluate, model, train
from training.paths import CACHE_DIR


def load(path):
    saved = torch.load(path, map_location="cpu")
    channels = train.CHANNELS[saved.get("task", "buildings")]
    net = model.build(saved.get("arch", "unet_small"), len(channels))
    net.load_state_dict({k: v.float() for k, v in saved["model"].items()})
    return net.eval(), saved


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_dir")
    ap.add_argument("--cache", default=CACHE_DIR)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--min-score", type=float, default=-1.0,
                    help="export only when the best snapshot's validation F1 is above this (e.g. the shipped "
                         "model's, when fine-tuning); 1: score the snapshots and export nothing")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    paths = sorted(glob.glob(os.path.join(args.run_dir, "snapshot-*.pt")))
    if not paths:
        raise SystemExit(f"{args.run_dir} has no snapshot-*.pt files.")
    scored = []
    for path in paths:
        net, saved = load(path)
        task = saved.get("task", "buildings")
        if task == "buildings" and os.path.abspath(args.cache) == os.path.abspath(CACHE_DIR):
            result = evaluate.evaluate(evaluate.torch_runner(net))
        else:  # as training.train validates any other cache; without validation tiles, the last one wins
            validation = train.load_blocks(args.cache, train.CHANNELS[task], split="val")
            result = evaluate.cache_scores(evaluate.torch_runner(net), validation)
        scored.append((result["f1"], saved["step"], path, result, saved))
        print(json.dumps({"snapshot": os.path.basename(path), "step": saved["step"],
                          **{k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}}), flush=True)
    best_f1, _, path, result, saved = max(scored, key=lambda item: item[:2])
    if best_f1 <= args.min_score:
        print(json.dumps({"chosen": None, "best_f1": round(best_f1, 4), "min_score": args.min_score}))
        return
    net, _ = load(path)
    options = types.SimpleNamespace(task=saved.get("task", "buildings"), arch=saved.get("arch", "unet_small"),
                                    cache=args.cache, batch=saved.get("batch"))
    run = {"hardware": saved["hardware"], "duration_minutes": saved["minutes"],
           "epochs_or_steps": f"{saved['step']} steps of {saved.get('batch')} crops 256x256"}
    timings = train.cpu_timings(net, train.card(result, {}, run, options), args.run_dir)
    card = train.card(result, timings, run, options)
    train.publish(net, card, saved["step"], options.arch, args.run_dir)
    print(json.dumps({"chosen": os.path.basename(path), "card": card}, indent=1))


if __name__ == "__main__":
    main()
