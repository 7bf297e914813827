#!/usr/bin/env python3
"""Fetching speed: downloads and listings against awscli/boto3 on a loopback S3 server, extent queries against a scan.

1. Download 200 GeoTIFF tiles (uncompressed crops of the real Vegas fixture, 0.5-1.5 MB each) listed under one
   SpaceNet prefix: ``list_objects`` + ``download_all`` (the same work as the CLI) and the whole ``fetch()`` job
   (a first run also opens each downloaded tile for its footprint; a second finds them in its index) against
   ``aws s3 cp --recursive`` (awscli v1, its default 10 concurrent requests). The moto server runs in this
   process, so every client runs in a process of its own: sharing the server's GIL would handicap whichever side
   ran here. Runs alternate in a rotating order, each into a fresh empty folder, and every file must be
   byte-identical (MD5) to what was uploaded.
2. List 10,000 keys under one prefix: ``Bucket.list_objects`` against boto3's paginator (both in this process) and
   ``aws s3 ls --recursive``.
3. Select tiles for a canvas-sized extent from a cached index of 10,000 footprints: ``TileIndex.query`` (the
   GeoPackage's R-tree) against reading every tile and testing each footprint with shapely.

Target: awscli's time / ours >= 1.0 for the download. ``--quick`` runs 40 tiles, 2,000 keys and 2,000 footprints.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import NamedTuple

from paths import PLUGIN_PATH

import numpy as np
import s3_server  # tests/support, found through paths

from spacenet_toolkit.core.fetch.s3 import Bucket, S3Object
from spacenet_toolkit.core.fetch.tileindex import Tile, TileIndex

SEED = 20240601
TILE_PLACE = ("SN2_buildings", "train", "AOI_2_Vegas", "PS-RGB")
TILE_PREFIX = "spacenet/{}/{}/{}/{}/".format(*TILE_PLACE)
LISTING_PLACE = ("SN2_buildings", "train", "AOI_3_Paris", "geojson_buildings")
LISTING_PREFIX = "spacenet/{}/{}/{}/{}/".format(*LISTING_PLACE)
EMPTY_LABEL = b'{"type": "FeatureCollection", "features": []}'
FIXTURE = s3_server.FIXTURES / "sn3_vegas_rgb_roads" / "RGB-PanSharpen_AOI_2_Vegas_img0.tif"
# Square 3-band uint8 crops, stored uncompressed: 0.48 to 1.47 MB, about what a SpaceNet PS-RGB tile weighs.
SIDES = (400, 700)
AWS_WORKERS = 10  # awscli's default max_concurrent_requests
OUR_WORKERS = 8  # FetchRequest's default
# Index grid: ~200 m cells near Vegas, each footprint a little smaller than its cell (no shared edges).
CELL = (0.0022, 0.0018)
FOOTPRINT = (0.0020, 0.0016)
ORIGIN = (-115.30, 36.20)
CANVAS_CELLS = (8, 5)  # a map canvas a few tiles across: 40 to 54 tiles


class Sizes(NamedTuple):
    tiles: int
    download_repeats: int
    keys: int
    listing_repeats: int
    index_tiles: int
    extents: int  # distinct canvas extents queried
    query_repeats: int  # times each extent is queried through the index
    scans: int  # extents answered by the full-scan baseline (slow: one full read each)


FULL = Sizes(tiles=200, download_repeats=3, keys=10_000, listing_repeats=2, index_tiles=10_000, extents=20,
             query_repeats=5, scans=5)
QUICK = Sizes(tiles=40, download_repeats=2, keys=2_000, listing_repeats=2, index_tiles=2_000, extents=10,
              query_repeats=3, scans=3)


# --- clients, each in a process of its own --------------------------------------------------------------------------

# Our side as a script would run it: ``python -c OUR_CLIENT mode endpoint prefix destination workers dataset split
# aoi product cache_dir``. It prints its own time after the imports, so start-up can be told apart from transfer.
OUR_CLIENT = """
import json, sys, time
from pathlib import Path
from typing import NamedTuple
from spacenet_toolkit.core.fetch.fetch import FetchRequest, fetch
from spacenet_toolkit.core.fetch.s3 import Bucket, Transfer, download_all, safe_destination

