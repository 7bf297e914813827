"""What this installation can do, for spacenet:status: the plugin's version, every model the plugin knows and
whether it is here, every Python package with its version or the command that installs it, what onnxruntime runs
models on, and which algorithms cannot run and why.

Standard library only at import time, since it must answer where numpy, onnxruntime or rasterio are missing:
onnxruntime is imported only to ask it, and a failure to import it is part of the answer.
"""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

from .. import dependencies, html_report
from ..model_registry import RegistryError
from . import gpu, onnx_file
from .modelcard import ModelCardError, read_card

PLATFORM_NOTE = "on Windows from the OSGeo4W Shell; on macOS with QGIS's bundled python3"


@dataclass(frozen=True)
class ModelStatus:
    name: str
    task: str  # "" when neither the registry nor the card says
    delivery: str  # "bundled" (in the plugin zip), "fetched" (downloaded on first use) or "unregistered"
    size: str  # of NAME.onnx, e.g. "6.5 MB"; "" for an unregistered model
    summary: str  # the registry's line on when to use the model; "" for an unregistered one
    path: str = ""  # the file here; "" when it is not here (yet)
    version: str = ""  # the model's own version, from its card; "" when not here or not stated
    card: str = ""  # the card's summary (bands, tile size, resolution, outputs), or why it cannot be read

    @property
    def present(self) -> bool:
        return bool(self.path)


@dataclass(frozen=True)
class PackageStatus:
    module: str  # what ``import`` uses
    pip_name: str
    purpose: str
    version: str  # "" when missing
    needed_by: tuple = ()  # algorithm ids that are offered only with it
    optional: bool = False  # offered, never required (core.dependencies.OPTIONAL)

    @property
    def installed(self) -> bool:
        return bool(self.version)

    @property
    def install(self) -> str:
        return dependencies.install_command([self.module])


@dataclass(frozen=True)
class RuntimeStatus:
    onnxruntime: str  # its version; "" when it is missing or cannot be imported
    problem: str  # why onnxruntime cannot be imported although it is installed; "" otherwise
    providers: tuple  # onnxruntime's available execution providers
    nvidia_gpu: bool  # an NVIDIA driver answers on this machine
    device: str  # what extraction runs on with device "auto": "GPU (CUDA)", "CPU" or "none"
    advice: str  # what to do to run on the GPU, or why the device is what it is; "" when nothing needs saying


@dataclass(frozen=True)
class Status:
    plugin_version: str
    host: str  # e.g. "QGIS 3.22.16, Python 3.11.1"
    models: tuple
    packages: tuple
    runtime: RuntimeStatus
    algorithms: dict  # algorithm id -> "" when offered, else why it is not
    registry: str = ""  # where the model registry was read from
    registry_problem: str = ""  # why it cannot be read; "" when it can
    models_folder: str = ""  # where downloaded models are kept

    @property
    def missing_packages(self) -> list:
        return [p for p in self.packages if not p.installed and not p.optional]

    @property
    def unavailable(self) -> dict:
        return {key: why for key, why in self.algorithms.items() if why}

    @property
    def models_missing(self) -> list:
        return [m for m in self.models if not m.present]


# -- gathering -------------------------------------------------------------------------------------------------------

def gather(plugin_version: str, host: str = "", algorithms: dict | None = None, requirements: dict | None = None,
           make_store=None, check_gpu: bool = True) -> Status:
    """The whole status. ``algorithms``: algorithm id -> "" when offered or why not; ``requirements``: algorithm id
    -> the modules it needs; ``make_store()``: the model store (core.fetch.model_store.ModelStore; its registry
    may fail to load). ``check_gpu``: start a session on the GPU with a model that is here, when onnxruntime offers
    CUDA and an NVIDIA driver answers (the only way to know CUDA really starts; a second or two)."""
    registry_problem, models, registry, folder = "", (), "", ""
    if make_store is not None:
        try:
            store = make_store()
        except RegistryError as error:
            registry_problem = str(error)
        else:
            models = tuple(gather_models(store))
            registry, folder = store.registry.source, str(store.cache_dir)
    probe = next((Path(m.path) for m in models if m.present), None) if check_gpu else None
    return Status(
        plugin_version=plugin_version,
        host=host or f"Python {platform.python_version()}",
        models=models,
        packages=tuple(gather_packages(requirements or {})),
        runtime=gather_runtime(probe),
        algorithms=dict(algorithms or {}),
        registry=registry,
        registry_problem=registry_problem,
        models_folder=folder,
    )


