"""The Install button's decisions (core/installer.py): what it installs, what it keeps as QGIS has it, which Python's
pip it runs, and what it says when pip cannot install (real pip runs against indexes that cannot answer)."""

import os
import stat
import subprocess
import sys
import time
import venv
from pathlib import Path, PurePosixPath, PureWindowsPath

import numpy
import pytest

from spacenet_toolkit.core import dependencies, installer

UNREACHABLE = "http://127.0.0.1:9/"  # the discard port: nothing listens, the connection is refused at once


@pytest.fixture
def pip_without_config(monkeypatch):
    """pip sees only the index a test names: no configuration file, no find-links or extra index of this
    machine (they would find the packages on its disk)."""
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    for name in list(os.environ):
        if name.startswith("PIP_") and name != "PIP_CONFIG_FILE":
            monkeypatch.delenv(name)


# ------------------------------------------------------------------------------------------------------ choices
def test_onnxruntime_gpu_where_an_nvidia_gpu_answers_and_the_cpu_build_otherwise():
    installed = {"numpy": "1.24.2"}
    with_gpu = installer.plan_required(["onnxruntime", "networkx"], gpu=True, installed=installed)
    without = installer.plan_required(["onnxruntime", "networkx"], gpu=False, installed=installed)

    assert with_gpu.requirements == ("onnxruntime-gpu", "networkx")
    assert without.requirements == ("onnxruntime", "networkx")
    assert "onnxruntime-gpu" in with_gpu.manual_command and "onnxruntime-gpu" not in without.manual_command
    assert with_gpu.modules == without.modules == ("onnxruntime", "networkx")


def test_by_default_it_installs_the_missing_required_packages_by_their_pip_names():
    absent = dependencies.missing(dependencies.PACKAGES)
    plan = installer.plan_required(gpu=False, installed={"numpy": "1.24.2"})

    assert plan.modules == tuple(absent)
    assert len(plan.requirements) == len(absent)
    everything = installer.plan_required(list(dependencies.PACKAGES)[1:], gpu=False, installed={"numpy": "1.24.2"})
    assert "scikit-image" in everything.requirements and "shapely>=2" in everything.requirements


def _nvidia_smi(folder: Path, script: str) -> str:
    """A folder holding an ``nvidia-smi`` that behaves as ``script`` says: the PATH a machine would have."""
    program = folder / "nvidia-smi"
    program.write_text("#!/bin/sh\n" + script + "\n")
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    return str(folder)


def test_the_gpu_is_what_nvidia_smi_lists(tmp_path, monkeypatch):
    (tmp_path / "card").mkdir()
    (tmp_path / "driver-only").mkdir()
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv("PATH", _nvidia_smi(tmp_path / "card", 'echo "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-1)"'))
    assert installer.nvidia_gpu()
    monkeypatch.setenv("PATH", _nvidia_smi(tmp_path / "driver-only",
                                           'echo "NVIDIA-SMI has failed because it could not communicate"; exit 9'))
    assert not installer.nvidia_gpu()
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert not installer.nvidia_gpu()
    assert installer.plan_required(["onnxruntime"], installed={"numpy": "1.24.2"}).requirements == ("onnxruntime",)


def test_rasterio_and_shapely_are_built_from_source_only_where_the_tools_are():
    both = {"rasterio": True, "shapely": True}
    plan = installer.plan_required(["rasterio", "shapely", "networkx"], gpu=False, installed={"numpy": "1.24.2"},
                                   source_builds=both)
    assert plan.no_binary == ("rasterio", "shapely")
    wheels = installer.plan_required(["rasterio", "shapely"], gpu=False, installed={"numpy": "1.24.2"},
                                     source_builds={"rasterio": False, "shapely": False})
    assert wheels.no_binary == ()
    assert any("binary wheel" in note for note in wheels.notes)
    # Windows and macOS never build: their QGIS has no gdal-config to build against
    assert not installer.source_build_possible("rasterio", platform="win32")
    assert not installer.source_build_possible("shapely", platform="darwin")
    assert not installer.source_build_possible("networkx", platform="linux")


