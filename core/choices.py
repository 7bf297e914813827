"""The values of the engine's enumerated options, named once for core and for the Processing parameters that
offer them; importable at QGIS start, without numpy."""

DEVICES = ("auto", "gpu", "cpu")  # where the model runs: auto uses a GPU when it can
MATCHING = ("greedy>=", "greedy>", "optimal")  # how F1 pairs proposals with truth (core.score.f1_matching)