mode, endpoint, prefix, destination, workers, dataset, split, aoi, product, cache_dir = sys.argv[1:11]
destination, workers = Path(destination), int(workers)
start = time.perf_counter()
if mode == "fetch":
    request = FetchRequest(dataset, split, aoi, (product,), destination, endpoint=endpoint, workers=workers,
                           cache_dir=Path(cache_dir))
    statuses = [file.status for file in fetch(request).files]
else:
    with Bucket(endpoint, pool_size=max(16, workers)) as bucket:
        transfers = [Transfer(obj, safe_destination(destination, obj.key[len(prefix):]))
                     for obj in bucket.list_objects(prefix)]
        statuses = [result.status for result in download_all(bucket, transfers, workers=workers)]
print(json.dumps({"seconds": time.perf_counter() - start, "statuses": statuses}))
"""


def our_env() -> dict:
    return dict(os.environ, PYTHONPATH=str(PLUGIN_PATH), NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")


def aws_env() -> dict:
    """No AWS_* variable and no config file of the user's: awscli runs on its defaults, anonymously."""
    env = {name: value for name, value in our_env().items() if not name.startswith("AWS_")}
    env.update(AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null", AWS_DEFAULT_REGION="us-east-1",
               AWS_EC2_METADATA_DISABLED="true")
    return env


def aws_command(origin: str, *arguments: str) -> list[str]:
    # `python -m awscli`: the venv's awscli, whatever `aws` is on PATH
    return [sys.executable, "-m", "awscli", *arguments, "--no-sign-request", "--endpoint-url", origin]


# NamedTuple and plain classes, no dataclasses: bench/run.py loads this file without registering it in sys.modules.
class Sample(NamedTuple):
    wall: float
    client_cpu: float | None  # user + system seconds of the client process
    server_cpu: float  # user + system seconds of this process (the server's threads) during the run
    inner: float | None = None  # the client's own time after its imports


def cpu_seconds(usage) -> float:
    return usage.ru_utime + usage.ru_stime


def run_child(command: list[str], env: dict, ok_codes=(0,)) -> tuple[Sample, str]:
    children, server = resource.getrusage(resource.RUSAGE_CHILDREN), resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode not in ok_codes:
        raise RuntimeError(f"{' '.join(command[:6])} ... exited {result.returncode}: {result.stderr[-2000:]}")
    sample = Sample(wall, cpu_seconds(resource.getrusage(resource.RUSAGE_CHILDREN)) - cpu_seconds(children),
                    cpu_seconds(resource.getrusage(resource.RUSAGE_SELF)) - cpu_seconds(server))
    return sample, result.stdout


# --- 1. downloads -------------------------------------------------------------------------------------------------


def make_tiles(count: int, rng: np.random.Generator) -> dict[str, bytes]:
    """key -> GeoTIFF bytes: crops of the real Vegas tile with their own georeferencing."""
    import rasterio
    from rasterio.io import MemoryFile
    from rasterio.transform import Affine
    from rasterio.windows import Window

    if FIXTURE.is_file():
        with rasterio.open(FIXTURE) as source:
            pixels, crs, window_transform = source.read([1, 2, 3]), source.crs, source.window_transform
    else:  # outside a checkout with shared/: noise has the same uncompressed size
        print(f"(the fixture {FIXTURE} is absent: tiles hold random pixels)")
        pixels = rng.integers(0, 256, (3, 1300, 1300), dtype=np.uint8)
        crs = "EPSG:4326"

        def window_transform(window):
            return Affine(3e-6, 0.0, ORIGIN[0] + window.col_off * 3e-6, 0.0, -3e-6, ORIGIN[1] - window.row_off * 3e-6)

    tiles = {}
    for number in range(1, count + 1):
        side = int(rng.integers(SIDES[0], SIDES[1] + 1))
        col = int(rng.integers(0, pixels.shape[2] - side + 1))
        row = int(rng.integers(0, pixels.shape[1] - side + 1))
        window = Window(col, row, side, side)
        profile = {"driver": "GTiff", "width": side, "height": side, "count": 3, "dtype": "uint8", "crs": crs,
                   "transform": window_transform(window)}
        with MemoryFile() as memory:
            with memory.open(**profile) as dataset:
                dataset.write(pixels[:, row:row + side, col:col + side])
            tiles[s3_server.spacenet_key(*TILE_PLACE, f"img{number}")] = memory.read()
    return tiles