# ------------------------------------------------------------------------------------------- what QGIS keeps
def test_every_installed_distribution_is_pinned_numpy_first_among_them():
    installed = installer.installed_distributions()
    constraints = installer.constraints_for(installed)

    assert installed["numpy"] == numpy.__version__
    assert f"numpy=={numpy.__version__}" in constraints
    plan = installer.plan_required(["networkx"], gpu=False)
    assert f"numpy=={numpy.__version__}" in plan.constraints


def test_unknown_versions_are_not_pinned_and_old_attrs_keeps_affine_2():
    constraints = installer.constraints_for(
        {"numpy": "1.24.2", "attrs": "22.2.0", "mpmath": "0.0.0", "lz4": "4.0.2+dfsg", "odd": "2:1.0-3"})

    assert "numpy==1.24.2" in constraints and "lz4==4.0.2+dfsg" in constraints
    assert not any(pin.startswith(("mpmath", "odd")) for pin in constraints)
    assert "affine<3" in constraints  # ENVIRONMENT.md trap 4
    assert "affine<3" not in installer.constraints_for({"numpy": "1.26.4", "attrs": "23.2.0"})


def test_the_plugin_folder_is_not_pinned(tmp_path):
    folder = tmp_path / "packages"
    (folder / "example_package-1.0.dist-info").mkdir(parents=True)
    (folder / "example_package-1.0.dist-info" / "METADATA").write_text("Name: example-package\nVersion: 1.0\n")
    sys.path.append(str(folder))
    try:
        assert installer.installed_distributions()["example-package"] == "1.0"
        assert "example-package" not in installer.installed_distributions(exclude=[folder])
    finally:
        sys.path.remove(str(folder))


def test_without_numpy_nothing_is_installed_and_the_user_is_told_to_repair_qgis(tmp_path):
    plan = installer.plan_required(["numpy", "shapely"], gpu=False, installed={"scipy": "1.10.1"})

    assert plan.refused and "never installs numpy" in plan.refused and "python3-numpy" in plan.refused
    result = installer.install(plan, tmp_path / "packages", python="/nonexistent/python3")
    assert result.status == "refused" and not result.ok
    assert not (tmp_path / "packages").exists()


def test_nothing_missing_means_nothing_runs(tmp_path):
    plan = installer.plan_required([], installed={"numpy": "1.24.2"})
    result = installer.install(plan, tmp_path / "packages", python="/nonexistent/python3")
    assert result.status == "nothing-to-install" and result.ok and result.manual_commands == []


def test_extras_come_with_their_size_and_pytorch_with_its_cpu_index_on_linux():
    dask = installer.plan_extra("distributed", installed={"numpy": "1.24.2"})
    assert dask.requirements == ("dask[distributed]",) and dask.index_url == ""
    assert installer.EXTRAS["distributed"].download_mb > 0 and installer.EXTRAS["torch"].download_mb >= 100
    linux = installer.plan_extra("torch", installed={"numpy": "1.24.2"}, platform="linux")
    windows = installer.plan_extra("torch", installed={"numpy": "1.24.2"}, platform="win32")
    assert linux.index_url == "https://download.pytorch.org/whl/cpu" and windows.index_url == ""
    assert linux.manual_command == "python -m pip install torch --index-url https://download.pytorch.org/whl/cpu"
    assert "numpy==1.24.2" in linux.constraints


