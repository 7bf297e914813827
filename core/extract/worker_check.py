"""What a Dask worker is asked before any work: can it run the plugin's block tasks on this raster and model?

Sent to the workers by value (cloudpickle), so it runs even where the plugin is missing, and says so. Only the
standard library at the top: the rest is imported inside, where a missing package is an answer, not a crash.
"""


def check(raster_path: str, model_path: str, protocol: int) -> str:
    """"" when this worker can run the run's tasks, else why not, in one sentence."""
    import importlib
    import os

    try:
        tasks = importlib.import_module("spacenet_toolkit.core.extract.block_tasks")
    except ImportError as error:
        return (f"it cannot import the plugin's engine ({error}): put the folder that holds spacenet_toolkit on "
                "the worker's PYTHONPATH, with the plugin's packages (numpy, rasterio, shapely, onnxruntime, scipy, "
                "scikit-image)")
    if getattr(tasks, "PROTOCOL", None) != protocol:
        return "it runs another version of the plugin: install the same version as the client's on every worker"
    if not os.path.isfile(model_path):
        return f"it cannot find the model file {model_path}: put it at the same path on every worker"
    try:
        import rasterio

        with rasterio.open(raster_path) as source:
            source.read(1, window=((0, 1), (0, 1)))
    except Exception as error:  # rasterio and GDAL raise many kinds: each one is an answer here
        return (f"it cannot read the raster {raster_path} ({error}): workers read it themselves, so give a path "
                "every worker sees, a /vsicurl/ URL or an s3:// key")
    return ""
