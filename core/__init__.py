"""The SpaceNet Toolkit engine: fetching, inference, vectorisation and scoring.

Nothing in this package imports ``qgis``: it runs in plain Python, in tests, in
``qgis_process`` and in scripts. The plugin's Processing and UI layers call into it.
"""
