"""training.from_onnx: a shipped model, whose PyTorch checkpoint is gone, becomes a checkpoint that training can
continue from and that computes what the file computes. Runs in the real training Python on the shipped file."""

import json
import subprocess

import numpy as np

from tests.support.training_cache import write_cache
from tests.support.training_python import training_python

SHIPPED = "models/buildings_effnet_lite0.onnx"


def recover(repo_root, tmp_path, *options):
    cache = tmp_path / "cache"
    cache.mkdir(exist_ok=True)
    write_cache(cache, np.random.default_rng(0))
    return subprocess.run([training_python(), "-m", "training.from_onnx", SHIPPED, "--out", str(tmp_path / "init.pt"),
                           "--cache", str(cache), "--calibration-batches", "2", *options],
                          capture_output=True, text=True, timeout=300, cwd=repo_root)


def test_the_recovered_checkpoint_computes_what_the_shipped_file_computes(repo_root, tmp_path):
    done = recover(repo_root, tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["largest_difference"] < 1e-3
    assert (tmp_path / "init.pt").stat().st_size > 1_000_000


def test_a_file_of_another_architecture_is_refused_by_name_and_nothing_is_written(repo_root, tmp_path):
    done = recover(repo_root, tmp_path, "--arch", "unet_small")
    assert done.returncode != 0
    assert "another network" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "init.pt").exists()
