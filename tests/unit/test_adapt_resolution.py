"""What adaptation chooses without being told: the ground sample distance the adapted model runs at (measured by the
base model on the chips not held out), the fine-tuning step whose weights are kept (the lowest loss on the tuning
chips), and the thresholds (tuned with one model run per chip). Real rasters, a real training Python."""

import json
import subprocess

import numpy as np
import onnx
import pytest
import shapely
from onnx import numpy_helper

from spacenet_toolkit.core.adapt import adapt, chips, heldout_score, holdout, resolution, training_python
from spacenet_toolkit.core.extract import modelcard, onnx_file
from tests.support.training_python import training_python as training_python_path

SAMPLE = "sample_data/sn4_atlanta_pan.tif"
BUILDINGS = "sample_data/sn4_atlanta_buildings.geojson"
BASE = "models/buildings_unet_small.onnx"


def test_candidates_stop_at_the_imagerys_own_pixels():
    assert resolution.candidates(0.3, 0.075) == [0.3, 0.25, 0.2]
    assert resolution.candidates(0.3, 0.22) == [0.3, 0.25]
    assert resolution.candidates(0.3, 0.5) == [0.3]  # coarser imagery: the base model's distance only


def test_a_tie_goes_to_the_coarser_distance():
    trials = [resolution.Trial(0.3, 0.7, {}), resolution.Trial(0.25, 0.7, {}), resolution.Trial(0.2, 0.69, {})]
    assert resolution.best(trials).gsd_m == 0.3
    assert resolution.best(trials + [resolution.Trial(0.2, 0.71, {})]).gsd_m == 0.2


@pytest.fixture(scope="module")
def card(repo_root):
    return modelcard.read_card(*onnx_file.read(repo_root / BASE))


@pytest.fixture(scope="module")
def footprints(repo_root):
    with open(repo_root / BUILDINGS) as f:  # in the raster's CRS (EPSG:32616)
        return [shapely.geometry.shape(feature["geometry"]) for feature in json.load(f)["features"]]


@pytest.fixture(scope="module")
def fine_raster(repo_root, tmp_path_factory):
    """The Atlanta tile at 0.2 m: imagery whose own pixels are finer than the model's 0.3 m."""
    path = tmp_path_factory.mktemp("fine") / "atlanta_0.2m.tif"
    subprocess.run(["gdal_translate", "-q", "-tr", "0.2", "0.2", "-r", "cubic", str(repo_root / SAMPLE), str(path)],
                   check=True)
    return path


@pytest.fixture(scope="module")
def west(fine_raster):
    import rasterio

    with rasterio.open(fine_raster) as src:
        left, bottom, right, top = src.bounds
    return shapely.box(left, bottom, (left + right) / 2, top)


def test_the_distance_is_chosen_by_the_base_models_f1_off_the_held_out_chips(repo_root, card, footprints,
                                                                              fine_raster, west, tmp_path):
    made = chips.make_chips(str(fine_raster), footprints, [west], card)
    split = holdout.split(made.origins, made.known.reshape(len(made.origins), -1).sum(1), made.size)
    assert split.tuning and split.held_out
    request = adapt.AdaptRequest(raster_path=str(fine_raster), footprints=footprints, area=[west],
                                 base_model=str(repo_root / BASE), name="x", models_dir=str(tmp_path), device="cpu",
                                 python=training_python_path(), cpu_threads=2)
    metadata = onnx_file.read(repo_root / BASE)[0]
    scoring = dict(raster_path=str(fine_raster), chips=made, truth=footprints, device="cpu", cpu_threads=2,
                   is_canceled=None)
    messages = []
    gsd, trials, model = adapt._choose_resolution(training_python.find(request.python), request, card, metadata,
                                                  split, tmp_path, lambda f, m=None: messages.append(m), scoring)
    assert [trial.gsd_m for trial in trials] == [0.3, 0.25, 0.2]
    assert gsd == max(trials, key=lambda t: (round(t.f1, 6), t.gsd_m)).gsd_m
    assert modelcard.read_card(*onnx_file.read(model)).gsd_m == gsd  # the model file runs at the chosen distance
    assert any(m and f"Ground sample distance: {gsd:g} m" in m for m in messages)
    # each trial's F1 is the base model's at that distance on the chips not held out, at the tuned options
    finer = next(trial for trial in trials if trial.gsd_m == 0.2)
    at_02 = tmp_path / "base_at_0.2m.onnx"
    again = heldout_score.score(str(at_02), held_out=split.training + split.tuning, options=finer.options, **scoring)
    assert again.f1 == pytest.approx(finer.f1)

    # the training chips again at the chosen distance cover the ground of the base grid's training chips
    finer_card = modelcard.read_card(*onnx_file.read(at_02))
    training, tuning = adapt._chips_at(request, finer_card, made, split, None)
    assert training.gsd_m == pytest.approx(0.2) and tuning.gsd_m == pytest.approx(0.2)
    # one stretch for both, the base-grid chips' (as one extraction of the area has one)
    for cut in (training, tuning):
        assert np.array_equal(cut.stretch.low, made.stretch.low) and np.array_equal(cut.stretch.high, made.stretch.high)
    ground = shapely.union_all([shapely.box(*made.bounds(i)) for i in split.training]).intersection(west)
    known_m2 = training.known.sum() * training.grid.pixel_area_m2
    assert known_m2 == pytest.approx(ground.area, rel=0.03)
    assert all(shapely.box(*training.bounds(i)).intersects(ground) for i in range(len(training.origins)))


