"""spacenet:adaptmodel, spacenet:exporttrainingchips and spacenet:deletemodel through qgis_process: a short
adaptation on the Atlanta sample writes a loadable model with a complete card, every model list offers it, and it
can be deleted; bad input is refused before any training."""

import json

import onnx
import pytest

from tests.support.training_python import training_python

SAMPLE = "sample_data/sn4_atlanta_pan.tif"
BUILDINGS = "sample_data/sn4_atlanta_buildings.geojson"


def run(qgis_process, algorithm, *arguments, timeout=600):
    result = qgis_process("--json", "run", algorithm, *arguments, timeout=timeout)
    payload = json.loads(result.stdout[result.stdout.index("{"):]) if "{" in result.stdout else {}
    return result, payload.get("results", {})


@pytest.fixture
def adapted(qgis_process, repo_root):
    result, outputs = run(qgis_process, "spacenet:adaptmodel", f"--INPUT={repo_root / SAMPLE}",
                          f"--FOOTPRINTS={repo_root / BUILDINGS}", "--MODEL=buildings_unet_small",
                          "--NAME=atlanta_test", "--MAX_STEPS=3", "--MINUTES=5", "--DEVICE=cpu",
                          f"--TRAINING_PYTHON={training_python()}")
    assert result.returncode == 0, result.stdout + result.stderr
    return result, outputs


def test_a_short_adaptation_writes_a_model_with_a_complete_card(qgis_process, adapted, repo_root, tmp_path):
    result, outputs = adapted
    path = outputs["MODEL_PATH"]
    assert outputs["MODEL_NAME"] == "atlanta_test"
    assert "/user_models/atlanta_test.onnx" in path
    model = onnx.load(path)
    onnx.checker.check_model(model)
    card = json.loads({p.key: p.value for p in model.metadata_props}["spacenet_model_card"])
    adaptation = card["adaptation"]
    assert card["name"] == "atlanta_test" and adaptation["base_model"] == "buildings_unet_small"
    assert adaptation["steps"] == 3 and adaptation["device"].startswith("CPU")
    assert 0 <= adaptation["kept_step"] <= 3 and adaptation["tuning_loss_kept"] <= adaptation["tuning_loss_base"]
    assert adaptation["buildings"] >= 15 and adaptation["minutes"] > 0 and adaptation["area_m2"] > 0
    for side in ("held_out_base", "held_out_adapted"):
        assert set(adaptation[side]) >= {"object_f1", "precision", "recall", "tp", "fp", "fn"}
    assert card["scores"]["base_held_out_object_f1"] == pytest.approx(outputs["BASE_F1"], abs=1e-4)
    assert onnx.load(path.replace(".onnx", ".fp16.onnx")).graph.node[0].name == "cast_in"  # its GPU variant
    assert adaptation["fp16_written"] is True and 0 <= adaptation["fp16_difference"] <= 0.05
    assert "Half-precision variant for GPUs written" in result.stdout
    assert "held-out object F1" in result.stdout and f"weights of step {adaptation['kept_step']} kept" in result.stdout

    # every model list offers it: the extraction takes it by name, and its help names it
    extraction = qgis_process("--json", "run", "spacenet:extractbuildings", f"--INPUT={repo_root / SAMPLE}",
                              "--MODEL=atlanta_test", f"--OUTPUT={tmp_path / 'found.gpkg'}")
    assert extraction.returncode == 0, extraction.stderr
    assert json.loads(extraction.stdout[extraction.stdout.index("{"):])["results"]["MODEL_NAME"] == "atlanta_test"
    assert "atlanta_test" in qgis_process("help", "spacenet:extractbuildings").stdout

    deleted, outputs = run(qgis_process, "spacenet:deletemodel", "--MODEL=atlanta_test")
    assert deleted.returncode == 0, deleted.stderr
    assert not (tmp_path / path).exists()
    gone = qgis_process("run", "spacenet:extractbuildings", f"--INPUT={repo_root / SAMPLE}",
                        "--MODEL=atlanta_test", f"--OUTPUT={tmp_path / 'again.gpkg'}")
    assert gone.returncode != 0 and "No model 'atlanta_test'" in gone.stdout + gone.stderr


def test_shipped_models_cannot_be_deleted(qgis_process):
    result, _ = run(qgis_process, "spacenet:deletemodel", "--MODEL=buildings_unet_small")
    assert result.returncode != 0
    assert "shipped models cannot be deleted" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_too_few_buildings_are_refused_before_training(qgis_process, repo_root, tmp_path):
    one = tmp_path / "one.geojson"
    features = json.loads((repo_root / BUILDINGS).read_text())
    features["features"] = features["features"][:4]
    one.write_text(json.dumps(features))
    result, _ = run(qgis_process, "spacenet:adaptmodel", f"--INPUT={repo_root / SAMPLE}", f"--FOOTPRINTS={one}",
                    "--NAME=too_few", f"--TRAINING_PYTHON={training_python()}", "--MAX_STEPS=1")
    text = result.stdout + result.stderr
    assert result.returncode != 0 and "needs at least 15" in text and "Traceback" not in text


def test_a_bad_name_and_a_missing_training_python_are_said(qgis_process, repo_root):
    result, _ = run(qgis_process, "spacenet:adaptmodel", f"--INPUT={repo_root / SAMPLE}",
                    f"--FOOTPRINTS={repo_root / BUILDINGS}", "--NAME=Bad Name")
    assert result.returncode != 0 and "cannot name a model" in result.stdout + result.stderr
    result, _ = run(qgis_process, "spacenet:adaptmodel", f"--INPUT={repo_root / SAMPLE}",
                    f"--FOOTPRINTS={repo_root / BUILDINGS}", "--NAME=fine", "--TRAINING_PYTHON=/nonexistent/python")
    text = result.stdout + result.stderr
    assert result.returncode != 0 and "is not a program that can run" in text and "make train-setup" in text


def test_training_chips_are_written(qgis_process, repo_root, tmp_path):
    result, outputs = run(qgis_process, "spacenet:exporttrainingchips", f"--INPUT={repo_root / SAMPLE}",
                          f"--FOOTPRINTS={repo_root / BUILDINGS}", f"--OUTPUT_FOLDER={tmp_path / 'chips'}")
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "chips" / "manifest.json").read_text())
    assert outputs["CHIP_COUNT"] == len(manifest["chips"]) > 0
    assert outputs["BUILDING_COUNT"] >= 30
    assert all((tmp_path / "chips" / c["image"]).is_file() and (tmp_path / "chips" / c["mask"]).is_file()
               for c in manifest["chips"])
