"""Installs the plugin's missing Python packages, with pip, into a folder the plugin owns (the *Install* button).

What is installed
    The required packages of ``dependencies.PACKAGES`` that do not import, or one optional extra (``EXTRAS``:
    Dask, PyTorch on the CPU) on its own. onnxruntime comes as ``onnxruntime-gpu`` where ``nvidia-smi -L`` lists a
    GPU, as ``onnxruntime`` otherwise (never both: they share one package folder).

Never replacing what QGIS ships
    The folder is appended to ``sys.path`` after QGIS's own paths (qgis_adapter/plugin_packages.py), so a package
    QGIS has always wins over a copy in the folder. pip is therefore told the world as it will import: every
    distribution already importable is a constraint pinned to its installed version (numpy first: numpy 2 breaks
    QGIS's compiled modules), so pip picks versions of the new packages that work with QGIS's numpy, scipy,
    attrs... rather than copies that QGIS's would shadow. numpy, the GDAL bindings, PyQt and QGIS are never
    installed: a resolution that wants one is refused, and a QGIS without numpy is told to repair QGIS. Known
    clashes get one more constraint (affine 3 breaks on attrs < 23.2: ``affine<3`` there).

How
    ``pip install --target`` alone ignores what is installed (it would copy numpy and scipy into the folder), so
    pip runs twice: ``--dry-run --report`` resolves against QGIS's packages (and the folder's, on PYTHONPATH), then
    ``--target <temporary folder> --no-deps`` installs exactly the resolved list. The temporary folder lies beside
    the plugin's folder; the new packages are imported from it by QGIS's interpreter (after QGIS's paths, as the
    plugin will) and only then moved in, so a cancelled, failed or broken install leaves the folder as it was.
    pip is the one beside QGIS's standard library (``python_for_pip``): inside QGIS or qgis_process
    ``sys.executable`` can be QGIS itself or whatever python3 is first on the PATH; a candidate counts only when it
    answers with the running Python's version. pip needs 22.2 or newer (``--report``). Where pip cannot run (no pip
    module, an index it cannot reach, a build that fails) the result says why and gives the manual commands.

rasterio and shapely (ENVIRONMENT.md trap 3)
    Their binary wheels bundle their own GDAL and GEOS, which misbehave inside a QGIS process where QGIS's libgdal
    and libgeos_c are loaded first. Where QGIS's Python already has them (Debian's python3-rasterio, OSGeo4W's
    shapely) they are not missing and nothing is installed. Where they are missing on Linux with a C compiler,
    Python's headers and ``gdal-config`` (rasterio) or ``geos-config`` (shapely), they are built from source
    against the system's libraries (``--no-binary``), as ``make setup`` does. Elsewhere (Windows, macOS, Linux
    without build tools) the wheels are installed: the plugin's code passes ``output_dimension`` explicitly and
    converts geometry through QgsGeometry, and tests/e2e/test_install_button.py runs an extraction and QGIS's
    GDAL algorithms in one QGIS process after importing them.

No qgis import: the caller names the folder (QGIS's profile ``python/spacenet_toolkit_packages``).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty, Queue

from . import dependencies
from .progress import IsCanceled, Report
from .python_interpreter import python_candidates

# The distributions QGIS ships and the installer never installs, whatever asks for them.
NEVER_INSTALL = frozenset({"numpy", "gdal", "pyqt5", "pyqt6", "pyqt5-sip", "pyqt6-sip", "qgis", "sip"})
PIP_MINIMUM = (22, 2)  # --dry-run --report
SOURCE_BUILDS = {"rasterio": "gdal-config", "shapely": "geos-config"}  # built against the system's libraries
TEMPORARY_PREFIX = ".spacenet-install-"


@dataclass(frozen=True)
class Extra:
    module: str  # what ``import`` uses
    requirement: str  # what ``pip install`` uses
    purpose: str
    download_mb: int  # approximate download, the figure the dialog shows
    size_source: str  # where that figure comes from
    linux_index_url: str = ""  # an index that replaces PyPI on Linux (PyTorch's CPU wheels)


EXTRAS = {
    extra.module: extra
    for extra in (
        Extra("distributed", "dask[distributed]",
              dependencies.OPTIONAL["distributed"].purpose if "distributed" in dependencies.OPTIONAL else
              "optional: extraction spread over worker processes or a Dask cluster",
              5, "PyPI wheels of dask 2026.8.0 (1.5 MB) and distributed 2026.8.0 (1.0 MB) plus tornado, msgpack, "
                 "psutil, toolz, partd, cloudpickle, fsspec and zict (about 2 MB)"),
        Extra("torch", "torch",
              "optional: adapting a model to your own imagery (PyTorch, CPU build)",
              200, "torch-2.13.0+cpu cp311 manylinux wheel from download.pytorch.org/whl/cpu: 192 MB, plus sympy, "
                   "networkx, jinja2 and filelock; PyPI's torch 2.15.0 cp311 CPU wheels are 126 MB (Windows) and "
                   "138 MB (macOS)",
              # PyPI's Linux torch is the CUDA build (540 MB and several GB of NVIDIA packages): PyTorch's
              # documented CPU install names its own index.
              linux_index_url="https://download.pytorch.org/whl/cpu"),
        Extra("onnx", "onnx",
              "optional, with PyTorch: adapting a model (reads and writes the model's ONNX graph)",
              17, "PyPI's onnx 1.23.2 cp311 manylinux wheel (about 16 MB) plus protobuf (about 0.3 MB)"),
    )
}


class InstallerError(Exception):
    """Something the installer cannot work around (no interpreter beside QGIS's Python)."""


@dataclass(frozen=True)
class Plan:
    """What one press of an install button does; ``refused`` says why it does nothing instead."""

    modules: tuple  # the modules it makes importable
    requirements: tuple  # pip requirements, e.g. "onnxruntime-gpu", "shapely>=2"
    constraints: tuple = ()  # "numpy==1.24.2", ...: what QGIS has stays as it is
    no_binary: tuple = ()  # built from source against the system's GDAL/GEOS
    index_url: str = ""  # an index that replaces PyPI ("" keeps pip's own settings)
    notes: tuple = ()  # the decisions, for the log
    refused: str = ""

    @property
    def manual_command(self) -> str:
        """The pip command a user runs by hand in QGIS's Python (the OSGeo4W Shell on Windows)."""
        named = [requirement if module == "onnxruntime" and requirement.startswith("onnxruntime") else module
                 for module, requirement in zip(self.modules, self.requirements)]
        command = dependencies.install_command(named)
        return command + (f" --index-url {self.index_url}" if self.index_url else "")


@dataclass
class InstallResult:
    # "installed", "nothing-to-install", "no-pip", "pip-too-old", "no-python", "unreachable", "failed",
    # "broken" (installed but does not import), "refused", "canceled"
    status: str
    message: str
    plan: Plan
    installed: list = field(default_factory=list)  # "name version" of what was moved into the folder
    log: list = field(default_factory=list)  # pip's output and the installer's own lines
    returncode: int | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("installed", "nothing-to-install")

    @property
    def manual_commands(self) -> list:
        """What to run by hand when the install did not happen."""
        if self.ok or self.status == "canceled" or not self.plan.requirements:
            return []
        return [self.plan.manual_command]


# ----------------------------------------------------------------------------------------------------- decisions
def nvidia_gpu(timeout: float = 10.0) -> bool:
    """True when ``nvidia-smi -L`` answers with a GPU (an NVIDIA driver and a card are there)."""
    executable = shutil.which("nvidia-smi")
    if executable is None:
        return False
    try:
        answer = subprocess.run([executable, "-L"], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return False
    return answer.returncode == 0 and any(line.startswith("GPU") for line in answer.stdout.splitlines())


def installed_distributions(exclude=()) -> dict:
    """Canonical name -> version of every distribution this Python imports, the first on ``sys.path`` where
    there are two (the one that imports), leaving out those in the folders of ``exclude``."""
    excluded = [Path(folder).resolve() for folder in exclude]
    found = {}
    for distribution in importlib.metadata.distributions():
        name = distribution.metadata["Name"]
        if not name:
            continue
        location = Path(str(distribution.locate_file(""))).resolve()
        if any(location == folder or folder in location.parents for folder in excluded):
            continue
        found.setdefault(canonical(name), distribution.version)
    return found


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


# A plain PEP 440 version; Debian writes 0.0.0 where it does not know the version (its mpmath, kiwisolver).
_PINNABLE = re.compile(r"^\d+(\.\d+)*((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?(\+[a-z0-9.]+)?$", re.IGNORECASE)


def constraints_for(installed: dict) -> list:
    """Constraints that keep every installed distribution at its version, and avoid the known clashes."""
    pins = [f"{name}=={version}" for name, version in sorted(installed.items())
            if _PINNABLE.match(version) and version != "0.0.0"]
    attrs = installed.get("attrs")
    if attrs and _version_tuple(attrs) < (23, 2):
        pins.append("affine<3")  # affine 3 fails on attrs 22 ('_astuple'): ENVIRONMENT.md trap 4
    return pins


def source_build_possible(module: str, platform: str = sys.platform) -> bool:
    """Whether ``module`` (rasterio or shapely) can be built here against the system's GDAL/GEOS."""
    if not platform.startswith("linux") or module not in SOURCE_BUILDS:
        return False
    headers = Path(sysconfig.get_paths()["include"]) / "Python.h"
    compiler = shutil.which("cc") or shutil.which("gcc")
    return bool(compiler) and headers.is_file() and shutil.which(SOURCE_BUILDS[module]) is not None


def plan_required(modules=None, gpu: bool | None = None, installed: dict | None = None, exclude=(),
                  platform: str = sys.platform, source_builds: dict | None = None) -> Plan:
    """The plan that installs the missing required packages (or ``modules`` of them).

    ``gpu`` None asks ``nvidia-smi``; ``installed`` None reads this Python's distributions (less those in
    ``exclude``, the plugin's own folder); ``source_builds`` (module -> bool) None looks for the build tools."""
    modules = list(dependencies.missing(dependencies.PACKAGES) if modules is None else modules)
    installed = installed_distributions(exclude) if installed is None else installed
    constraints = tuple(constraints_for(installed))
    if "numpy" in modules or "numpy" not in installed:
        return Plan(tuple(m for m in modules if m != "numpy"), (), constraints, refused=(
            "numpy does not import in QGIS's Python, and QGIS ships it (its GDAL bindings need it): the installer "
            "never installs numpy. Repair or reinstall QGIS (Debian/Ubuntu: apt install python3-numpy)."))
    if not modules:
        return Plan((), (), constraints, notes=("Every required package is installed.",))
    gpu = nvidia_gpu() if gpu is None and "onnxruntime" in modules else bool(gpu)
    requirements, no_binary, notes = [], [], []
    for module in modules:
        requirement = dependencies.PACKAGES[module].pip_name if module in dependencies.PACKAGES else module
        if module == "onnxruntime":
            requirement = "onnxruntime-gpu" if gpu else "onnxruntime"
            notes.append("onnxruntime-gpu: nvidia-smi lists an NVIDIA GPU." if gpu else
                         "onnxruntime (CPU): no NVIDIA GPU answers nvidia-smi.")
        if module in SOURCE_BUILDS:
            possible = source_build_possible(module, platform) if source_builds is None else source_builds[module]
            if possible:
                no_binary.append(module)
                notes.append(f"{module}: built from source against the system's "
                             f"{'GDAL' if module == 'rasterio' else 'GEOS'}, as QGIS loads it "
                             f"(a C compiler and {SOURCE_BUILDS[module]} are here).")
            else:
                notes.append(f"{module}: the binary wheel (no {SOURCE_BUILDS[module]} and C compiler to build it "
                             "against QGIS's libraries).")
        requirements.append(requirement)
    return Plan(tuple(modules), tuple(requirements), constraints, tuple(no_binary), notes=tuple(notes))


def plan_extra(module: str, installed: dict | None = None, exclude=(), platform: str = sys.platform) -> Plan:
    """The plan that installs the optional extra of ``module`` (a key of ``EXTRAS``)."""
    extra = EXTRAS[module]
    installed = installed_distributions(exclude) if installed is None else installed
    index_url = extra.linux_index_url if platform.startswith("linux") else ""
    notes = (f"{extra.requirement}: about {extra.download_mb} MB to download.",)
    if index_url:
        notes += (f"{extra.requirement} from {index_url} (the CPU build; PyPI's Linux build is CUDA's).",)
    return Plan((module,), (extra.requirement,), tuple(constraints_for(installed)), index_url=index_url,
                notes=notes)


# -------------------------------------------------------------------------------------------- the interpreter
def python_for_pip(candidates=None, version=sys.version_info[:2], prefix: str = sys.prefix) -> Path:
    """QGIS's Python interpreter: the first candidate that runs and answers with the running Python's version
    (and its prefix, where one does). Raises InstallerError naming what was tried."""
    candidates = python_candidates() if candidates is None else candidates
    same_version = []
    for candidate in map(Path, candidates):
        if not candidate.is_file():
            continue
        try:
            answer = subprocess.run(
                [str(candidate), "-c", "import sys; print(tuple(sys.version_info[:2])); print(sys.prefix)"],
                capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.SubprocessError):
            continue
        lines = answer.stdout.splitlines()
        if answer.returncode != 0 or len(lines) < 2 or lines[0].strip() != str(tuple(version)):
            continue
        if os.path.normcase(os.path.realpath(lines[1].strip())) == os.path.normcase(os.path.realpath(prefix)):
            return candidate
        same_version.append(candidate)
    if same_version:
        return same_version[0]
    raise InstallerError(
        f"No Python {version[0]}.{version[1]} interpreter was found beside QGIS's Python (tried: "
        + ", ".join(str(c) for c in candidates) + ").")


def pip_version(python) -> tuple:
    """The version of ``python -m pip`` as a tuple, () when pip does not run there, with pip's answer."""
    try:
        answer = subprocess.run([str(python), "-m", "pip", "--version"], capture_output=True, text=True,
                                timeout=120)
    except (OSError, subprocess.SubprocessError) as error:
        return (), str(error)
    match = re.match(r"pip (\d+)\.(\d+)", answer.stdout.strip())
    if answer.returncode != 0 or match is None:
        return (), (answer.stderr or answer.stdout).strip()
    return (int(match.group(1)), int(match.group(2))), answer.stdout.strip()


# ------------------------------------------------------------------------------------------------ the install
def install(plan: Plan, target, python=None, report: Report | None = None, is_canceled: IsCanceled | None = None,
            pip_args=()) -> InstallResult:
    """Carry out ``plan`` into the folder ``target`` (created when needed) with ``python``'s pip (None: QGIS's,
    found by ``python_for_pip``). ``report(fraction, line)`` gets an estimate and each line of pip's log;
    ``is_canceled()`` True stops pip (its processes are killed) and leaves the folder as it was. ``pip_args``
    go to both pip runs (an ``--index-url``, say). Never raises for what pip says: the result tells."""
    session = _Session(plan, report)
    if plan.refused:
        return session.result("refused", plan.refused)
    if not plan.requirements:
        return session.result("nothing-to-install", "Nothing to install: every package asked for imports.")
    for note in plan.notes:
        session.say(0.0, note)
    try:
        python = Path(python) if python is not None else python_for_pip()
    except InstallerError as error:
        return session.result("no-python", f"{error} Install the packages by hand.")
    version, answer = pip_version(python)
    if not version:
        last = answer.strip().splitlines()[-1] if answer.strip() else "no answer"
        return session.result("no-pip", f"pip does not run in QGIS's Python ({python}): {last}. Install pip "
                                        "(Debian/Ubuntu: apt install python3-pip) or the packages by hand.")
    if version < PIP_MINIMUM:
        return session.result("pip-too-old", f"pip {version[0]}.{version[1]} in QGIS's Python ({python}) is too "
                                             "old for the installer (it needs 22.2): install the packages by hand.")
    session.pip = version
    session.say(0.01, f"pip {version[0]}.{version[1]} of {python}")

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(target.parent)
    workspace = Path(tempfile.mkdtemp(prefix=TEMPORARY_PREFIX, dir=target.parent))
    try:
        return _install_in(session, target, python, workspace, is_canceled, list(pip_args))
    finally:
        shutil.rmtree(workspace, ignore_errors=True)


class _Session:
    """The log and the progress of one install."""

    def __init__(self, plan: Plan, report: Report | None):
        self.plan = plan
        self.report = report
        self.log = []
        self.fraction = 0.0
        self.pip = ()  # pip's version, once known

    def say(self, fraction: float, line: str) -> None:
        self.fraction = max(self.fraction, fraction)
        self.log.append(line)
        if self.report is not None:
            self.report(self.fraction, line)

    def result(self, status: str, message: str, **extra) -> InstallResult:
        self.say(1.0 if status in ("installed", "nothing-to-install") else self.fraction, message)
        return InstallResult(status, message, self.plan, log=self.log, **extra)

    def failure(self, status: int | None) -> InstallResult:
        """The result of a pip run that exited ``status`` (None: cancelled)."""
        if status is None:
            return self.result("canceled", "Cancelled: pip was stopped and nothing was installed.")
        network = next((line for line in self.log if any(sign in line for sign in _NETWORK_SIGNS)), "")
        error = next((line for line in reversed(self.log) if line.startswith("ERROR:")), "")
        if network:
            return self.result("unreachable", f"pip could not reach the package index (exit status {status}): "
                                              f"{_network_reason(network)}. Check the network or proxy, or "
                                              "install by hand.", returncode=status)
        return self.result("failed", f"pip failed (exit status {status}): "
                                     f"{_short(error or (self.log[-1] if self.log else ''))}", returncode=status)


_NETWORK_SIGNS = ("Failed to establish a new connection", "Connection refused", "Network is unreachable",
                  "Temporary failure in name resolution", "Name or service not known", "ConnectTimeoutError",
                  "Read timed out", "ProxyError", "CERTIFICATE_VERIFY_FAILED", "getaddrinfo failed",
                  "No route to host")


def _install_in(session, target, python, workspace, is_canceled, pip_args):
    plan, say = session.plan, session.say
    constraints = workspace / "constraints.txt"
    constraints.write_text("\n".join(plan.constraints) + "\n", encoding="utf-8")
    common = ["--disable-pip-version-check", "--no-input", "--progress-bar", "off", "-c", str(constraints)]
    if plan.no_binary:
        common += ["--no-binary", ",".join(plan.no_binary)]
        if (22, 3) <= session.pip < (23, 1):  # there, --no-binary skips the cache of wheels built before
            common += ["--use-feature=no-binary-enable-wheel-cache"]
    if plan.index_url and not any(arg.startswith("--index-url") or arg == "-i" for arg in pip_args):
        common += ["--index-url", plan.index_url]
    common += pip_args
    env = dict(os.environ, PYTHONUNBUFFERED="1", PIP_DISABLE_PIP_VERSION_CHECK="1")
    # pip sees what QGIS will import: its own paths, and the plugin's folder after them.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH", ""), str(target)]))

    say(0.02, "Resolving what to install (pip install --dry-run)…")
    report_path = workspace / "report.json"
    resolve = [str(python), "-m", "pip", "install", "--dry-run", "--report", str(report_path), *common,
               *plan.requirements]
    status = _run_pip(resolve, env, lambda collected: 0.02 + min(0.13, 0.01 * collected), say, is_canceled)
    if status != 0:
        return session.failure(status)
    try:
        resolved = json.loads(report_path.read_text(encoding="utf-8"))["install"]
        wanted = [(item["metadata"]["name"], item["metadata"]["version"]) for item in resolved]
    except (OSError, ValueError, KeyError, TypeError) as error:
        return session.result("failed", f"pip's resolution report cannot be read: {error}")
    forbidden = sorted(name for name, _ in wanted if canonical(name) in NEVER_INSTALL)
    if forbidden:
        return session.result("refused", "pip wants to install " + ", ".join(forbidden) + ", which QGIS ships "
                              "and the installer never replaces: install the packages by hand, keeping QGIS's.")
    if not wanted:
        return session.result("nothing-to-install", "pip finds everything asked for installed already; if the "
                              "plugin still misses it, restart QGIS.")
    say(0.15, "To install: " + ", ".join(f"{name} {version}" for name, version in wanted))

    staging = workspace / "packages"
    pins = [f"{name}=={version}" for name, version in wanted]
    # Each package is collected (0.15..0.75), then built where from source and installed.
    status = _run_pip([str(python), "-m", "pip", "install", "--target", str(staging), "--no-deps", *common, *pins],
                      env, lambda collected: 0.15 + 0.6 * min(collected, len(pins)) / len(pins), say, is_canceled)
    if status != 0:
        return session.failure(status)

    say(0.8, "Checking that the new packages import in QGIS's Python…")
    failures = _import_failures(python, [staging, target], plan.modules)
    if failures:
        return session.result("broken", "The packages were installed but do not import in QGIS's Python, so the "
                              "plugin's folder was left as it was: "
                              + "; ".join(f"{m}: {why}" for m, why in failures.items()))
    if is_canceled is not None and is_canceled():
        return session.result("canceled", "Cancelled: nothing was installed.")
    say(0.9, f"Moving the packages into {target}")
    _move_into(staging, target)
    installed = [f"{name} {version}" for name, version in wanted]
    return session.result("installed", "Installed " + ", ".join(installed) + f" into {target}.",
                          installed=installed, returncode=0)


def _network_reason(line: str) -> str:
    """The words of pip's connection error that say what failed ("Failed to establish a new connection: [Errno
    111] Connection refused"), without urllib3's object names around them."""
    for sign in _NETWORK_SIGNS:
        if sign in line:
            reason = line[line.index(sign):].split("'")[0].rstrip(")")
            return _short(reason)
    return _short(line)


def _short(line: str, limit: int = 300) -> str:
    line = line.strip()
    return line if len(line) <= limit else line[:limit] + "…"


def _run_pip(command, env, progress, say, is_canceled):
    """Run pip, saying each line of its output with ``progress(collected)`` (how many packages it has
    collected so far); the exit status, or None when ``is_canceled()`` stopped it."""
    popen_options = {}
    if os.name == "nt":
        popen_options["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
    else:
        popen_options["start_new_session"] = True  # its build processes die with it
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                               env=env, text=True, encoding="utf-8", errors="replace", bufsize=1, **popen_options)
    lines = Queue()

    def read():
        for line in process.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    collected = 0
    fraction = progress(0)
    while True:
        if is_canceled is not None and is_canceled():
            _kill(process)
            reader.join(timeout=10)
            return None
        try:
            line = lines.get(timeout=0.2)
        except Empty:
            continue
        if line is None:
            break
        if line.startswith(("Collecting ", "Processing ")):
            collected += 1
            fraction = max(fraction, progress(collected))
        if line.strip():
            say(fraction, line)
    reader.join(timeout=10)
    return process.wait()


def _kill(process) -> None:
    """End pip and what it started (a compiler, a build backend)."""
    if process.poll() is not None:
        return
    if os.name == "nt":
        subprocess.run(["taskkill", "/F", "/T", "/PID", str(process.pid)], capture_output=True)
    else:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


_IMPORT_CHECK = """
import importlib, json, sys, traceback
folders, modules = json.loads(sys.argv[1])
sys.path.extend(folders)  # after the interpreter's own paths, as the plugin appends its folder
failures = {}
for module in modules:
    try:
        importlib.import_module(module)
    except BaseException as error:
        failures[module] = f"{type(error).__name__}: {error}"
print(json.dumps(failures))
"""


def _import_failures(python, folders, modules) -> dict:
    """module -> why it does not import in ``python`` with ``folders`` appended to its path."""
    try:
        answer = subprocess.run([str(python), "-c", _IMPORT_CHECK, json.dumps([[str(f) for f in folders],
                                                                              list(modules)])],
                                capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.SubprocessError) as error:
        return {module: str(error) for module in modules}
    try:
        return json.loads(answer.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {module: _short(answer.stderr or "the check did not answer") for module in modules}


def _move_into(staging: Path, target: Path) -> None:
    """Move what pip put in ``staging`` into ``target``: a package replaces the folder of the same name, an older
    record of a distribution it brings is removed, scripts folders are merged."""
    target.mkdir(parents=True, exist_ok=True)
    arriving = {_dist_name(entry) for entry in staging.glob("*.dist-info")}
    for old in target.glob("*.dist-info"):
        if _dist_name(old) in arriving:
            shutil.rmtree(old, ignore_errors=True)
    _merge(staging, target)


def _merge(source: Path, destination: Path) -> None:
    for entry in source.iterdir():
        placed = destination / entry.name
        if entry.is_dir() and placed.is_dir() and entry.name in ("bin", "Scripts", "share", "include", "etc"):
            _merge(entry, placed)
            continue
        if placed.is_dir() and not placed.is_symlink():
            shutil.rmtree(placed)
        elif placed.exists() or placed.is_symlink():
            placed.unlink()
        os.replace(entry, placed)


def _dist_name(dist_info: Path) -> str:
    return canonical(dist_info.name[: -len(".dist-info")].rsplit("-", 1)[0])


def _remove_leftovers(folder: Path) -> None:
    """Temporary folders of installs that never ended (QGIS killed mid-way)."""
    for leftover in folder.glob(TEMPORARY_PREFIX + "*"):
        shutil.rmtree(leftover, ignore_errors=True)


def _version_tuple(version: str) -> tuple:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])
