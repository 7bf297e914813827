"""Which chips train and which measure: a fifth of the area held out by block, never by chip.

Neighbouring chips share roofs, shadows and the same street: a chip held out beside its training neighbours
would flatter the adapted model. So chips are grouped into square blocks of a few chips, and whole blocks are
held out, picked in a fixed pseudo-random order until they hold about a fifth of the labelled pixels (_take).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HELD_OUT_SHARE = 0.2
MIN_BLOCKS = 5
BLOCK_CHIPS = (4, 2, 1)  # block sides tried, in chips: the largest that still makes MIN_BLOCKS blocks


@dataclass(frozen=True)
class Split:
    training: list  # chip indices
    held_out: list
    tuning: list  # chips that choose the adapted model's thresholds (a fifth of the rest; [] for tiny areas)
    blocks: list  # per chip: its block number
    block_chips: int  # a block's side in chips

    @property
    def held_out_blocks(self) -> int:
        return len({self.blocks[i] for i in self.held_out})


def split(origins: list, known_pixels: np.ndarray, chip_px: int, share: float = HELD_OUT_SHARE) -> Split:
    """Training and held-out chips of chips at ``origins`` ((row, col) on one grid) with ``known_pixels`` labelled
    pixels each. Raises ValueError when fewer than two chips carry labels (nothing could be held out)."""
    labelled = [i for i, n in enumerate(known_pixels) if n > 0]
    if len(labelled) < 2:
        raise ValueError("The area is too small to hold a fifth out: it makes one training chip; draw a larger "
                         "area (at least two chips of the model's grid).")
    for side in BLOCK_CHIPS:
        blocks = [(row // (chip_px * side), col // (chip_px * side)) for row, col in origins]
        if len({blocks[i] for i in labelled}) >= MIN_BLOCKS or side == 1:
            break
    names = sorted({blocks[i] for i in labelled})
    number = {name: k for k, name in enumerate(sorted(set(blocks)))}
    weight = {name: sum(known_pixels[i] for i in labelled if blocks[i] == name) for name in names}
    total = sum(weight.values())
    order = [names[k] for k in np.random.default_rng(0).permutation(len(names))]  # the same for the same area
    held = _take(order, weight, share * total, keep=1)
    # a second fifth, when the area has blocks to spare, tunes the adapted model's thresholds: never the held-out
    tuning = _take([n for n in order if n not in held], weight, share * total, keep=2) if len(names) >= 4 else set()
    return Split(training=[i for i in labelled if blocks[i] not in held | tuning],
                 held_out=[i for i in labelled if blocks[i] in held],
                 tuning=[i for i in labelled if blocks[i] in tuning],
                 blocks=[number[b] for b in blocks], block_chips=side)


def _take(order: list, weight: dict, wanted: float, keep: int) -> set:
    """The first block of ``order``, then each next one that brings their weight nearer ``wanted``, leaving at least
    ``keep`` blocks of ``order`` out. Blocks of an area weigh very unevenly (a full block beside a sliver at the
    area's edge): taking blocks until the weight is reached could hold out twice the share and leave the next share
    a few slivers."""
    taken, pixels = set(), 0
    for name in order:
        if len(taken) >= len(order) - keep:
            break
        if not taken or abs(pixels + weight[name] - wanted) < abs(pixels - wanted):
            taken.add(name)
            pixels += weight[name]
    return taken
