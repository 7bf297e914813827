"""Fetch SpaceNet tiles: list a dataset's products, select tiles by extent through the footprint index, download.

This is the whole job of ``spacenet:fetchtiles`` without QGIS: plain values in, a list of files with
their status out. Files keep the bucket's layout below the output folder (without the leading
``spacenet/``), like ``aws s3 cp --recursive`` would write them, so runs into one folder share files.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..parallel import map_polling
from ..progress import Canceled, IsCanceled, Report, check, counted, silent, span
from . import catalog
from .geotiff_header import NotAGeoTiff, read_file_header, read_header
from .s3 import Bucket, S3Error, S3Object, Transfer, UnsafeKeyError, download_all, safe_destination
from .tileindex import Tile, TileIndex, cache_path, footprint_from_header

CACHE_MAX_AGE = 7 * 24 * 3600  # the datasets are static; a week-old listing is still right


class FetchError(S3Error):
    """Nothing to fetch, with where to look instead."""


@dataclass
class FetchRequest:
    dataset: str
    split: str
    aoi: str
    products: tuple[str, ...]
    output_folder: Path
    extent: tuple[float, float, float, float] | None = None  # west, south, east, north in EPSG:4326
    max_tiles: int = 0  # 0: no limit
    endpoint: str = catalog.BUCKET_URL
    cache_dir: Path | None = None  # None: no footprint cache
    workers: int = 8
    refresh: bool = False  # list again even when the cache is fresh
    timeout: float = catalog.DEFAULT_TIMEOUT  # seconds without an answer before a request is tried again

    def __post_init__(self):
        if not self.timeout > 0:
            raise catalog.CatalogError(f"The timeout must be more than 0 seconds, not {self.timeout:g}.")
        catalog.dataset(self.dataset).check(self.split, self.aoi)
        if not self.products:
            raise catalog.CatalogError("Choose at least one product (e.g. PS-RGB and labels).")
        for product in self.products:
            catalog.folder_name(self.dataset, product)
        if self.extent is not None:
            west, south, east, north = self.extent
            if not (west < east and south < north):
                raise catalog.CatalogError(f"The extent {self.extent} is empty or inverted.")


@dataclass
class FetchedFile:
    tile_id: str
    product: str
    key: str
    size: int
    status: str  # downloaded | present | failed | canceled | refused
    local_path: Path | None = None  # set only for complete files
    footprint: object = None  # shapely Polygon, EPSG:4326
    error: str = ""


@dataclass
class FetchResult:
    output_folder: Path
    files: list[FetchedFile] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def tile_ids(self) -> list[str]:
        return list(dict.fromkeys(f.tile_id for f in self.files))

    @property
    def complete(self) -> list[FetchedFile]:
        return [f for f in self.files if f.local_path is not None]


def fetch(request: FetchRequest, *, bucket: Bucket | None = None, report: Report | None = None,
          is_canceled: IsCanceled | None = None) -> FetchResult:
    """List, locate and download through ``bucket`` (the caller's, kept open; by default one opened on
    ``request.endpoint`` for this call); ``report(fraction, message when a new step starts)``. Raises Canceled
    when ``is_canceled()`` turns True: partial downloads stay in place and resume on the next run. A request
    left waiting for an answer is said in a message of ``report`` before it is tried again."""
    report = report or silent
    if bucket is not None:
        return _Fetcher(request, bucket, report, is_canceled).run()
    with Bucket(request.endpoint, timeout=request.timeout, pool_size=max(16, request.workers)) as own:
        return _Fetcher(request, own, report, is_canceled).run()


class _Fetcher:
    def __init__(self, request: FetchRequest, bucket: Bucket, report: Report, is_canceled):
        self.request = request
        self.bucket = bucket
        self._outer = report
        self.is_canceled = is_canceled
        self.warnings: list[str] = []
        self.unlocated: list[str] = []  # the tiles whose footprint could not be read, and why
        # The bucket's notices come from worker threads too; only the caller's thread may report.
        self._owner = threading.get_ident()
        self._fraction = 0.0
        self._notices: list[str] = []
        self._lock = threading.Lock()

    def report(self, fraction: float, message: str | None = None) -> None:
        """The caller's ``report``, saying first what the workers' requests noticed since the last call."""
        self._fraction = fraction
        with self._lock:
            notices, self._notices = self._notices, []
        for notice in notices:
            self._outer(fraction, notice)
        self._outer(fraction, message)

    def notice(self, message: str) -> None:
        """A line from the bucket (a request waiting for an answer): said now on the caller's thread, else at the
        next report (the pollers of the worker threads report every 0.1 s)."""
        if threading.get_ident() == self._owner:
            self._outer(self._fraction, message)
        else:
            with self._lock:
                self._notices.append(message)

    def run(self) -> FetchResult:
        previous = self.bucket.notify, self.bucket.is_canceled
        self.bucket.notify, self.bucket.is_canceled = self.notice, self.is_canceled
        try:
            return self._run()
        finally:
            self.bucket.notify, self.bucket.is_canceled = previous

    def _run(self) -> FetchResult:
        request = self.request
        self.report(0.0, f"Listing {request.dataset} {request.split} {request.aoi} in {request.endpoint}")
        listings = {product: self.listing(product) for product in request.products}
        missing = [product for product, tiles in listings.items() if not tiles]
        if missing:  # half a request (labels without their imagery) would only fail in the next step
            raise FetchError(self.nothing_listed_message(missing))
        self._check_canceled()
        footprint_product = self.footprint_product(listings)
        footprints = self.footprints(listings, footprint_product)
        selected = self.select(listings, footprints)
        transfers, files = self.plan(listings, footprints, selected)
        self.report(0.4, f"Downloading {len(transfers)} files for {len(selected)} tiles")
        results = download_all(self.bucket, transfers, workers=request.workers, is_canceled=self.is_canceled,
                               report=span(self.report, 0.4, 1.0))
        for file, result in zip((f for f in files if f.status == "pending"), results):
            file.status, file.error = result.status, result.error
            if result.status in ("downloaded", "present"):
                file.local_path = Path(result.transfer.destination)
        self.locate_from_downloads(footprint_product, footprints, files)
        self.report(1.0, None)
        return FetchResult(Path(request.output_folder), files, self.warnings)

    def locate_from_downloads(self, product: str, footprints: dict[str, Tile], files: list[FetchedFile]) -> None:
        """Footprints of tiles fetched without an extent come from the downloaded imagery: no extra requests."""
        located = {}
        for file in files:
            tile = footprints.get(file.tile_id)
            if file.product == product and file.local_path is not None and tile is not None and tile.footprint is None:
                try:
                    header = read_file_header(file.local_path)
                except NotAGeoTiff as error:
                    self.warnings.append(f"{file.local_path}: no footprint ({error}).")
                    continue
                located[file.tile_id] = footprints[file.tile_id] = tile.with_footprint(
                    footprint_from_header(header), header.crs_wkt)
        if not located:
            return
        for file in files:
            if file.tile_id in located:
                file.footprint = located[file.tile_id].footprint
        index = self.index_for(product)
        if index is not None:
            index.write(footprints.values())

    # -- listing -----------------------------------------------------------------------------------------------

    def index_for(self, product: str) -> TileIndex | None:
        request = self.request
        if request.cache_dir is None:
            return None
        folder = catalog.folder_name(request.dataset, product)
        return TileIndex(cache_path(request.cache_dir, request.endpoint, request.dataset, request.split, request.aoi,
                                    folder))

    def listing(self, product: str) -> dict[str, Tile]:
        """tile id -> Tile for one product, from a fresh cache or from the bucket."""
        index = self.index_for(product)
        request = self.request
        prefix = catalog.product_prefix(request.dataset, request.split, request.aoi, product)
        if index is not None and not request.refresh:
            age = index.age_seconds()
            if age is not None and age < CACHE_MAX_AGE:
                tiles = {tile.tile_id: tile for tile in index.read()}
                if not tiles:  # said on every run, not only on the one that listed it
                    self.warnings.append(f"No {product} objects under {prefix}.")
                return tiles
        cached = {tile.obj.key: tile for tile in index.read()} if index is not None else {}
        tiles = {}
        for obj in self.bucket.list_objects(prefix):
            self._check_canceled()
            tile_id = catalog.tile_id(obj.key, request.dataset, request.split, request.aoi, product)
            if tile_id is None:
                continue
            old = cached.get(obj.key)
            keep = old is not None and old.obj.etag == obj.etag  # footprints of unchanged objects carry over
            tiles[tile_id] = Tile(tile_id, obj, old.footprint, old.crs_wkt) if keep else Tile(tile_id, obj)
        if not tiles:
            self.warnings.append(f"No {product} objects under {prefix}.")
        if index is not None:
            index.write(tiles.values(), listed_at=time.time())
        return tiles

    def nothing_listed_message(self, products) -> str:
        request = self.request
        prefix = catalog.aoi_prefix(request.dataset, request.split, request.aoi)
        folders = self.aoi_folders()
        asked = ", ".join(products)
        if folders:
            return (f"{request.dataset} {request.split} {request.aoi} has no {asked} tiles. Products found there: "
                    f"{', '.join(folders)}.")
        return (f"Nothing is listed under {prefix} at {request.endpoint}. Check the split (test splits of some "
                "datasets were never published) and the endpoint.")

    def aoi_folders(self) -> list[str]:
        """The product folders the bucket holds for this AOI (PS-RGB, geojson_buildings, ...)."""
        request = self.request
        prefix = catalog.aoi_prefix(request.dataset, request.split, request.aoi)
        return [folder[len(prefix):].strip("/") for folder in self.bucket.list_folders(prefix)]

    # -- footprints and selection ------------------------------------------------------------------------------

    def footprint_product(self, listings: dict[str, dict[str, Tile]]) -> str:
        """Imagery carries the footprints; for labels only, use whichever imagery the AOI has."""
        for product, tiles in listings.items():
            if not catalog.is_label(product) and tiles:
                return product
        request = self.request
        present = self.aoi_folders()
        for product in catalog.IMAGERY_PRODUCTS:
            if product in present:
                return product
        raise FetchError(f"{request.dataset} {request.split} {request.aoi} has no imagery to locate tiles by.")

    def footprints(self, listings: dict[str, dict[str, Tile]], product: str) -> dict[str, Tile]:
        """tile id -> Tile with footprint, reading the headers that are not cached yet.

        Without an extent, footprints are only needed for the output: those of imagery about to be
        downloaded are read from the files afterwards; only the others are read remotely now."""
        # imagery that was not requested is listed for its footprints only
        tiles = listings[product] if product in listings else self.listing(product)
        wanted = list(tiles.values())
        if self.request.extent is None:
            if product in listings:
                return tiles
            wanted = [tiles[tile_id] for tile_id in self.first_ids(listings)[: self._limit()] if tile_id in tiles]
        missing = [tile for tile in wanted if tile.footprint is None]
        if missing:
            canceled = self.read_footprints(tiles, missing)
            index = self.index_for(product)
            if index is not None:  # keep what was read, canceled or not: it is correct and costs requests
                index.write(tiles.values())
            if canceled:
                raise Canceled()
        return tiles

    def read_footprints(self, tiles: dict[str, Tile], missing: list[Tile]) -> bool:
        """Fill in footprints in ``tiles``; returns whether the user canceled."""
        lock = threading.Lock()

        def read(tile: Tile, stop: threading.Event):
            if stop.is_set():
                return None
            try:
                header = read_header(lambda start, end: self.bucket.read_range(tile.obj.key, start, end),
                                     tile.obj.size)
            except (NotAGeoTiff, S3Error) as error:  # one unreadable tile must not stop the others
                with lock:
                    self.warnings.append(f"{tile.obj.key}: no footprint ({error}).")
                    self.unlocated.append(self.warnings[-1])
                return None
            return tile.with_footprint(footprint_from_header(header), header.crs_wkt)

        self.report(0.05, f"Reading the footprints of {len(missing)} tiles (kept for next time)")
        step = counted(self.report, 0.05, 0.35)
        results, canceled = map_polling(read, missing, workers=self.request.workers,
                                        on_poll=lambda finished: step(finished, len(missing)),
                                        is_canceled=self.is_canceled)
        for tile in results:
            if tile is not None:
                tiles[tile.tile_id] = tile
        return canceled

    def first_ids(self, listings) -> list[str]:
        ids = {tile_id for tiles in listings.values() if tiles for tile_id in tiles}
        return sorted(ids, key=catalog.natural_key)

    def _limit(self) -> int | None:
        return self.request.max_tiles or None

    def select(self, listings, footprints: dict[str, Tile]) -> list[str]:
        request = self.request
        ids = self.first_ids(listings)
        if request.extent is not None:
            from shapely.geometry import box

            area = box(*request.extent)
            ids = [tile_id for tile_id in ids
                   if tile_id in footprints and footprints[tile_id].footprint is not None
                   and footprints[tile_id].footprint.intersects(area)]
            if not ids:
                raise FetchError(self.no_tiles_in_extent_message(footprints))
        return ids[: self._limit()]

    def no_tiles_in_extent_message(self, footprints: dict[str, Tile]) -> str:
        request = self.request
        outlines = [tile.footprint for tile in footprints.values() if tile.footprint is not None]
        unlocated = self.unlocated
        if unlocated and len(outlines) < len(footprints):
            # the tiles could not be read, which says nothing of the extent: say why they could not
            more = f" (and {len(unlocated) - 1} more like it)" if len(unlocated) > 1 else ""
            return (f"{len(footprints) - len(outlines)} of the {len(footprints)} {request.dataset} {request.split} "
                    f"{request.aoi} tiles could not be located, so none was found in the extent: {unlocated[0]}"
                    f"{more} Check the endpoint and the network, then run again.")
        where = "none of its tiles could be located"
        if outlines:
            from shapely import union_all

            west, south, east, north = union_all([o.envelope for o in outlines]).bounds
            where = (f"its {len(outlines)} tiles cover longitude {west:.4f} to {east:.4f} and latitude "
                     f"{south:.4f} to {north:.4f} (EPSG:4326)")
        west, south, east, north = request.extent
        return (f"No {request.dataset} {request.split} {request.aoi} tile intersects the extent "
                f"({west:.4f}, {south:.4f}, {east:.4f}, {north:.4f}); {where}. Zoom the map there or leave the "
                "extent empty.")

    # -- downloads ---------------------------------------------------------------------------------------------

    def plan(self, listings, footprints: dict[str, Tile], selected: list[str]):
        files: list[FetchedFile] = []
        transfers: list[Transfer] = []
        for product in self.request.products:
            tiles = listings.get(product) or {}
            for tile_id in selected:
                tile = tiles.get(tile_id)
                if tile is None:
                    continue
                outline = footprints[tile_id].footprint if tile_id in footprints else None
                file = FetchedFile(tile_id, product, tile.obj.key, tile.obj.size, "pending", footprint=outline)
                try:
                    destination = safe_destination(self.request.output_folder, _relative(tile.obj))
                except UnsafeKeyError as error:
                    file.status, file.error = "refused", str(error)
                    self.warnings.append(str(error))
                else:
                    transfers.append(Transfer(tile.obj, destination))
                files.append(file)
        return transfers, files

    def _check_canceled(self) -> None:
        check(self.is_canceled)


def _relative(obj: S3Object) -> str:
    root = f"{catalog.ROOT}/"
    return obj.key[len(root):] if obj.key.startswith(root) else obj.key
