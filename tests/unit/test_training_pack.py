"""training.pack: what travels to a GPU machine must unpack to exactly the cache it came from."""
import json

import numpy as np

from tests.support.training_cache import write_cache
from training import pack


def test_a_packed_block_unpacks_to_the_same_pixels_with_its_weights_precomputed(tmp_path):
    cache, out = tmp_path / "cache", tmp_path / "packed"
    cache.mkdir()
    write_cache(cache, np.random.default_rng(0))
    index = pack.pack(cache, out)
    assert [e["name"] for e in index] == ["a", "c"]  # the training split only
    assert json.loads((out / "index.json").read_text()) == index
    for name in ("a", "c"):
        original, packed = np.load(cache / f"{name}.npz"), np.load(out / f"{name}.npz")
        assert "images" not in packed.files and "instances" not in packed.files
        np.testing.assert_array_equal(pack.unpack_images(packed), original["images"])
        np.testing.assert_array_equal(packed["building"], original["building"])
        assert packed["contact"][10, 19:21].all() and not packed["contact"][30, 40]  # where the roofs meet
        assert packed["small"].dtype == np.uint8 and packed["small"][10, 10] > 0 and packed["small"][30, 40] == 0
