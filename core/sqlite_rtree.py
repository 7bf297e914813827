"""Fill an empty SQLite R*Tree table (a GeoPackage spatial index) with many boxes at once.

SQLite builds an R*Tree one row at a time, each insert choosing a path and splitting nodes: about 10 µs a row, most
of the time of writing a big GeoPackage. GDAL 3.7 and later load the index in bulk (its sqlite_rtree_bulk_load);
GDAL 3.6, the one QGIS 3.22 runs on Debian 12, does not. Here the tree is packed with Sort-Tile-Recursive in numpy
(every node full but the last of each slice) and written straight into the table's three shadow tables in the format
SQLite's rtree module reads (``ext/rtree/rtree.c``): per node a blob of a big-endian 16-bit depth (the root's only)
and cell count, then per cell a 64-bit id (a row id in a leaf, a child node number above) and the box as big-endian
32-bit floats (minx, maxx, miny, maxy) rounded outwards, padded to the node size; ``_parent`` maps every node but the
root to its parent, ``_rowid`` every row id to its leaf. SQLite's own ``rtreecheck()`` then checks the whole tree;
should it find anything wrong, the table is emptied and filled row by row as SQLite would.

No QGIS here.
"""

from __future__ import annotations

import math
import sqlite3

import numpy as np

_CELL = np.dtype([("id", ">i8"), ("box", ">f4", (4,))])  # 24 bytes: SQLite's cell of a 2-D float R*Tree


def fill(connection: sqlite3.Connection, rtree: str, ids: np.ndarray, boxes: np.ndarray) -> None:
    """Fill the empty R*Tree table ``rtree`` (columns id, minx, maxx, miny, maxy) with ``ids`` (int64) and
    ``boxes`` ((n, 4) float64: minx, miny, maxx, maxy, as shapely.bounds gives them), inside the caller's
    transaction. sqlite3.Error when SQLite refuses (no rtree module): the caller decides what to do."""
    ids = np.asarray(ids, dtype=np.int64)
    boxes = np.asarray(boxes, dtype=np.float64)
    if not len(ids):
        return
    quoted = _quoted(rtree)
    node_table = _quoted(rtree + "_node")
    (node_size,) = connection.execute(f"SELECT length(data) FROM {node_table} WHERE nodeno = 1").fetchone()
    capacity = (node_size - 4) // _CELL.itemsize
    try:
        _write_packed(connection, rtree, ids, _outward_float32(boxes), capacity, node_size)
        (verdict,) = connection.execute("SELECT rtreecheck(?)", (rtree,)).fetchone()
    except sqlite3.Error:
        verdict = "failed"
    if verdict != "ok":  # never leave a wrong index: SQLite inserts every row itself
        _clear(connection, rtree, node_size)
        connection.executemany(f"INSERT INTO {quoted} VALUES (?, ?, ?, ?, ?)",
                               zip(ids.tolist(), *(boxes[:, axis].tolist() for axis in (0, 2, 1, 3))))


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _outward_float32(boxes: np.ndarray) -> np.ndarray:
    """(n, 4) float32 boxes as the R*Tree stores them: minx, maxx, miny, maxy, minima rounded down and maxima up,
    so that every stored box holds its geometry."""
    single = boxes.astype(np.float32)
    low, high = single[:, :2], single[:, 2:]
    low = np.where(low > boxes[:, :2], np.nextafter(low, np.float32(-np.inf)), low)
    high = np.where(high < boxes[:, 2:], np.nextafter(high, np.float32(np.inf)), high)
    return np.stack([low[:, 0], high[:, 0], low[:, 1], high[:, 1]], axis=1).astype(np.float32)


def _pack_level(boxes: np.ndarray, capacity: int):
    """One level of Sort-Tile-Recursive packing: (order, starts) such that entries ``order[starts[k]:starts[k+1]]``
    form node k; slices along x, then runs of ``capacity`` along y inside each slice."""
    count = len(boxes)
    nodes = math.ceil(count / capacity)
    slice_size = math.ceil(math.sqrt(nodes)) * capacity
    centre_x = boxes[:, 0].astype(np.float64) + boxes[:, 1]
    centre_y = boxes[:, 2].astype(np.float64) + boxes[:, 3]
    slice_of = np.empty(count, dtype=np.int64)
    slice_of[np.argsort(centre_x, kind="stable")] = np.arange(count) // slice_size
    order = np.lexsort((centre_y, slice_of))
    sorted_slices = slice_of[order]
    slice_start = np.searchsorted(sorted_slices, sorted_slices, side="left")
    node_in_slice = (np.arange(count) - slice_start) // capacity
    # a node starts where its slice starts or where a run of ``capacity`` inside the slice does
    new_node = np.ones(count, dtype=bool)
    new_node[1:] = (sorted_slices[1:] != sorted_slices[:-1]) | (node_in_slice[1:] != node_in_slice[:-1])
    return order, np.flatnonzero(new_node)


