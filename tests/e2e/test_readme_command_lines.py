"""The README's command lines run as printed: `scripts/qgis-process` sets up what a bare qgis_process lacks after
`make setup` (the venv's packages, the plugin, no display), and every example names real parameters."""

import json
import os
import re
import shlex
import shutil
import subprocess

import pytest
from osgeo import ogr

pytestmark = pytest.mark.e2e


def readme_command_lines(repo_root) -> list:
    """The README's `scripts/qgis-process` lines, continuation lines joined."""
    text = (repo_root / "README.md").read_text().replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.startswith("scripts/qgis-process ")]


def wrapper_env(tmp_path) -> dict:
    """The caller's environment, minus what the test runner set for QGIS: the wrapper must set it up itself."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("QGIS_PLUGINPATH", "PYTHONPATH", "LD_PRELOAD", "QT_QPA_PLATFORM", "XDG_RUNTIME_DIR")}
    env["QGIS_CUSTOM_CONFIG_PATH"] = str(tmp_path / "profile")  # a scratch profile, not .build/cli-profile
    return env


def run_as_printed(line, cwd, env, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run(shlex.split(line), cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def checkout_view(repo_root, tmp_path):
    """A folder that looks like the checkout's root where the example's outputs can land (scripts and samples
    linked, so the README's relative paths resolve and nothing is written into the checkout)."""
    root = tmp_path / "root"
    root.mkdir()
    for name in ("scripts", "sample_data"):
        (root / name).symlink_to(repo_root / name)
    return root


def test_the_extraction_example_runs_as_printed(repo_root, tmp_path):
    line = next(c for c in readme_command_lines(repo_root) if "spacenet:extractbuildings" in c)
    root = checkout_view(repo_root, tmp_path)
    completed = run_as_printed(line, root, wrapper_env(tmp_path))
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "Traceback" not in completed.stdout + completed.stderr
    results = json.loads(completed.stdout[completed.stdout.index("{"):])["results"]
    dataset = ogr.Open(str(root / "buildings.gpkg"))  # kept: its layer dies with it
    assert results["BUILDING_COUNT"] > 0 and dataset.GetLayer(0).GetFeatureCount() == results["BUILDING_COUNT"]
    assert (root / "probability.tif").is_file()


def test_every_example_names_an_algorithm_and_parameters_that_exist(repo_root, tmp_path):
    lines = readme_command_lines(repo_root)
    assert len(lines) >= 6
    env = wrapper_env(tmp_path)
    for line in lines:
        algorithm = re.search(r" run (\S+)", line).group(1)
        helped = run_as_printed(f"scripts/qgis-process help {algorithm}", repo_root, env)
        assert helped.returncode == 0, helped.stdout + helped.stderr
        for name in re.findall(r"--(\w+(?::\w+)?)=", line):
            assert re.search(rf"^{re.escape(name)}:", helped.stdout, re.MULTILINE), (algorithm, name)


def test_list_shows_the_eleven_algorithms(repo_root, tmp_path):
    listed = run_as_printed("scripts/qgis-process list", repo_root, wrapper_env(tmp_path))
    assert listed.returncode == 0, listed.stderr
    assert len(re.findall(r"^\s+spacenet:\w+", listed.stdout, re.MULTILINE)) == 11
    assert "\nSpaceNet\n" in listed.stdout  # every package present: the group's name has no note


def test_without_make_setup_it_says_what_to_do(repo_root, tmp_path):
    bare = tmp_path / "clone"
    (bare / "scripts").mkdir(parents=True)
    shutil.copy(repo_root / "scripts" / "qgis-process", bare / "scripts")
    completed = run_as_printed(f"{bare / 'scripts' / 'qgis-process'} list", tmp_path, wrapper_env(tmp_path))
    assert completed.returncode == 2
    assert f"the plugin is not set up in {bare}: run 'make setup' there first." in completed.stderr