def gather_models(store) -> list:
    """Every model the store knows: registered ones in the registry's order, then .onnx files dropped into the
    plugin's models/ folder."""
    found = []
    for entry in store.registry.models.values():
        path = store.local_path(entry.main)
        found.append(_with_card(ModelStatus(
            name=entry.name, task=entry.task, delivery="bundled" if entry.bundled else "fetched",
            size=entry.main.size_label, summary=entry.summary, path=str(path) if path else "",
        )))
    for name in store.unregistered_names():
        path = Path(store.bundled_dir) / f"{name}.onnx"
        found.append(_with_card(ModelStatus(name=name, task="", delivery="unregistered", size="", summary="",
                                            path=str(path))))
    return found


def _with_card(model: ModelStatus) -> ModelStatus:
    """``model`` with its version and card summary read from the file, when it is here."""
    if not model.present:
        return model
    try:
        metadata, inputs, outputs = onnx_file.read(model.path)
        card = read_card(metadata, inputs, outputs)
    except (onnx_file.OnnxFileError, ModelCardError) as error:
        return _replace(model, card=f"its model card cannot be read: {error}")
    version = card.raw.get("version", "") if isinstance(card.raw, dict) else ""
    return _replace(model, version=str(version or ""), task=model.task or card.task, card=card.summary())


def _replace(model: ModelStatus, **changes) -> ModelStatus:
    return ModelStatus(**{**asdict(model), **changes})


def gather_packages(requirements: dict) -> list:
    """Every package the plugin uses (core.dependencies.PACKAGES, then any other module an algorithm needs)."""
    modules = list(dependencies.PACKAGES)
    modules += [m for needed in requirements.values() for m in needed if m not in modules]
    modules += list(dependencies.OPTIONAL)
    packages = []
    for module in dict.fromkeys(modules):
        known = dependencies.PACKAGES.get(module) or dependencies.OPTIONAL.get(module)
        packages.append(PackageStatus(
            module=module,
            pip_name=known.pip_name if known else module,
            purpose=known.purpose if known else "",
            version=dependencies.installed_version(module),
            needed_by=tuple(key for key, needed in requirements.items() if module in needed),
            optional=module in dependencies.OPTIONAL and module not in dependencies.PACKAGES,
        ))
    return packages


def gather_runtime(probe_model: Path | None = None) -> RuntimeStatus:
    """What onnxruntime offers here and what extraction runs on; ``probe_model``: a model to start a GPU session
    with, when one may start (None: judge from the providers and the driver only)."""
    nvidia = gpu.nvidia_gpu_present()
    if not dependencies.is_installed("onnxruntime"):
        install = "onnxruntime-gpu" if nvidia else "onnxruntime"
        return RuntimeStatus("", "", (), nvidia, "none",
                             f"onnxruntime is missing, so no model can run: python -m pip install {install}")
    try:
        import onnxruntime as ort  # heavy: imported only when asked

        providers = tuple(ort.get_available_providers())
    except Exception as error:  # noqa: BLE001 - any failure to load a binary package is the answer here
        return RuntimeStatus("", f"onnxruntime is installed but cannot be imported: {error!r}", (), nvidia, "none",
                             "reinstall it into the Python that QGIS uses: python -m pip install --force-reinstall "
                             f"{'onnxruntime-gpu' if nvidia else 'onnxruntime'}")
    version = dependencies.installed_version("onnxruntime")
    if not nvidia:
        advice = "no NVIDIA GPU answers on this machine: models run on the CPU"
        if "CUDAExecutionProvider" in providers:
            advice += " (onnxruntime-gpu is installed; onnxruntime is enough here)"
        return RuntimeStatus(version, "", providers, False, "CPU", advice)
    if "CUDAExecutionProvider" not in providers:
        return RuntimeStatus(version, "", providers, True, "CPU",
                             "Running on the CPU: " + gpu.gpu_absence_reason(providers))
    if probe_model is None:
        return RuntimeStatus(version, "", providers, True, "GPU (CUDA)",
                             "onnxruntime offers CUDA and an NVIDIA driver answers; a run's log says what it used")
    failure = _cuda_session_failure(ort, probe_model)
    if not failure:
        return RuntimeStatus(version, "", providers, True, "GPU (CUDA)",
                             f"a test session of {probe_model.name} started on the GPU")
    return RuntimeStatus(version, "", providers, True, "CPU",
                         f"Running on the CPU: {gpu.gpu_absence_reason(providers)} ({failure})")


