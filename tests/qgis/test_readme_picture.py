"""`make readme-picture` draws footprints over their image with QGIS's renderer: here on the sample Atlanta tile and
its labelled footprints (the script's own data, Kampala's chips, lie in ../shared)."""

import importlib.util

import numpy


def load_script(repo_root):
    spec = importlib.util.spec_from_file_location("readme_picture", repo_root / "scripts" / "readme_picture.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_footprints_are_drawn_over_the_image_in_their_colour(repo_root, tmp_path):
    from qgis.PyQt.QtGui import QColor, QImage

    script = load_script(repo_root)
    samples = repo_root / "sample_data"
    picture = script._draw(samples / "sn4_atlanta_pan.tif", samples / "sn4_atlanta_buildings.geojson",
                           tmp_path / "picture.jpg", width=600)

    image = QImage(str(picture))
    # a square UTM tile stays square in Web Mercator (its outline turns a little: grid convergence)
    assert image.width() == 600 and abs(image.height() - 600) <= 6, (image.width(), image.height())
    pixels = numpy.array([[QColor(image.pixel(x, y)).getRgb()[:3] for x in range(0, 600, 2)]
                          for y in range(0, image.height(), 2)], dtype=int)
    outline = numpy.array(QColor(script.FOOTPRINT_COLOUR).getRgb()[:3])
    near_outline = (numpy.abs(pixels - outline).sum(axis=2) < 60).mean()
    assert 0.001 < near_outline < 0.2, near_outline  # outlines drawn, the image still seen between them
    assert pixels.std() > 20  # the panchromatic image under them, not a blank canvas
