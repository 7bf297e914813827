"""A tiny training cache in the layout `training.data` writes: three blocks of two touching roofs, for tests of
the training tools that need a cache but not the datasets."""

import json

import numpy as np


def write_cache(folder, rng):
    blocks = []
    for name, split in (("a", "train"), ("b", "val"), ("c", "train")):
        images = rng.integers(0, 256, (3, 40, 56, 3), dtype=np.uint8)
        instances = np.zeros((40, 56), np.int32)
        instances[5:15, 5:20], instances[5:15, 20:30] = 1, 2  # two roofs that touch
        np.savez_compressed(folder / f"{name}.npz", images=images, valid=np.ones((3, 40, 56), bool),
                            building=(instances > 0).astype(np.uint8), interior=np.zeros((40, 56), np.uint8),
                            instances=instances, zooms=np.array([19, 20, 21]))
        blocks.append({"name": name, "split": split, "source": "test"})
    (folder / "index.json").write_text(json.dumps(blocks))