def test_tuning_runs_the_model_once_per_chip_and_finds_the_grids_best(repo_root, card, footprints):
    made = chips.make_chips(str(repo_root / SAMPLE), footprints, None, card)
    some = list(range(0, len(made.origins), 4))
    scoring = dict(raster_path=str(repo_root / SAMPLE), chips=made, truth=footprints, device="cpu", cpu_threads=2)
    options, tuned = heldout_score.tune(str(repo_root / BASE), tuning=some, **scoring)
    # the long way: every pair of the grid extracted and scored on its own, as a user's runs would be
    grid = [dict(threshold=t, min_score=m) for t in heldout_score.TUNED_THRESHOLDS
            for m in heldout_score.TUNED_MIN_SCORES]
    scores = [heldout_score.score(str(repo_root / BASE), held_out=some, options=tried, **scoring) for tried in grid]
    assert len({s.f1 for s in scores}) > 1  # the grid's options matter on these chips
    best = max(zip(scores, grid), key=lambda r: (round(r[0].f1, 12), r[1]["min_score"]))
    assert options == best[1] and tuned == best[0]


def test_the_fine_tuning_keeps_the_base_weights_when_no_step_lowers_the_tuning_loss(repo_root, card, footprints,
                                                                                    tmp_path):
    made = chips.make_chips(str(repo_root / SAMPLE), footprints, None, card)
    training, tuning = made.subset(range(0, 12)), made.subset(range(12, 16))
    # training labels that call every pixel a roof: each step takes the model further from the tuning chips' truth
    np.savez(tmp_path / "train.npz", images=training.images, labels=np.ones_like(training.labels),
             known=np.ones_like(training.known))
    np.savez(tmp_path / "tune.npz", images=tuning.images, labels=tuning.labels, known=tuning.known)
    job = dict(base_model=str(repo_root / BASE), chips=str(tmp_path / "train.npz"),
               tuning_chips=str(tmp_path / "tune.npz"), output=str(tmp_path / "out.onnx"), card={"name": "out"},
               minutes=5, max_steps=6, check_every=3, device="cpu", threads=2, batch=2, crop=96,
               learning_rate=1e-2, seed=0)
    (tmp_path / "job.json").write_text(json.dumps(job))
    done = subprocess.run([training_python_path(), str(training_python.WORKER), "train", str(tmp_path / "job.json")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    checks = [e for e in events if e["event"] == "tuning"]
    assert [e["step"] for e in checks] == [0, 3, 6] and all(e["loss"] > checks[0]["loss"] for e in checks[1:])
    assert events[-1]["kept_step"] == 0 and events[-1]["tuning_loss_kept"] == events[-1]["tuning_loss_base"]
    base = {i.name: numpy_helper.to_array(i) for i in onnx.load(repo_root / BASE).graph.initializer}
    kept = {i.name: numpy_helper.to_array(i) for i in onnx.load(tmp_path / "out.onnx").graph.initializer}
    assert base.keys() == kept.keys() and all(np.array_equal(base[k], kept[k]) for k in base)
    card = json.loads({p.key: p.value for p in onnx.load(tmp_path / "out.onnx").metadata_props}
                      ["spacenet_model_card"])
    assert card["adaptation"]["kept_step"] == 0 and card["adaptation"]["steps"] == 6


def test_the_summary_says_which_weights_and_distance_the_new_model_has(tmp_path):
    adaptation = dict(base_model="buildings_unet_small", held_out_buildings=22, held_out_blocks=2, steps=874,
                      minutes=6.0, device="CPU, 2 thread(s)", buildings=124, kept_step=325, gsd_m=0.25,
                      gsd_trials=[dict(gsd_m=0.3, object_f1=0.61), dict(gsd_m=0.25, object_f1=0.67)])
    score = heldout_score.HeldOutScore(0.8, 0.9, 0.7, 7, 1, 3)
    summary = adapt.Adapted(tmp_path / "k.onnx", dict(name="k", adaptation=adaptation), score, score, "").summary()
    assert "weights of step 325 kept; runs at 0.25 m." in summary
    adaptation.update(gsd_trials=[])  # nothing finer was tried: the base model's distance, not worth a word
    assert "runs at" not in adapt.Adapted(tmp_path / "k.onnx", dict(name="k", adaptation=adaptation), score, score,
                                          "").summary()


def test_a_model_that_does_no_better_than_its_base_is_said_to_be_so(tmp_path):
    card = dict(name="k", adaptation=dict(base_model="buildings_unet_small"))
    better = heldout_score.HeldOutScore(0.8, 0.9, 0.7, 7, 1, 3)
    worse = heldout_score.HeldOutScore(0.7, 0.8, 0.6, 6, 2, 4)
    assert adapt.Adapted(tmp_path / "k.onnx", card, worse, better, "").warning() == ""
    for adapted in (worse, heldout_score.HeldOutScore(0.6, 0.7, 0.5, 5, 2, 5)):  # equal, then lower
        warning = adapt.Adapted(tmp_path / "k.onnx", card, worse, adapted, "").warning()
        assert f"k does no better than buildings_unet_small on the held-out blocks ({adapted.f1:.3f} against 0.700)" \
            in warning and "larger area" in warning
