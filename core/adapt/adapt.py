"""Adapt a building model to the mapper's area: chips from their corrections, fine-tuning, a measured new model.

chips over the area (core.adapt.chips) -> a fifth held out by block, and where the area spares it another fifth
to tune on (core.adapt.holdout) -> the ground sample distance to run at, chosen by the base model on the chips not
held out (core.adapt.resolution) -> the training Python fine-tunes the base model on the training chips at that
distance, keeping the weights with the lowest loss on the tuning chips (core.adapt.worker.finetune, a subprocess:
progress per step, killed on cancel) -> thresholds tuned on the tuning chips -> base and adapted model scored on
the held-out fifth by the engine (core.adapt.heldout_score) -> the card records it all -> NAME.onnx and
NAME.fp16.onnx moved into the user models folder. Until that last move everything lives in a temporary folder: a
failed or canceled run leaves no model behind.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely

from ..extract import modelcard, onnx_file, runtime
from ..model_registry import HALF_SUFFIX
from ..progress import check, silent, span
from . import chips as chip_making
from . import heldout_score, holdout, resolution, training_python
from .chips import AdaptInputError

MIN_BUILDINGS = 15  # in the area: fewer teach the model little and leave nothing to measure it on
MIN_HELD_OUT_BUILDINGS = 3
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_]*")  # a model name is a file name and a Processing value
CARD_KEY = "spacenet_model_card"
# Fine-tuning on a few hundred roofs: a small step and a pull towards the base weights (L2-SP), so the model keeps
# what it knew about roofs in general while it learns this area's
LEARNING_RATE = float(os.environ.get("SPACENET_ADAPT_LR", 1e-4))
ANCHOR = float(os.environ.get("SPACENET_ADAPT_ANCHOR", 0.01))


@dataclass(frozen=True)
class AdaptRequest:
    raster_path: str
    footprints: list  # the corrected buildings, polygons in the raster's CRS
    area: list | None  # where they are complete, polygons in the raster's CRS; None: the whole raster
    base_model: str  # the base model's .onnx file
    name: str  # the adapted model's name
    models_dir: str  # the user models folder it is moved into
    minutes: float = 5.0  # the fine-tuning's time budget
    device: str = "auto"  # auto, cpu or gpu: where PyTorch trains and the engine scores
    bands: tuple | None = None
    python: str = ""  # the training Python; "": QGIS's own
    work_dir: str | None = None
    max_steps: int | None = None  # stop earlier than the budget (tests, reproducible runs)
    cpu_threads: int = 0  # 0: every core
    raster_label: str = ""  # how the card names the raster (a layer name or URL); "": the file name
    area_label: str = ""


@dataclass(frozen=True)
class Adapted:
    path: Path
    card: dict
    base_score: heldout_score.HeldOutScore
    adapted_score: heldout_score.HeldOutScore
    training_python: str

    def summary(self) -> str:
        a = self.card["adaptation"]
        return (f"{self.card['name']}: held-out object F1 {self.adapted_score.f1:.3f} against "
                f"{self.base_score.f1:.3f} for {a['base_model']} ({a['held_out_buildings']} buildings in "
                f"{a['held_out_blocks']} held-out block(s)); trained {a['steps']} steps in {a['minutes']:.1f} min "
                f"on {a['device']} from {a['buildings']} buildings"
                + (f", weights of step {a['kept_step']} kept" if "kept_step" in a else "")
                + (f"; runs at {a['gsd_m']:g} m" if a.get("gsd_trials") else "") + ".")

    def warning(self) -> str:
        """What the mapper must know before extracting with the new model; "" when it beats its base where measured."""
        if self.adapted_score.f1 > self.base_score.f1:
            return ""
        a = self.card["adaptation"]
        return (f"{self.card['name']} does no better than {a['base_model']} on the held-out blocks "
                f"({self.adapted_score.f1:.3f} against {self.base_score.f1:.3f}): keep extracting with "
                f"{a['base_model']} here, or correct the footprints over a larger area and adapt again.")


def check_name(name: str, models_dir: str, taken=()) -> str:
    """The name, or AdaptInputError saying why it cannot be used."""
    name = (name or "").strip()
    if not NAME_PATTERN.fullmatch(name):
        raise AdaptInputError(f"'{name}' cannot name a model: use lower-case letters, digits and '_', starting "
                              "with a letter or digit (e.g. buildings_kampala_adapted).")
    if name in taken:
        raise AdaptInputError(f"'{name}' is the name of a shipped model: choose another name.")
    if (Path(models_dir) / f"{name}.onnx").exists():
        raise AdaptInputError(f"A model named '{name}' is already in {models_dir}: choose another name, or delete "
                              "that model first (spacenet:deletemodel).")
    return name


def adapt(request: AdaptRequest, report=silent, is_canceled=None) -> Adapted:
    """Fine-tune, measure and install the adapted model (see the module); ``report(fraction, message)``."""
    check_name(request.name, request.models_dir)
    metadata, inputs, outputs = onnx_file.read(request.base_model)
    card = modelcard.read_card(metadata, inputs, outputs)
    if card.source != "spacenet" or CARD_KEY not in metadata:
        raise AdaptInputError(f"{os.path.basename(request.base_model)} has no SpaceNet model card: adaptation "
                              "starts from a model of this plugin (shipped or adapted).")
    trainer = training_python.find(request.python)
    report(0.0, f"Training with {trainer.describe()}.")
    chips = chip_making.make_chips(request.raster_path, request.footprints, request.area, card, request.bands,
                                   report=span(report, 0.0, 0.06), is_canceled=is_canceled)
    known_pixels = chips.known.reshape(len(chips.origins), -1).sum(1)
    split = holdout.split(chips.origins, known_pixels, chips.size)
    buildings = len(chips.footprint_centroids)
    held_buildings = chips.buildings_in(split.held_out)
    if buildings < MIN_BUILDINGS or held_buildings < MIN_HELD_OUT_BUILDINGS:
        raise AdaptInputError(
            f"The area holds {buildings} corrected building(s) ({held_buildings} in the held-out fifth): adaptation "
            f"needs at least {MIN_BUILDINGS}, with {MIN_HELD_OUT_BUILDINGS} in the fifth held out to measure it. "
            "Correct the footprints over a larger area and draw the area around all of them.")
    report(0.06, f"{len(chips.origins)} chips of {chips.size} px at {chips.gsd_m:.2f} m; {buildings} buildings; "
                 f"{len(split.held_out)} chip(s) in {split.held_out_blocks} block(s) held out to measure.")
    work = Path(tempfile.mkdtemp(prefix="spacenet-adapt-", dir=request.work_dir))
    try:
        output = work / f"{request.name}.onnx"
        scoring = dict(raster_path=request.raster_path, chips=chips, truth=request.footprints, device=request.device,
                       cpu_threads=request.cpu_threads, is_canceled=is_canceled)
        run_gsd, trials, start = _choose_resolution(trainer, request, card, metadata, split, work,
                                                    span(report, 0.06, 0.2), scoring)
        training, tuning = ((chips.subset(split.training), chips.subset(split.tuning)) if run_gsd == card.gsd_m else
                            _chips_at(request, dataclasses.replace(card, gsd_m=run_gsd), chips, split, is_canceled))
        job = _job(request, card, training, tuning, work, output, metadata, start, run_gsd)
        steps = _train(trainer, job, work, span(report, 0.2, 0.75), is_canceled)
        if "kept_step" in steps:
            report(0.75, _kept_message(steps))
        base_score = heldout_score.score(request.base_model, held_out=split.held_out,
                                         report=span(report, 0.75, 0.8), **scoring)
        tuned = {}
        if split.tuning:
            tuned, _ = heldout_score.tune(str(output), tuning=split.tuning, report=span(report, 0.8, 0.92), **scoring)
        adapted_score = heldout_score.score(str(output), held_out=split.held_out, report=span(report, 0.92, 0.97),
                                            options=tuned, **scoring)
        final = _final_card(json.loads(metadata[CARD_KEY]), request, steps, chips, split, buildings,
                            held_buildings, base_score, adapted_score, tuned, run_gsd, trials)
        report(0.97, _half_message(steps))
        half = output.with_name(output.stem + HALF_SUFFIX)
        files = [str(output)] + ([str(half)] if steps.get("fp16_written") else [])
        _run(trainer, ["card", files[0], _write_json(work / "card.json", final), *files[1:]], work, silent,
             is_canceled)
        check(is_canceled)
        installed = _install(files, Path(request.models_dir))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(1.0, None)
    return Adapted(installed, final, base_score, adapted_score, trainer.describe())


def _choose_resolution(trainer, request: AdaptRequest, card, metadata, split, work: Path, report, scoring: dict):
    """(the distance the adapted model runs at, the trials that chose it, the base model file at that distance):
    see core.adapt.resolution. Only when the area spares tuning chips, as for the thresholds."""
    chips = scoring["chips"]
    if not card.gsd_m or not split.tuning:  # a model run at the raster's own pixels, or an area with none to spare
        return card.gsd_m, [], request.base_model
    gsds = resolution.candidates(card.gsd_m, resolution.native_gsd_m(request.raster_path, _chips_bounds(chips)))
    if len(gsds) == 1:
        return card.gsd_m, [], request.base_model
    models, trials = {}, []
    for number, gsd in enumerate(gsds):
        models[gsd] = request.base_model if gsd == card.gsd_m else _base_at(trainer, metadata, request.base_model,
                                                                            gsd, work, scoring["is_canceled"])
        part = span(report, number / len(gsds), (number + 1) / len(gsds))
        options, score = heldout_score.tune(models[gsd], tuning=split.training + split.tuning, report=part,
                                            **scoring)
        trials.append(resolution.Trial(gsd, score.f1, options))
    chosen = resolution.best(trials)
    report(1.0, f"Ground sample distance: {chosen.gsd_m:g} m, chosen by the base model's F1 on the chips not held "
                "out (" + ", ".join(f"{t.gsd_m:g} m: {t.f1:.3f}" for t in trials) + ").")
    return chosen.gsd_m, trials, models[chosen.gsd_m]


def _base_at(trainer, metadata, base_model: str, gsd: float, work: Path, is_canceled) -> str:
    """A copy of the base model (with its fp16 variant) whose card runs it at ``gsd`` metres."""
    base = Path(base_model)
    target = work / f"base_at_{gsd:g}m.onnx"
    shutil.copyfile(base, target)
    files = [str(target)]
    half = runtime.fp16_variant(base)
    if half is not None:
        shutil.copyfile(half, target.with_name(target.stem + HALF_SUFFIX))
        files.append(str(target.with_name(target.stem + HALF_SUFFIX)))
    card = _at_gsd(json.loads(metadata[CARD_KEY]), gsd)
    _run(trainer, ["card", files[0], _write_json(work / f"card_{gsd:g}.json", card), *files[1:]], work, silent,
         is_canceled)
    return str(target)


def _at_gsd(card: dict, gsd: float) -> dict:
    return dict(card, input=dict(card.get("input", {}), gsd_m=gsd))


def _chips_at(request: AdaptRequest, card, chips: chip_making.ChipSet, split, is_canceled) -> tuple:
    """The training and tuning chips again on ``card``'s grid, each over the ground its base-grid chips covered and
    with their stretch (cut apart, so that no chip straddles the two; one stretch, as one extraction has)."""
    made = []
    for indices in (split.training, split.tuning):
        ground = shapely.union_all([shapely.box(*chips.bounds(i)) for i in indices])
        if request.area is not None:
            ground = ground.intersection(shapely.make_valid(shapely.union_all(list(request.area))))
        made.append(chip_making.make_chips(request.raster_path, request.footprints, [ground], card, chips.bands,
                                           is_canceled=is_canceled, stretch=chips.stretch))
    return tuple(made)


def _job(request: AdaptRequest, card, training: chip_making.ChipSet, tuning: chip_making.ChipSet, work: Path,
         output: Path, metadata, base_model: str, gsd: float | None) -> dict:
    chips_path, tuning_path = work / "chips.npz", work / "tuning_chips.npz"
    np.savez(chips_path, images=training.images, labels=training.labels, known=training.known)
    np.savez(tuning_path, images=tuning.images, labels=tuning.labels, known=tuning.known)
    base = Path(base_model)
    new_card = _at_gsd(json.loads(metadata[CARD_KEY]), gsd) if gsd else json.loads(metadata[CARD_KEY])
    new_card.update(name=request.name)
    n = len(card.bands)
    # the tuning chips also stop the fine-tuning where it stops helping (the worker keeps the best weights)
    return dict(base_model=str(base), chips=str(chips_path), tuning_chips=str(tuning_path) if len(tuning.origins)
                else None, output=str(output), card=new_card,
                minutes=float(request.minutes), max_steps=request.max_steps, device=request.device,
                threads=request.cpu_threads, batch=8, crop=192, learning_rate=LEARNING_RATE, anchor=ANCHOR, seed=0,
                mean=list(card.normalisation.mean or [0.0] * n), std=list(card.normalisation.std or [1.0] * n),
                # a half-precision variant for GPUs, which the worker writes when float16 keeps the probabilities
                fp16=True)


def _half_message(done: dict) -> str:
    if done["fp16_written"]:
        return (f"Half-precision variant for GPUs written: its probabilities are within {done['fp16_difference']:.4f} "
                "of the model's on the area's chips.")
    difference = done["fp16_difference"]
    return ("No half-precision variant: in float16 the model's probabilities "
            + ("overflow" if difference is None else f"move by up to {difference:.3f}")
            + " on the area's chips, so a GPU runs the model in float32.")


def _kept_message(done: dict) -> str:
    if done["kept_step"] == 0:
        return (f"No step of the {done['steps']} lowered the loss on the tuning chips ({done['tuning_loss_base']:.3f}"
                "): the base model's weights are kept, with thresholds tuned for the area.")
    return (f"The weights of step {done['kept_step']} of {done['steps']} are kept: the lowest loss on the tuning "
            f"chips ({done['tuning_loss_kept']:.3f}, against {done['tuning_loss_base']:.3f} for the base model).")


def _write_json(path: Path, value) -> str:
    with open(path, "w") as f:
        json.dump(value, f)
    return str(path)


def _train(trainer, job: dict, work: Path, report, is_canceled) -> dict:
    """Run the fine-tuning; its last ("done") line."""
    return _run(trainer, ["train", _write_json(work / "job.json", job)], work, report, is_canceled)


def _run(trainer, arguments: list, work: Path, report, is_canceled) -> dict:
    """One worker command; each JSON line it prints moves the progress; killed when canceled. Its "done" line,
    or RuntimeError with the worker's last words."""
    log_path = work / "worker.log"
    with open(log_path, "w") as log, subprocess.Popen(
            [trainer.executable, str(training_python.WORKER), *arguments], cwd=work, stdout=subprocess.PIPE,
            stderr=log, text=True, env=trainer.environment()) as process:  # its pipe closed on the way out
        watcher = threading.Thread(target=_kill_when_canceled, args=(process, is_canceled), daemon=True)
        watcher.start()
        done, last_report = None, 0.0
        for line in process.stdout:
            event = _event(line)
            if event is None:
                continue
            if event.get("event") == "start":
                report(0.0, f"Fine-tuning on {event['device']}: {event['chips']} chips, crops of {event['crop']} px, "
                            f"batches of {event['batch']}.")
            elif event.get("event") == "step" and time.monotonic() - last_report > 0.2:
                report(float(event["fraction"]), None)
                last_report = time.monotonic()
            elif event.get("event") == "done":
                done = event
        code = process.wait()
    check(is_canceled)
    if code != 0 or done is None:
        words = [line for line in log_path.read_text(errors="replace").splitlines() if line.strip()]
        raise RuntimeError(f"The training process failed (exit {code}): " + (words[-1] if words else "no message"))
    return done


