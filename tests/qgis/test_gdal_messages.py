"""GDAL's messages in qgis_process: only the statistics of a blank raster are left out, the rest as GDAL prints."""

from spacenet_toolkit.qgis_adapter import gdal_messages


def test_the_statistics_of_a_blank_raster_are_left_out_and_the_rest_printed_as_gdal_does(capsys):
    gdal_messages.handle(3, 1, "/data/tile.tif, band 1: Failed to compute statistics, no valid pixels found in "
                               "sampling.")
    gdal_messages.handle(3, 4, "/data/missing.tif: No such file or directory")
    gdal_messages.handle(2, 6, "Lossy creation option ignored")
    assert capsys.readouterr().err == ("ERROR 4: /data/missing.tif: No such file or directory\n"
                                       "Warning 6: Lossy creation option ignored\n")


def test_installed_in_qgis_process_only(qgis_app):
    assert qgis_app.platform() != "qgis_process"
    assert gdal_messages.install() is False  # the desktop and the tests keep GDAL's own handler