def _node_boxes(boxes: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """The box of each node: the union of its entries' boxes (entries already in node order)."""
    return np.stack([np.minimum.reduceat(boxes[:, 0], starts), np.maximum.reduceat(boxes[:, 1], starts),
                     np.minimum.reduceat(boxes[:, 2], starts), np.maximum.reduceat(boxes[:, 3], starts)], axis=1)


def _write_packed(connection, rtree: str, ids: np.ndarray, boxes: np.ndarray, capacity: int, node_size: int) -> None:
    # Bottom up: each level's entries (the row ids, then the nodes below) grouped into nodes; the root is the one
    # node of the last level.
    levels = []  # per level: (cell ids in node order, cell boxes, node starts); cell ids of upper levels filled later
    entry_ids, entry_boxes = ids, boxes
    while True:
        if len(entry_ids) <= capacity:
            order, starts = np.arange(len(entry_ids)), np.zeros(1, dtype=np.int64)
        else:
            order, starts = _pack_level(entry_boxes, capacity)
        cell_ids, cell_boxes = entry_ids[order], entry_boxes[order]
        levels.append((cell_ids, cell_boxes, starts))
        if len(starts) == 1:
            break
        entry_ids, entry_boxes = np.arange(len(starts), dtype=np.int64), _node_boxes(cell_boxes, starts)
    # Node numbers from the top: the root is 1, then each level below in order.
    first_number, number = [], 1
    for _, _, starts in reversed(levels):
        first_number.append(number)
        number += len(starts)
    first_number.reverse()  # first_number[level]: the number of that level's first node
    node_table, parent_table, rowid_table = (_quoted(f"{rtree}_{part}") for part in ("node", "parent", "rowid"))
    _clear(connection, rtree, None)
    height = len(levels)
    node_dtype = np.dtype([("depth", ">u2"), ("count", ">u2"), ("cells", _CELL, (capacity,))])
    padding = node_size - node_dtype.itemsize
    for level, (cell_ids, cell_boxes, starts) in enumerate(levels):
        node_numbers = first_number[level] + np.arange(len(starts))
        if level > 0:  # the cells of an upper level point at the nodes of the level below
            cell_ids = cell_ids + first_number[level - 1]
        node_of_cell = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, len(cell_ids))))
        slot = np.arange(len(cell_ids)) - starts[node_of_cell]
        nodes = np.zeros(len(starts), dtype=node_dtype)
        nodes["count"] = np.diff(np.append(starts, len(cell_ids)))
        if level == height - 1:
            nodes["depth"][0] = height - 1
        nodes["cells"]["id"][node_of_cell, slot] = cell_ids
        nodes["cells"]["box"][node_of_cell, slot] = cell_boxes
        raw = nodes.tobytes()
        size = node_dtype.itemsize
        blobs = [raw[k * size:(k + 1) * size] + bytes(padding) for k in range(len(starts))]
        connection.executemany(f"INSERT INTO {node_table} (nodeno, data) VALUES (?, ?)",
                               zip(node_numbers.tolist(), blobs))
        if level == 0:  # in row id order: appended to the table's b-tree rather than inserted all over it
            by_rowid = np.argsort(cell_ids, kind="stable")
            connection.executemany(f"INSERT INTO {rowid_table} (rowid, nodeno) VALUES (?, ?)",
                                   zip(cell_ids[by_rowid].tolist(), node_numbers[node_of_cell][by_rowid].tolist()))
        else:
            connection.executemany(f"INSERT INTO {parent_table} (nodeno, parentnode) VALUES (?, ?)",
                                   zip(cell_ids.tolist(), node_numbers[node_of_cell].tolist()))


def _clear(connection, rtree: str, node_size: int | None) -> None:
    """The shadow tables emptied; with ``node_size``, the empty root put back as SQLite creates it."""
    for part in ("node", "parent", "rowid"):
        connection.execute(f"DELETE FROM {_quoted(f'{rtree}_{part}')}")
    if node_size is not None:
        connection.execute(f"INSERT INTO {_quoted(rtree + '_node')} (nodeno, data) VALUES (1, zeroblob(?))",
                           (node_size,))