class Client:
    def __init__(self, label: str, workers: int, run: Callable[[Path], Sample], relative: Callable[[str], str]):
        self.label, self.workers = label, workers
        self.run = run
        self.relative = relative  # bucket key -> where the client writes it under its destination
        self.samples: list[Sample] = []


def by_name(key: str) -> str:
    return key[len(TILE_PREFIX):]  # aws s3 cp --recursive writes what follows the prefix


def by_bucket_layout(key: str) -> str:
    return key[len("spacenet/"):]  # fetch() keeps the bucket's layout under the output folder


def download_clients(server, work: Path) -> list[Client]:
    def ours(mode: str, workers: int, cache: Path | None = None):
        def run(destination: Path) -> Sample:
            # without a cache of its own: a first run, its cache folder is new and removed with the destination
            cache_dir = cache or Path(f"{destination}-cache")
            command = [sys.executable, "-c", OUR_CLIENT, mode, server.endpoint, TILE_PREFIX, str(destination),
                       str(workers), *TILE_PLACE, str(cache_dir)]
            sample, out = run_child(command, our_env())
            report = json.loads(out.splitlines()[-1])
            failed = [status for status in report["statuses"] if status != "downloaded"]
            if failed:
                raise RuntimeError(f"our client ({mode}) left {len(failed)} files not downloaded: {failed[:3]}")
            return sample._replace(inner=report["seconds"])
        return run

    def aws(destination: Path) -> Sample:
        # --only-show-errors: no progress lines to draw (ours draws none either)
        command = aws_command(server.origin, "s3", "cp", "--recursive", "--only-show-errors",
                              f"s3://{s3_server.BUCKET}/{TILE_PREFIX}", str(destination))
        return run_child(command, aws_env())[0]

    def ours_here(destination: Path) -> Sample:
        from spacenet_toolkit.core.fetch.s3 import Transfer, download_all, safe_destination

        usage = resource.getrusage(resource.RUSAGE_SELF)
        start = time.perf_counter()
        with Bucket(server.endpoint) as bucket:
            transfers = [Transfer(obj, safe_destination(destination, by_name(obj.key)))
                         for obj in bucket.list_objects(TILE_PREFIX)]
            results = download_all(bucket, transfers, workers=OUR_WORKERS)
        wall = time.perf_counter() - start
        if any(result.status != "downloaded" for result in results):
            raise RuntimeError("our client (in this process) left files not downloaded")
        return Sample(wall, None, cpu_seconds(resource.getrusage(resource.RUSAGE_SELF)) - cpu_seconds(usage))

    warm_cache = work / "warm-cache"
    ours("fetch", OUR_WORKERS, warm_cache)(work / "warming")  # lists and reads the headers once, untimed
    shutil.rmtree(work / "warming")
    return [
        Client(f"aws s3 cp --recursive (awscli {version('awscli')})", AWS_WORKERS, aws, by_name),
        Client("ours: list_objects + download_all", OUR_WORKERS, ours("download_all", OUR_WORKERS), by_name),
        Client("ours: list_objects + download_all", AWS_WORKERS, ours("download_all", AWS_WORKERS), by_name),
        Client("ours: fetch(), first run (+ footprints)", OUR_WORKERS, ours("fetch", OUR_WORKERS), by_bucket_layout),
        Client("ours: fetch(), footprint index cached", OUR_WORKERS, ours("fetch", OUR_WORKERS, warm_cache),
               by_bucket_layout),
        Client("ours, in the server's process (shared GIL)", OUR_WORKERS, ours_here, by_name),
    ]


