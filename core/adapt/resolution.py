"""The ground sample distance an adapted model runs at: its base model's, or a finer one the area's imagery holds.

A model sees roofs at the size it was trained on, give or take its scale augmentation. Where a city's buildings are
smaller or closer together than the training cities' (Kampala against Zanzibar and Nairobi), running it on finer
pixels shows it each roof larger, and the gaps between touching roofs wider. Which distance suits the area is
measured, not guessed: the base model runs at each candidate over the area's chips that are not held out, with its
threshold and min_score tuned at each, and the best F1 wins (a tie goes to the coarser distance, the faster run).
The held-out fifth plays no part, so it still measures the result honestly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..extract import raster

FINER = (5 / 6, 2 / 3)  # of the base model's distance: 0.25 m and 0.2 m for a 0.3 m model
# a candidate finer than the imagery's own pixels would only show the model blurred, upsampled roofs
NATIVE_SLACK = 1.01


@dataclass(frozen=True)
class Trial:
    gsd_m: float
    f1: float
    options: dict  # the threshold and min_score tuned at this distance

    def as_card(self) -> dict:
        return dict(gsd_m=self.gsd_m, object_f1=round(self.f1, 4), **self.options)


def native_gsd_m(raster_path: str, bounds: tuple) -> float:
    """The raster's own ground pixel size (metres) over ``bounds`` (its CRS)."""
    return math.sqrt(raster.model_grid(raster.describe(raster_path), bounds, None).pixel_area_m2)


def candidates(base_gsd_m: float, native_m: float) -> list[float]:
    """The base model's distance, then each finer one the imagery's own pixels resolve."""
    finer = [round(base_gsd_m * factor, 3) for factor in FINER]
    return [base_gsd_m] + [gsd for gsd in finer if native_m <= gsd * NATIVE_SLACK]


def best(trials: list[Trial]) -> Trial:
    """The trial with the highest F1; among equals, the coarsest distance (fewest pixels to run)."""
    return max(trials, key=lambda trial: (round(trial.f1, 6), trial.gsd_m))
