#!/usr/bin/env python3
"""Write the graphical models shipped in processing_provider/models/ from code, so that they can be regenerated.

The provider offers every ``processing_provider/models/*.model3`` under ``spacenet:<file stem>``. Run with the
venv's Python (it needs QGIS's Python bindings), from anywhere:

    QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/build_models.py [--output FOLDER]

A model is saved with its children's algorithm ids and parameter names, which are stable API (DESIGN.md), so a
model written here keeps working as long as those do; tests/e2e/test_shipped_model_cli.py runs it.
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PLUGIN_NAME = "spacenet_toolkit"
MODELS_DIR = REPO_ROOT / "processing_provider" / "models"
SCORES = (("F1", "F1"), ("PRECISION", "Precision"), ("RECALL", "Recall"), ("TP", "True positives"),
          ("FP", "False positives"), ("FN", "False negatives"))


def _import_plugin(scratch: Path):
    """The checkout as the package ``spacenet_toolkit``, as QGIS loads it (the folder has the clone's name)."""
    (scratch / "plugins").mkdir()
    (scratch / "plugins" / PLUGIN_NAME).symlink_to(REPO_ROOT, target_is_directory=True)
    sys.path.insert(0, str(scratch / "plugins"))


def fetch_extract_score():
    """spacenet:fetchextractscore: fetch one SpaceNet tile with its labels, extract buildings, score them."""
    from qgis.core import (
        QgsProcessingModelAlgorithm,
        QgsProcessingModelChildAlgorithm,
        QgsProcessingModelChildParameterSource,
        QgsProcessingModelOutput,
        QgsProcessingModelParameter,
        QgsProcessingParameterDefinition,
        QgsProcessingParameterEnum,
        QgsProcessingParameterExtent,
        QgsProcessingParameterNumber,
        QgsProcessingParameterString,
    )
    from qgis.PyQt.QtCore import QPointF

    from spacenet_toolkit.core.fetch import catalog
    from spacenet_toolkit.processing_provider.extract_buildings import ExtractBuildings

    source = QgsProcessingModelChildParameterSource
    # QGIS 3.22 saves no group id: the group's name serves as its id.
    model = QgsProcessingModelAlgorithm("Fetch, extract and score buildings", "Workflows")
    building_datasets = [name for name, dataset in catalog.DATASETS.items()
                         if dataset.label_folder == "geojson_buildings"]
    building_aois = list(dict.fromkeys(aoi for name in building_datasets for aoi in catalog.DATASETS[name].aois))

    def add_input(definition, x, y, advanced=False):
        if advanced:
            definition.setFlags(definition.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
        parameter = QgsProcessingModelParameter(definition.name())
        parameter.setPosition(QPointF(x, y))
        model.addModelParameter(definition, parameter)

    add_input(QgsProcessingParameterEnum("DATASET", "Dataset", options=building_datasets,
                                         defaultValue="SN2_buildings", usesStaticStrings=True), 120, 60)
    add_input(QgsProcessingParameterEnum("AOI", "AOI", options=building_aois, defaultValue="AOI_2_Vegas",
                                         usesStaticStrings=True), 320, 60)
    add_input(QgsProcessingParameterEnum("IMAGERY", "Imagery product", options=list(catalog.IMAGERY_PRODUCTS),
                                         defaultValue="PS-RGB", usesStaticStrings=True), 520, 60)
    add_input(QgsProcessingParameterExtent("EXTENT", "Extent (the first tile that intersects it)", optional=True),
              720, 60)
    add_input(QgsProcessingParameterNumber("THRESHOLD", "Building threshold (empty: the model's)",
                                           QgsProcessingParameterNumber.Type.Double, optional=True, minValue=0.0,
                                           maxValue=1.0), 920, 60)
    add_input(QgsProcessingParameterString("MODEL", "Model (name or .onnx file)",
                                           defaultValue=ExtractBuildings.DEFAULT_MODEL), 1120, 60, advanced=True)
    add_input(QgsProcessingParameterString("ENDPOINT", "Bucket endpoint URL", defaultValue=catalog.BUCKET_URL),
              1320, 60, advanced=True)

    def add_child(algorithm_id, child_id, description, x, y, sources, outputs=()):
        child = QgsProcessingModelChildAlgorithm(algorithm_id)
        child.setChildId(child_id)
        child.setDescription(description)
        child.setPosition(QPointF(x, y))
        for name, value in sources.items():
            child.addParameterSources(name, value if isinstance(value, list) else [value])
        # What the designer does: every other mandatory input holds its default, visibly.
        for definition in child.algorithm().parameterDefinitions():
            optional = definition.flags() & QgsProcessingParameterDefinition.Flag.FlagOptional
            if not (definition.name() in sources or definition.isDestination() or optional):
                child.addParameterSources(definition.name(), [source.fromStaticValue(definition.defaultValue())])
        model_outputs = {}
        for row, (name, description, child_output, mandatory) in enumerate(outputs):
            output = QgsProcessingModelOutput(name, description)
            output.setChildId(child_id)
            output.setChildOutputName(child_output)
            output.setMandatory(mandatory)
            output.setPosition(QPointF(x + 260, y + 40 * row))
            model_outputs[name] = output
        child.setModelOutputs(model_outputs)
        model.addChildAlgorithm(child)

    add_child("spacenet:fetchtiles", "fetch", "Fetch the tile and its labels", 420, 220, {
        "DATASET": source.fromModelParameter("DATASET"),
        "AOI": source.fromModelParameter("AOI"),
        "SPLIT": source.fromStaticValue("train"),  # test splits come without labels
        "PRODUCTS": [source.fromModelParameter("IMAGERY"), source.fromStaticValue(catalog.LABELS)],
        "EXTENT": source.fromModelParameter("EXTENT"),
        "MAX_TILES": source.fromStaticValue(1),  # extraction and scoring take one raster and one label layer
        "ENDPOINT": source.fromModelParameter("ENDPOINT"),
        # Inside a model, fetchtiles would add its tiles to the project from the model's thread.
        "LOAD_OUTPUTS": source.fromStaticValue(False),
    }, outputs=[("TILES", "Output folder (the tile and its labels)", "OUTPUT_FOLDER", True)])
    add_child("spacenet:extractbuildings", "extract", "Extract building footprints", 420, 400, {
        "INPUT": source.fromChildOutput("fetch", "IMAGERY"),
        "MODEL": source.fromModelParameter("MODEL"),
        "THRESHOLD": source.fromModelParameter("THRESHOLD"),
    }, outputs=[("FOOTPRINTS", "Building footprints", "OUTPUT", True)])
    add_child("spacenet:scoref1", "score", "Score them against the labels (SpaceNet F1)", 420, 580, {
        "TRUTH": source.fromChildOutput("fetch", "LABELS"),
        "PROPOSALS": source.fromChildOutput("extract", "OUTPUT"),
    }, outputs=[("SCORED", "Scored footprints (TP, FP, FN)", "OUTPUT", True),
                ("REPORT", "Score report", "OUTPUT_HTML", False),
                # Numbers have no output definition in a 3.22 model, but their values are in its results.
                *((name, description, name, False) for name, description in SCORES)])

    model.setParameterOrder(["DATASET", "AOI", "IMAGERY", "EXTENT", "THRESHOLD", "MODEL", "ENDPOINT"])
    model.setHelpContent({
        "ALG_DESC": (
            "Fetches one SpaceNet imagery tile and its building labels from the public bucket, extracts building "
            "footprints from it with a segmentation model (the shipped buildings_unet_small unless MODEL says "
            "otherwise) and scores them against the labels with the SpaceNet F1 metric. The scores (F1, "
            "precision, recall, TP, FP, FN) are in the log and the report, and in the results of a script or "
            "qgis_process run (score:F1 ...)."
        ),
        "ALG_CREATOR": "SpaceNet Toolkit",
        "DATASET": "A SpaceNet building dataset (its train split: only it has labels).",
        "AOI": "An area of interest of that dataset.",
        "IMAGERY": "The imagery product that feeds the model: PS-RGB (pan-sharpened colour), PS-MS, PAN or MS.",
        "EXTENT": "The tile is the first one that intersects this extent; empty: the AOI's first tile.",
        "THRESHOLD": "Building probability from which a pixel counts as building; empty uses the model's default.",
        "MODEL": "A shipped model by name or the path of an .onnx file.",
        "ENDPOINT": "The bucket's base URL, for a mirror or a local S3 server.",
        "fetch:TILES": "Where the tile and its labels are saved, in the bucket's folder layout.",
        "extract:FOOTPRINTS": "The extracted building footprints.",
        "score:SCORED": "Proposals and missed labels with status TP/FP/FN and IoU.",
        "score:REPORT": "An HTML report with the scores (optional).",
    })
    return model


MODELS = {"fetchextractscore": fetch_extract_score}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=MODELS_DIR, help=f"folder for the .model3 files "
                        f"(default: {MODELS_DIR.relative_to(REPO_ROOT)})")
    arguments = parser.parse_args()
    if os.environ.get("QT_HASH_SEED") != "0":
        # Qt writes XML attributes in hash order: a fixed seed, set before Qt loads, gives the same bytes on
        # every run (clean diffs).
        os.environ["QT_HASH_SEED"] = "0"
        os.execv(sys.executable, [sys.executable, *sys.argv])
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    with tempfile.TemporaryDirectory(prefix="spacenet-build-models-") as scratch:
        os.environ["QGIS_CUSTOM_CONFIG_PATH"] = str(Path(scratch) / "profile")  # not the user's profile
        _import_plugin(Path(scratch))
        return _build(arguments.output)


def _build(output: Path) -> int:
    from qgis.core import QgsApplication

    application = QgsApplication([], False)
    application.initQgis()
    from spacenet_toolkit.processing_provider.provider import SpaceNetProvider

    # The children's algorithms must be registered for the model to store their parameters.
    provider = SpaceNetProvider(models_dir=None)
    QgsApplication.processingRegistry().addProvider(provider)
    output.mkdir(parents=True, exist_ok=True)
    failed = 0
    for name, build in MODELS.items():
        path = output / f"{name}.model3"
        model = build()
        valid, issues = model.validate()
        if valid and model.toFile(str(path)):
            print(path)
        else:
            print(f"could not write {path}: {'; '.join(issues) or 'the file cannot be written'}", file=sys.stderr)
            failed += 1
    QgsApplication.processingRegistry().removeProvider(provider)
    application.exitQgis()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