def differences(root: Path, expected: dict[str, str]) -> list[str]:
    """What differs between the files under ``root`` and ``expected`` (relative path -> MD5)."""
    found = {path.relative_to(root).as_posix(): path for path in root.rglob("*") if path.is_file()}
    problems = [f"missing {name}" for name in sorted(set(expected) - set(found))]
    problems += [f"unexpected {name}" for name in sorted(set(found) - set(expected))]
    problems += [f"MD5 differs: {name}" for name, md5 in expected.items()
                 if name in found and hashlib.md5(found[name].read_bytes()).hexdigest() != md5]
    return problems


def bench_download(server, sizes: Sizes, rng: np.random.Generator, work: Path) -> bool:
    tiles = make_tiles(sizes.tiles, rng)
    megabytes = sum(map(len, tiles.values())) / 1e6
    start = time.perf_counter()
    server.put_many(tiles)
    print(f"{len(tiles)} GeoTIFF tiles ({min(map(len, tiles.values())) / 1e6:.2f}-"
          f"{max(map(len, tiles.values())) / 1e6:.2f} MB, {megabytes:.1f} MB in all) uploaded to moto at "
          f"{server.origin} in {time.perf_counter() - start:.1f} s; {os.cpu_count()} CPUs")
    md5s = {key: hashlib.md5(data).hexdigest() for key, data in tiles.items()}
    del tiles

    # aws's start-up alone (interpreter, botocore's models, one listing), to tell it apart from transferring
    startup = [run_child(aws_command(server.origin, "s3", "ls", f"s3://{s3_server.BUCKET}/nothing-here/"),
                         aws_env(), ok_codes=(0, 1))[0].wall for _ in range(3)]

    clients = download_clients(server, work)
    problems = []
    for repeat in range(sizes.download_repeats):
        shift = repeat % len(clients)  # rotate the order: drift and cache warmth favour no side
        for client in clients[shift:] + clients[:shift]:
            destination = Path(tempfile.mkdtemp(prefix="download-", dir=work))
            client.samples.append(client.run(destination))
            problems += [f"{client.label}: {problem}"
                         for problem in differences(destination, {client.relative(k): v for k, v in md5s.items()})]
            shutil.rmtree(destination)
            shutil.rmtree(str(destination) + "-cache", ignore_errors=True)

    print(f"{'client':46} {'workers':>7} {'best s':>7} {'median s':>8} {'MB/s':>6} {'client CPU s':>12} "
          f"{'server CPU s':>12}")
    for client in clients:
        walls = [sample.wall for sample in client.samples]
        client_cpu = [s.client_cpu for s in client.samples if s.client_cpu is not None]
        cpu = f"{statistics.median(client_cpu):12.2f}" if client_cpu else f"{'(with server)':>12}"
        print(f"{client.label:46} {client.workers:7d} {min(walls):7.2f} {statistics.median(walls):8.2f} "
              f"{megabytes / statistics.median(walls):6.0f} {cpu} "
              f"{statistics.median(s.server_cpu for s in client.samples):12.2f}")
    def median_wall(client: Client) -> float:
        return statistics.median(sample.wall for sample in client.samples)

    aws, ours, first_fetch, cached_fetch = clients[0], clients[1], clients[3], clients[4]
    aws_startup = statistics.median(startup)
    ours_inner = statistics.median(sample.inner for sample in ours.samples)
    ratio = median_wall(aws) / median_wall(ours)
    print(f"medians of {sizes.download_repeats} runs a side, each into an empty folder; wall time of the whole "
          f"command, start-up included")
    print(f"ratio aws / ours (list_objects + download_all, {OUR_WORKERS} workers): {ratio:.2f}x (target >= 1.0)")
    # what is left of the margin once aws's heavier start-up (botocore's models) is taken out
    print(f"  aws start-up alone (`aws s3 ls` of an empty prefix) {aws_startup:.2f} s; ours after its imports "
          f"{ours_inner:.2f} s; (aws - start-up) / ours after imports: "
          f"{(median_wall(aws) - aws_startup) / ours_inner:.2f}x")
    print(f"  aws / fetch(): first run {median_wall(aws) / median_wall(first_fetch):.2f}x, "
          f"footprint index cached {median_wall(aws) / median_wall(cached_fetch):.2f}x")
    if problems:
        print(f"FILES DIFFER ({len(problems)}): " + "; ".join(problems[:5]))
        return False
    print(f"every run of every client wrote the {len(md5s)} files byte-identical to the upload (MD5)")
    return ratio >= 1.0


