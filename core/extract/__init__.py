"""Extract: imagery to probabilities to footprints and road graphs (raster I/O, model runtime, vectorisation)."""