# ---------------------------------------------------------------------------------------------- the interpreter
def test_qgis_python_is_looked_for_beside_its_standard_library_before_sys_executable():
    # qgis_process on Linux: sys.executable is whatever python3 the PATH finds first (trap 9)
    linux = installer.python_candidates("/usr", "/home/me/.pyenv/shims/python3", (3, 11), "linux")
    assert linux[0] == PurePosixPath("/usr/bin/python3.11") and linux[1] == PurePosixPath("/usr/bin/python3")
    assert linux[-1] == PurePosixPath("/home/me/.pyenv/shims/python3")
    # OSGeo4W: sys.executable is qgis-bin.exe, the interpreter is in apps/Python312 and python3.exe beside QGIS
    windows = installer.python_candidates(r"C:\OSGeo4W\apps\Python312", r"C:\OSGeo4W\bin\qgis-bin.exe", (3, 12),
                                          "win32")
    assert windows[0] == PureWindowsPath(r"C:\OSGeo4W\apps\Python312\python.exe")
    assert PureWindowsPath(r"C:\OSGeo4W\bin\python3.exe") in windows
    assert not any(c.name == "qgis-bin.exe" for c in windows)


def test_the_interpreter_must_answer_with_the_running_version(tmp_path):
    found = installer.python_for_pip()
    answer = subprocess.run([str(found), "-c", "import sys; print(sys.version_info[:2])"], capture_output=True,
                            text=True, check=True)
    assert answer.stdout.strip() == str(tuple(sys.version_info[:2]))

    assert installer.python_for_pip([tmp_path / "missing", "/bin/true", sys.executable]) == Path(sys.executable)
    with pytest.raises(installer.InstallerError, match="No Python 2.7 interpreter.*tried: .*/bin/true"):
        installer.python_for_pip(["/bin/true", sys.executable], version=(2, 7))


# --------------------------------------------------------------------------------------- when pip cannot install
def test_a_python_without_pip_gets_the_manual_command(tmp_path):
    bare = tmp_path / "bare"
    venv.create(bare, with_pip=False)  # a locked-down Python: no pip module
    plan = installer.plan_extra("torch", installed={"numpy": "1.24.2"}, platform="win32")
    result = installer.install(plan, tmp_path / "profile" / "packages", python=bare / "bin" / "python")

    assert result.status == "no-pip" and not result.ok
    assert "pip does not run in QGIS's Python" in result.message and "No module named pip" in result.message
    assert result.manual_commands == ["python -m pip install torch"]
    assert not (tmp_path / "profile" / "packages").exists()


def test_an_unreachable_index_is_said_so_with_the_manual_command(tmp_path, pip_without_config):
    target = tmp_path / "profile" / "python" / "packages"
    lines = []
    plan = installer.plan_extra("torch")
    result = installer.install(plan, target, python=sys.executable,
                               report=lambda fraction, line: lines.append((fraction, line)),
                               pip_args=["--index-url", UNREACHABLE, "--no-cache-dir", "--retries", "1"])

    assert result.status == "unreachable" and not result.ok and result.returncode == 1
    assert result.message.startswith("pip could not reach the package index (exit status 1): Failed to establish "
                                     "a new connection: [Errno 111] Connection refused.")
    assert result.manual_commands == [plan.manual_command]
    assert any("No matching distribution found for torch" in line for _, line in lines)  # pip's log, streamed
    assert [f for f, _ in lines] == sorted(f for f, _ in lines)  # the progress never goes back
    assert not target.exists() and list(target.parent.iterdir()) == []  # no folder, no temporary leftover


def test_cancel_kills_pip_and_leaves_the_folder_as_it_was(tmp_path, pip_without_config):
    import silent_server

    target = tmp_path / "packages"
    target.mkdir()
    (target / "kept.txt").write_text("from an earlier install")
    started = []
    with silent_server.SilentServer() as index:  # pip waits for an index that never answers
        plan = installer.plan_extra("torch")

        def is_canceled():
            return bool(index.requests) and time.monotonic() - started[0] > 0.5

        started.append(time.monotonic())
        result = installer.install(plan, target, python=sys.executable, is_canceled=is_canceled,
                                   pip_args=["--index-url", index.base_url + "/", "--no-cache-dir"])
    assert result.status == "canceled" and result.manual_commands == []
    assert index.requests  # pip was waiting on it when it was stopped
    assert sorted(p.name for p in tmp_path.iterdir()) == ["packages"]
    assert sorted(p.name for p in target.iterdir()) == ["kept.txt"]