# --- 2. listing ---------------------------------------------------------------------------------------------------


def bench_listing(server, sizes: Sizes) -> bool:
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    objects = {s3_server.spacenet_key(*LISTING_PLACE, f"img{number}"): EMPTY_LABEL
               for number in range(1, sizes.keys + 1)}
    start = time.perf_counter()
    server.put_many(objects)
    print(f"\n{sizes.keys:,} keys seeded under {LISTING_PREFIX} in {time.perf_counter() - start:.1f} s")
    # made before the clock starts: loading botocore's models is not listing
    client = boto3.client("s3", endpoint_url=server.origin, region_name="us-east-1",
                          config=Config(signature_version=UNSIGNED))

    def ours() -> list[str]:
        with Bucket(server.endpoint) as bucket:
            return [obj.key for obj in bucket.list_objects(LISTING_PREFIX)]

    def paginator() -> list[str]:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=s3_server.BUCKET, Prefix=LISTING_PREFIX)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    def aws() -> list[str]:
        command = aws_command(server.origin, "s3", "ls", "--recursive", f"s3://{s3_server.BUCKET}/{LISTING_PREFIX}")
        out = run_child(command, aws_env())[1]
        return [line.split(maxsplit=3)[3] for line in out.splitlines() if line.strip()]

    sides = [("ours: Bucket.list_objects (this process)", ours),
             ("boto3 paginator, UNSIGNED (this process)", paginator),
             (f"aws s3 ls --recursive (awscli {version('awscli')})", aws)]
    times = {label: [] for label, _ in sides}
    keys = {}
    for repeat in range(sizes.listing_repeats):
        shift = repeat % len(sides)
        for label, function in sides[shift:] + sides[:shift]:
            start = time.perf_counter()
            keys[label] = function()
            times[label].append(time.perf_counter() - start)

    print(f"{'lister':46} {'best s':>7} {'keys/s':>8} {'keys':>7}")
    for label, _ in sides:
        print(f"{label:46} {min(times[label]):7.2f} {sizes.keys / min(times[label]):8.0f} {len(keys[label]):7,}")
    best = {label: min(values) for label, values in times.items()}
    ours_s = best[sides[0][0]]
    print(f"best of {sizes.listing_repeats}; ratio boto3 / ours {best[sides[1][0]] / ours_s:.2f}x, "
          f"aws / ours {best[sides[2][0]] / ours_s:.2f}x (aws includes its start-up)")
    expected = sorted(objects)
    wrong = [label for label, found in keys.items() if sorted(found) != expected]
    if wrong:
        print(f"LISTINGS DIFFER from the {len(expected):,} keys seeded: {', '.join(wrong)}")
        return False
    print(f"all three listed exactly the {len(expected):,} keys seeded")
    return True


# --- 3. extent query on the cached index --------------------------------------------------------------------------


