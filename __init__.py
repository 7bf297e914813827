"""QGIS entry point of SpaceNet Toolkit."""


def classFactory(iface):  # noqa: N802 - name required by QGIS
    # Imported here so that QGIS scanning the plugin folder pays for nothing else.
    from .plugin import SpaceNetToolkitPlugin

    return SpaceNetToolkitPlugin(iface)