def _cuda_session_failure(ort, model: Path) -> str:
    """Why a session of ``model`` asking for CUDA does not run on it; "" when it does. onnxruntime falls back to
    the CPU without a word when CUDA cannot start: only the session says."""
    options = ort.SessionOptions()
    options.log_severity_level = 3  # a CUDA provider that fails to start is reported by us, not as stderr noise
    try:
        session = ort.InferenceSession(str(model), sess_options=options,
                                       providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    except Exception as error:  # noqa: BLE001 - onnxruntime raises its own types for everything
        return f"a test session of {model.name} failed: {error}"
    actual = session.get_providers()[0]
    return "" if actual == "CUDAExecutionProvider" else f"a test session of {model.name} ran on {actual}"


# -- the report ------------------------------------------------------------------------------------------------------

def report_lines(status: Status) -> list:
    """The status as plain lines for a log: models, packages, devices, algorithms."""
    lines = [f"SpaceNet Toolkit {status.plugin_version} ({status.host})", ""]
    lines += _model_lines(status)
    lines += [""] + _package_lines(status)
    lines += [""] + _runtime_lines(status.runtime)
    lines += [""] + _algorithm_lines(status)
    return lines


def _model_lines(status: Status) -> list:
    if status.registry_problem:
        return [f"Models: {status.registry_problem}"]
    here = sum(m.present for m in status.models)
    lines = [f"Models ({len(status.models)} known, {here} here; registry {status.registry}; downloads kept in "
             f"{status.models_folder}):"]
    for model in status.models:
        version = f" {model.version}" if model.version else ""
        task = model.task or "task not stated"
        if model.present:
            where = f"here: {model.path}"
        elif model.delivery == "bundled":
            where = f"missing from the plugin folder: downloaded on first use ({model.size})"
        else:
            where = f"not here yet: downloaded on first use ({model.size})"
        lines.append(f"  model {model.name}{version} - {task} - {where}")
        if model.summary:
            lines.append(f"      {model.summary}")
        if model.card:
            lines.append(f"      card: {model.card}")
    return lines


def _package_lines(status: Status) -> list:
    lines = ["Python packages (into the Python that QGIS uses):"]
    for package in status.packages:
        needed = f"; needed by {', '.join(package.needed_by)}" if package.needed_by else ""
        purpose = f" - {package.purpose}" if package.purpose else ""
        if package.installed:
            lines.append(f"  installed: {package.module} {package.version}{purpose}{needed}")
        elif package.optional:
            lines.append(f"  not installed (optional): {package.module}{purpose}; install: {package.install}")
        else:
            lines.append(f"  MISSING: {package.module}{purpose}{needed}; install: {package.install}")
    missing = [p.module for p in status.missing_packages]
    if missing:
        lines.append(f"  To install everything missing ({PLATFORM_NOTE}): {dependencies.install_command(missing)}")
    else:
        lines.append("  Every package is installed.")
    return lines


def _runtime_lines(runtime: RuntimeStatus) -> list:
    lines = ["Inference (onnxruntime):"]
    if runtime.onnxruntime:
        lines.append(f"  onnxruntime {runtime.onnxruntime}; execution providers: {', '.join(runtime.providers)}")
    elif runtime.problem:
        lines.append(f"  {runtime.problem}")
    lines.append(f"  NVIDIA GPU: {'an NVIDIA driver answers' if runtime.nvidia_gpu else 'none answers'}")
    lines.append(f"  models run on: {runtime.device}" + (f" - {runtime.advice}" if runtime.advice else ""))
    return lines


def _algorithm_lines(status: Status) -> list:
    offered = [key for key, why in status.algorithms.items() if not why]
    lines = [f"Algorithms ({len(offered)} of {len(status.algorithms)} offered):"]
    lines += [f"  offered: {key}" for key in offered]
    lines += [f"  NOT AVAILABLE: {key} - {why}" for key, why in status.unavailable.items()]
    return lines


def as_dict(status: Status) -> dict:
    """The status as JSON-ready data, with the derived facts (present, installed, install command) spelled out."""
    data = asdict(status)
    data["models"] = [{**asdict(m), "present": m.present} for m in status.models]
    data["packages"] = [{**asdict(p), "needed_by": list(p.needed_by), "installed": p.installed,
                         "install": "" if p.installed else p.install} for p in status.packages]
    data["runtime"]["providers"] = list(status.runtime.providers)
    data["missing_packages"] = [p.module for p in status.missing_packages]
    missing = data["missing_packages"]
    data["install_missing"] = dependencies.install_command(missing) if missing else ""
    data["unavailable"] = status.unavailable
    return data


def write_json(status: Status, path: Path | str) -> None:
    """The status as a JSON file, written whole or not at all."""
    html_report.write(path, json.dumps(as_dict(status), indent=2, ensure_ascii=False) + "\n")
