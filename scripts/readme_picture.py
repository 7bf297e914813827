#!/usr/bin/env python3
"""`make readme-picture`: the README's first picture, building footprints over the imagery they came from.

The image is a 3 x 2 block of zoom-19 chips (0.3 m, 230 m x 154 m) of Kampala, the held-out area of the training
data (../shared/datasets, never trained or tuned on): what a mapper sees off the training domain. The footprints
are extracted by the shipped model through the real qgis_process (as `make demo` runs it), then drawn over the
image by QGIS's own map renderer, offscreen: docs/screenshots/footprints_over_imagery.jpg. The Makefile sets the
same environment as for `make demo`.
"""

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from demo import PLUGIN, ROOT, qgis_process, run_json  # noqa: E402  (scripts/ is not a package)

KAMPALA = ROOT.parent / "shared" / "datasets" / "oam_buildings" / "ramp_hotosm"
CHIPS = [f"OAM-{x}-{y}-19.tif" for y in (261632, 261633) for x in (309612, 309613, 309614)]
PICTURE = ROOT / "docs" / "screenshots" / "footprints_over_imagery.jpg"
FOOTPRINT_COLOUR = "#ffd400"


def mosaic(folder: Path) -> Path:
    from osgeo import gdal

    chips = [str(path) for name in CHIPS for path in KAMPALA.glob(f"*chips/{name}")]
    if len(chips) != len(CHIPS):
        sys.exit(f"Kampala's chips are not all in {KAMPALA} (found {len(chips)} of {len(CHIPS)})")
    image = folder / "kampala_z19.vrt"
    gdal.BuildVRT(str(image), chips)
    return image


def render(image: Path, buildings: Path, picture: Path, width: int = 1152) -> Path:
    """Draws the footprints over the image with QGIS's map renderer, in Web Mercator (square pixels anywhere)."""
    from qgis.core import QgsApplication

    app = QgsApplication([], False)
    app.initQgis()
    try:
        return _draw(image, buildings, picture, width)  # the layers are gone before QGIS exits
    finally:
        app.exitQgis()


def _draw(image: Path, buildings: Path, picture: Path, width: int) -> Path:
    from qgis.core import (
        QgsCoordinateReferenceSystem,
        QgsCoordinateTransform,
        QgsFillSymbol,
        QgsMapRendererParallelJob,
        QgsMapSettings,
        QgsProject,
        QgsRasterLayer,
        QgsVectorLayer,
    )
    from qgis.PyQt.QtCore import QSize

    raster, footprints = QgsRasterLayer(str(image), "image"), QgsVectorLayer(str(buildings), "footprints")
    for layer in (raster, footprints):
        if not layer.isValid():
            sys.exit(f"QGIS could not open {layer.source()}")
    footprints.renderer().setSymbol(QgsFillSymbol.createSimple(
        {"color": "255,212,0,50", "outline_color": FOOTPRINT_COLOUR, "outline_width": "0.6"}))
    mercator = QgsCoordinateReferenceSystem("EPSG:3857")
    extent = QgsCoordinateTransform(raster.crs(), mercator, QgsProject.instance()).transformBoundingBox(
        raster.extent())
    settings = QgsMapSettings()
    settings.setLayers([footprints, raster])  # top first
    settings.setDestinationCrs(mercator)
    settings.setExtent(extent)
    settings.setOutputSize(QSize(width, round(width * extent.height() / extent.width())))
    job = QgsMapRendererParallelJob(settings)
    job.start()
    job.waitForFinished()
    picture.parent.mkdir(parents=True, exist_ok=True)
    if not job.renderedImage().save(str(picture), "JPG", 85):
        sys.exit(f"Could not write {picture}")
    return picture


def main() -> int:
    qgis_process("plugins", "enable", PLUGIN)  # answers 1 when already enabled in this profile
    with tempfile.TemporaryDirectory() as scratch:
        image = mosaic(Path(scratch))
        buildings = Path(scratch) / "buildings.gpkg"
        results = run_json("spacenet:extractbuildings", f"--INPUT={image}", "--REGULARIZE=true",
                           f"--OUTPUT={buildings}")
        print(f"{results['BUILDING_COUNT']} buildings by {results['MODEL_NAME']}")
        print(render(image, buildings, PICTURE))
    return 0


if __name__ == "__main__":
    sys.exit(main())
