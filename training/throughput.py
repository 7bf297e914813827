"""Device-only throughput of a trained network: km² of 0.3 m imagery per second, with the input already on the
device and the probabilities left there (what the model itself costs, not the engine around it).

The engine runs 1024 px tiles with 256 px overlap, so each tile adds (1024 - 256)² new pixels: that is the area
counted. On a GPU the network runs in float16, as the engine's fp16 variant does.

    python -m training.throughput --checkpoint training/runs/RUN/snapshot-004500.pt [--batch 16]
"""
import argparse
import json
import time

import torch

from training import model

GSD_M, TILE, OVERLAP = 0.3, 1024, 256


def km2_per_second(net, device, batch=16, repeats=20, dtype=torch.float16):
    net = net.to(device, dtype).eval().to(memory_format=torch.channels_last)
    x = torch.rand(batch, 3, TILE, TILE, device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        for _ in range(3):
            net(x)
        torch.cuda.synchronize() if device.type == "cuda" else None
        t0 = time.perf_counter()
        for _ in range(repeats):
            net(x)
        torch.cuda.synchronize() if device.type == "cuda" else None
    seconds = (time.perf_counter() - t0) / repeats
    km2 = batch * ((TILE - OVERLAP) * GSD_M) ** 2 / 1e6
    return {"device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu", "dtype": str(dtype),
            "batch": batch, "tile_px": TILE, "ms_per_batch": round(seconds * 1000, 2),
            "km2_per_s": round(km2 / seconds, 2)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--batch", type=int, default=16)
    args = ap.parse_args()
    saved = torch.load(args.checkpoint, map_location="cpu")
    channels = 1 if saved.get("task") == "roads" else 2
    net = model.build(saved.get("arch", "unet_small"), channels)
    net.load_state_dict({k: v.float() for k, v in saved["model"].items()})
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    print(json.dumps({"arch": saved.get("arch"), **km2_per_second(net, device, args.batch, dtype=dtype)}))


if __name__ == "__main__":
    main()
