"""Web imagery fixtures built from a real SpaceNet tile: the tile warped to EPSG:3857 at zoom 19's resolution on the
tile grid (the "source file"), its XYZ pyramid (gdal2tiles, zooms 15 to 19, PNG with alpha) and a COG of it.

Import it with ``tests/support`` on ``sys.path`` (``import web_tiles``).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ZOOM19_M = 156543.03392804097 / 2**19  # EPSG:3857 units per pixel at zoom 19
VEGAS_RGB = "spacenet/sn3_vegas_rgb_roads/RGB-PanSharpen_AOI_2_Vegas_img0.tif"


def build(fixtures: Path, folder: Path) -> dict:
    """{'source': the 3857 GeoTIFF, 'xyz': the z/x/y folder, 'cog': the COG}, made once per folder."""
    folder.mkdir(parents=True, exist_ok=True)
    source, xyz, cog = folder / "source_3857.tif", folder / "xyz", folder / "cog" / "source_cog.tif"
    if not source.exists():
        subprocess.run(["gdalwarp", "-q", "-overwrite", "-t_srs", "EPSG:3857", "-tr", repr(ZOOM19_M), repr(ZOOM19_M),
                        "-tap", "-r", "bilinear", "-dstalpha", "-co", "TILED=YES", str(fixtures / VEGAS_RGB),
                        str(source)], check=True)
    if not (xyz / "19").is_dir():
        shutil.rmtree(xyz, ignore_errors=True)
        gdal2tiles = shutil.which("gdal2tiles.py") or shutil.which("gdal2tiles")
        subprocess.run([gdal2tiles, "-q", "--xyz", "-z", "15-19", "--processes=1", "-r", "average", "-w", "none",
                        str(source), str(xyz)], check=True)
    if not cog.exists():
        cog.parent.mkdir(exist_ok=True)
        subprocess.run(["gdal_translate", "-q", "-of", "COG", "-co", "BLOCKSIZE=256", str(source), str(cog)],
                       check=True)
    return {"source": source, "xyz": xyz, "cog": cog}


def xyz_uri(base_url: str, zmax: int = 19, zmin: int = 0) -> str:
    """The QGIS wms-provider URI of the pyramid served at ``base_url`` (ending with "/")."""
    return f"type=xyz&url={base_url}{{z}}/{{x}}/{{y}}.png&zmax={zmax}&zmin={zmin}"