def _kill_when_canceled(process, is_canceled) -> None:
    while process.poll() is None:
        if is_canceled is not None and is_canceled():
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
            return
        time.sleep(0.1)


def _event(line: str):
    if not line.startswith("{"):
        return None
    try:
        return json.loads(line)
    except ValueError:
        return None


def _final_card(base: dict, request: AdaptRequest, done: dict, chips, split, buildings, held_buildings,
                base_score, adapted_score, tuned: dict, gsd: float | None, trials: list) -> dict:
    card = _at_gsd(base, gsd) if gsd else dict(base)
    card["defaults"] = dict(base.get("defaults", {}), **tuned)
    bounds = [round(v, 6) for v in _chips_bounds(chips)]
    area_m2 = float(chips.known.sum()) * chips.grid.pixel_area_m2
    base_name = f"{base.get('name', '?')} {base.get('version', '')}".strip()
    card.update(
        name=request.name,
        version="1.0.0",
        description=(f"{base.get('name')} adapted to {request.area_label or 'a mapped area'} of "
                     f"{request.raster_label or os.path.basename(request.raster_path)} from {buildings} corrected "
                     f"buildings. {base.get('description', '')}"),
    )
    card["adaptation"] = dict(
        base_model=base.get("name", "?"), base_version=base.get("version", ""), base=base_name,
        raster=request.raster_label or os.path.basename(request.raster_path),
        area=request.area_label or "the raster's extent", area_bounds=bounds, area_m2=round(area_m2, 1),
        buildings=buildings, held_out_buildings=held_buildings, chips=len(chips.origins),
        held_out_chips=len(split.held_out), held_out_blocks=split.held_out_blocks,
        block_side_m=round(split.block_chips * chips.size * chips.gsd_m, 1),
        steps=int(done["steps"]), minutes=float(done["minutes"]), device=done["device"],
        **{key: done[key] for key in ("kept_step", "tuning_loss_base", "tuning_loss_kept", "fp16_written",
                                      "fp16_difference") if key in done},
        date=datetime.date.today().isoformat(),
        tuning_chips=len(split.tuning),
        gsd_m=gsd,
        gsd_trials=[trial.as_card() for trial in trials],
        defaults=(f"threshold and min_score chosen on {len(split.tuning)} tuning chip(s) of the area, the rest the "
                  "base model's" if tuned else "the base model's (the area is too small to spare tuning chips)")
        + ("; the ground sample distance chosen by the base model's F1 on the chips not held out" if trials else "")
        + "; the held-out fifth chose nothing",
        held_out_base=base_score.as_card(), held_out_adapted=adapted_score.as_card(),
    )
    card["scores"] = dict(held_out_object_f1=round(adapted_score.f1, 4),
                          base_held_out_object_f1=round(base_score.f1, 4))
    return card


def _chips_bounds(chips) -> tuple:
    """The bounds (raster CRS) of every chip together."""
    boxes = np.array([chips.bounds(i) for i in range(len(chips.origins))])
    return (boxes[:, 0].min(), boxes[:, 1].min(), boxes[:, 2].max(), boxes[:, 3].max())


def _install(files: list, models_dir: Path) -> Path:
    """Move the adapted files into ``models_dir``: the fp16 variant first, so the main file (what the model lists
    look for) appears only with everything beside it."""
    models_dir.mkdir(parents=True, exist_ok=True)
    targets = []
    for path in reversed(files):
        target = models_dir / Path(path).name
        shutil.move(path, target.with_name(target.name + ".part"))
        os.replace(target.with_name(target.name + ".part"), target)
        targets.append(target)
    return targets[-1]