def grid_tiles(count: int) -> tuple[list[Tile], int, int]:
    """Tiles on a grid of ~200 m cells, footprints densified as footprint_from_header makes them (32 vertices)."""
    import shapely
    from shapely.geometry import box

    columns = int(count ** 0.5)
    rows = -(-count // columns)
    tiles = []
    for index in range(count):
        row, col = divmod(index, columns)
        west, north = ORIGIN[0] + col * CELL[0], ORIGIN[1] - row * CELL[1]
        outline = shapely.segmentize(box(west, north - FOOTPRINT[1], west + FOOTPRINT[0], north), FOOTPRINT[1] / 8)
        tile_id = f"img{index + 1}"
        obj = S3Object(s3_server.spacenet_key(*TILE_PLACE, tile_id), 1_000_000, f"{index:032x}")
        tiles.append(Tile(tile_id, obj, outline, "EPSG:32611"))
    return tiles, columns, rows


def canvas_extents(count: int, columns: int, rows: int, rng: np.random.Generator) -> list[tuple]:
    """West, south, east, north of map canvases CANVAS_CELLS across, placed at random inside the grid."""
    extents = []
    for _ in range(count):
        col = rng.uniform(0, columns - CANVAS_CELLS[0])
        row = rng.uniform(0, rows - CANVAS_CELLS[1])
        west, north = ORIGIN[0] + col * CELL[0], ORIGIN[1] - row * CELL[1]
        extents.append((west, north - CANVAS_CELLS[1] * CELL[1], west + CANVAS_CELLS[0] * CELL[0], north))
    return extents


def scan(index: TileIndex, bbox: tuple) -> list[str]:
    """The baseline: every tile read from the cache, each footprint tested in Python."""
    from shapely.geometry import box

    area = box(*bbox)
    return [tile.tile_id for tile in index.read() if tile.footprint is not None and tile.footprint.intersects(area)]


def bench_index(sizes: Sizes, rng: np.random.Generator, work: Path) -> bool:
    tiles, columns, rows = grid_tiles(sizes.index_tiles)
    index = TileIndex(work / "index.gpkg")
    start = time.perf_counter()
    index.write(tiles)
    write_s = time.perf_counter() - start
    extents = canvas_extents(sizes.extents, columns, rows, rng)

    answers = {}
    start = time.perf_counter()
    for _ in range(sizes.query_repeats):
        for bbox in extents:
            answers[bbox] = index.query(bbox)
    query_ms = (time.perf_counter() - start) * 1000 / (sizes.query_repeats * len(extents))
    start = time.perf_counter()
    expected = {bbox: scan(index, bbox) for bbox in extents[:sizes.scans]}
    scan_ms = (time.perf_counter() - start) * 1000 / sizes.scans

    hits = [len(found) for found in answers.values()]
    print(f"\nindex of {len(tiles):,} tile footprints ({columns} x {rows} grid of ~200 m cells, EPSG:4326, "
          f"{index.path.stat().st_size / 1e6:.1f} MB GeoPackage) written in {write_s:.2f} s")
    print(f"{'extent query':46} {'ms/query':>9} {'queries':>8}")
    queries = len(extents) * sizes.query_repeats
    print(f"{'ours: TileIndex.query (R-tree, then exact test)':46} {query_ms:9.2f} {queries:8d}")
    print(f"{'baseline: TileIndex.read + shapely one by one':46} {scan_ms:9.2f} {sizes.scans:8d}")
    print(f"canvas {CANVAS_CELLS[0]} x {CANVAS_CELLS[1]} cells, {min(hits)}-{max(hits)} tiles a query; "
          f"ratio baseline / ours {scan_ms / query_ms:.0f}x")
    wrong = [bbox for bbox, ids in expected.items() if sorted(ids) != sorted(answers[bbox])]
    if wrong or min(hits) == 0:
        print(f"QUERY RESULTS DIFFER from the full scan for {len(wrong)} of {len(expected)} extents "
              f"(or a query found nothing)")
        return False
    print(f"same tile ids as the full scan for all {len(expected)} extents it answered")
    return True


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="40 tiles, 2,000 keys, 2,000 footprints")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    sizes = QUICK if args.quick else FULL
    if importlib.util.find_spec("awscli") is None:
        print("awscli is missing from this Python: pip install -c constraints.txt -r requirements-dev.txt")
        return 1
    rng = np.random.default_rng(SEED)
    ok = True
    with tempfile.TemporaryDirectory(prefix="bench_fetch-") as folder:
        work = Path(folder)
        with s3_server.SpaceNetBucketServer() as server:
            ok &= bench_download(server, sizes, rng, work)
            ok &= bench_listing(server, sizes)  # after the downloads: 10,000 more keys would slow their listing
        ok &= bench_index(sizes, rng, work)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
