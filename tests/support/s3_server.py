"""A loopback S3 server (moto) seeded like the public ``spacenet-dataset`` bucket, for tests of fetching tiles.

Import it with ``tests/support`` on ``sys.path`` (``import s3_server``): see ``tests/unit/test_test_support.py``.

What it serves, under the real key layout
``spacenet/{dataset}/{split}/{aoi}/{product}/{dataset}_{split}_{aoi}_{product}_{tileid}.{tif|geojson}``:

- the real SpaceNet fixture tiles of ``../shared/fixtures/spacenet`` byte for byte (CC BY-SA 4.0,
  "The SpaceNet Dataset by SpaceNet Partners");
- ``filler_tiles`` small GeoTIFF + label pairs under ``SN2_buildings/train/AOI_2_Vegas`` (more than 1000 keys, so
  listings page), each with its own 200 m footprint, half with the TIFF directory at the start of the file and half
  at the end;
- on request, keys that try to escape a download folder (``seed_hostile``).

moto keeps its state in process-wide backends, so only one server may run at a time in a process, and a
``moto.mock_aws`` started in the same process while it runs would wipe the bucket.
"""

import contextlib
import functools
import hashlib
import json
import logging
import random
import re
import struct
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, NamedTuple, Optional, Set, Tuple
from urllib.parse import quote

import numpy as np
import rasterio
import requests
from moto.server import ThreadedMotoServer
from rasterio.io import MemoryFile
from rasterio.transform import Affine
from rasterio.warp import transform_bounds

BUCKET = "spacenet-dataset"
# tests/support/s3_server.py -> the checkout's parent holds shared/ (as tests/conftest.py assumes).
FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "spacenet"

Bounds = Tuple[float, float, float, float]  # west, south, east, north in EPSG:4326

# (fixture file, dataset, split, aoi, product, tile id): where each real fixture lives in the bucket.
REAL_TILES = [
    ("sn3_vegas_rgb_roads/RGB-PanSharpen_AOI_2_Vegas_img0.tif", "SN3_roads", "train", "AOI_2_Vegas", "PS-RGB", "img0"),
    ("sn3_vegas_rgb_roads/AOI_2_Vegas_img0.geojson", "SN3_roads", "train", "AOI_2_Vegas", "geojson_roads", "img0"),
    ("sn3_vegas_pan_roads/road_mask_input.tif", "SN3_roads", "train", "AOI_2_Vegas", "PAN", "img1"),
    ("sn3_vegas_pan_roads/sample_roads_for_masking.geojson", "SN3_roads", "train", "AOI_2_Vegas", "geojson_roads",
     "img1"),
    ("sn4_atlanta_pan/sample_geotiff.tif", "SN4_buildings", "train", "AOI_6_Atlanta", "PAN", "img1"),
    ("sn4_atlanta_pan/geotiff_labels.geojson", "SN4_buildings", "train", "AOI_6_Atlanta", "geojson_buildings", "img1"),
    ("sn6_rotterdam_ms_pan/ms1.tif", "SN6_buildings", "train", "AOI_11_Rotterdam", "MS", "img1"),
    ("sn6_rotterdam_ms_pan/ms2.tif", "SN6_buildings", "train", "AOI_11_Rotterdam", "MS", "img2"),
    ("sn6_rotterdam_ms_pan/pan1.tif", "SN6_buildings", "train", "AOI_11_Rotterdam", "PAN", "img1"),
    ("sn6_rotterdam_ms_pan/pan2.tif", "SN6_buildings", "train", "AOI_11_Rotterdam", "PAN", "img2"),
]

FILLER = ("SN2_buildings", "train", "AOI_2_Vegas")
FILLER_COLUMNS = 26
FILLER_PIXELS = 64
# Grid of ~200 m cells; a tile covers most of its cell so neighbours never share an edge.
FILLER_ORIGIN = (-115.30, 36.20)
FILLER_CELL = (0.0022, 0.0018)
FILLER_SIZE = (0.0020, 0.0016)

HOSTILE_PREFIX = "spacenet/SN2_buildings/train/AOI_3_Paris/PS-RGB/"

_KEY = re.compile(
    r"^spacenet/(?P<dataset>[^/]+)/(?P<split>[^/]+)/(?P<aoi>[^/]+)/(?P<product>[^/]+)/"
    r"(?P=dataset)_(?P=split)_(?P=aoi)_(?P=product)_(?P<tile_id>img\d+)\.(?P<ext>tif|geojson)$"
)


class KeyParts(NamedTuple):
    dataset: str
    split: str
    aoi: str
    product: str
    tile_id: str
    ext: str


def spacenet_key(dataset: str, split: str, aoi: str, product: str, tile_id: str) -> str:
    """The bucket key of one product of one tile; label products (``geojson_*``) are GeoJSON, the rest GeoTIFF."""
    ext = "geojson" if product.startswith("geojson") else "tif"
    return f"spacenet/{dataset}/{split}/{aoi}/{product}/{dataset}_{split}_{aoi}_{product}_{tile_id}.{ext}"


def parse_key(key: str) -> Optional[KeyParts]:
    """The parts of a well-formed SpaceNet key, or None (hostile and foreign keys)."""
    match = _KEY.match(key)
    return KeyParts(**match.groupdict()) if match else None


def first_ifd_offset(data: bytes) -> int:
    """Where a TIFF's first directory starts (bytes 4..8, or 8..16 for BigTIFF)."""
    order = "<" if data[:2] == b"II" else ">"
    if struct.unpack(order + "H", data[2:4])[0] == 43:
        return struct.unpack(order + "Q", data[8:16])[0]
    return struct.unpack(order + "I", data[4:8])[0]


@dataclass
class Manifest:
    """What the bucket holds, as uploaded: the truth a test compares a download with."""

    endpoint: str
    objects: Dict[str, bytes] = field(default_factory=dict)  # key -> exact bytes
    private: Set[str] = field(default_factory=set)  # keys uploaded without public-read
    footprints: Dict[str, Bounds] = field(default_factory=dict)  # GeoTIFF key -> bounds in EPSG:4326
    ifd_offsets: Dict[str, int] = field(default_factory=dict)  # GeoTIFF key -> first IFD offset
    label_features: Dict[str, int] = field(default_factory=dict)  # GeoJSON key -> number of features
    hostile: List[str] = field(default_factory=list)  # keys from seed_hostile

    def url(self, key: str) -> str:
        return self.endpoint + "/" + encode_key(key)

    def size(self, key: str) -> int:
        return len(self.objects[key])

    def md5(self, key: str) -> str:
        return hashlib.md5(self.objects[key]).hexdigest()

    def etag(self, key: str) -> str:
        """The ETag S3 gives a single-part upload: the MD5 hex digest in double quotes."""
        return f'"{self.md5(key)}"'

    def ifd_at_start(self, key: str) -> bool:
        """True when the TIFF directory directly follows the 8-byte header (a range read of the head finds it)."""
        return self.ifd_offsets[key] == 8

    def keys(self, dataset=None, split=None, aoi=None, product=None) -> List[str]:
        """Well-formed SpaceNet keys matching the given parts, in S3 listing order."""
        wanted = {"dataset": dataset, "split": split, "aoi": aoi, "product": product}
        found = []
        for key in self.objects:
            parts = parse_key(key)
            if parts and all(value is None or getattr(parts, name) == value for name, value in wanted.items()):
                found.append(key)
        return sorted(found)

    def products(self, dataset: str, split: str, aoi: str) -> List[str]:
        return sorted({parse_key(key).product for key in self.keys(dataset, split, aoi)})

    def tile_ids(self, dataset: str, split: str, aoi: str, product: Optional[str] = None) -> List[str]:
        """Tile ids in numeric order (img7 before img10)."""
        ids = {parse_key(key).tile_id for key in self.keys(dataset, split, aoi, product)}
        return sorted(ids, key=lambda tile_id: int(tile_id[3:]))

    def tile_footprints(self, dataset: str, split: str, aoi: str) -> Dict[str, Bounds]:
        """tile id -> bounds in EPSG:4326, from the first GeoTIFF product of each tile (MS and PAN share extents)."""
        result: Dict[str, Bounds] = {}
        for key in self.keys(dataset, split, aoi):
            if key in self.footprints:
                result.setdefault(parse_key(key).tile_id, self.footprints[key])
        return result


def encode_key(key: str) -> str:
    """A key as a URL path: percent-encoded, with ``.``/``..`` segments as ``%2E`` so no HTTP client folds them away."""
    segments = quote(key, safe="/").split("/")
    return "/".join(segment.replace(".", "%2E") if segment in (".", "..") else segment for segment in segments)


class SpaceNetBucketServer:
    """moto's S3 server on 127.0.0.1 (a free port) holding a public-read bucket named ``spacenet-dataset``.

    ``endpoint`` is the path-style bucket URL: an object is ``endpoint + "/" + key``, a listing is
    ``GET endpoint?list-type=2&prefix=...&delimiter=/``. No credentials are needed or set anywhere.
    """

    _running_lock = threading.Lock()  # moto's backends are global: one server per process

    def __init__(self, upload_threads: int = 16):
        self.upload_threads = upload_threads
        self._server: Optional[ThreadedMotoServer] = None
        self._sessions = threading.local()
        self._werkzeug_level = logging.NOTSET
        self.origin = ""
        self.endpoint = ""
        self.manifest = Manifest(endpoint="")

    # --- life cycle ---------------------------------------------------------------------------------------------

    def start(self) -> "SpaceNetBucketServer":
        if not self._running_lock.acquire(blocking=False):
            raise RuntimeError("a SpaceNetBucketServer already runs in this process (moto's state is process-wide)")
        try:
            # werkzeug logs every request to stderr; seeding alone makes a thousand lines.
            werkzeug = logging.getLogger("werkzeug")
            self._werkzeug_level = werkzeug.level
            werkzeug.setLevel(logging.ERROR)
            self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            self._server.start()
            host, port = self._server.get_host_and_port()
            self.origin = f"http://{host}:{port}"
            self.endpoint = f"{self.origin}/{BUCKET}"
            self.manifest = Manifest(endpoint=self.endpoint)
            # A server stopped earlier in this process may have left its bucket in moto's backends.
            self._session().post(self.origin + "/moto-api/reset", timeout=10).raise_for_status()
            response = self._session().put(self.endpoint, headers={"x-amz-acl": "public-read"}, timeout=10)
            response.raise_for_status()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        with contextlib.suppress(requests.RequestException):
            # Frees the uploaded bytes held by moto's backends.
            requests.post(self.origin + "/moto-api/reset", timeout=10)
        self._server.stop()
        self._server = None
        logging.getLogger("werkzeug").setLevel(self._werkzeug_level)
        self._running_lock.release()

    def __enter__(self) -> "SpaceNetBucketServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # --- uploads ------------------------------------------------------------------------------------------------

    def _session(self) -> requests.Session:
        # requests.Session is not thread-safe: one per upload thread.
        session = getattr(self._sessions, "session", None)
        if session is None:
            session = self._sessions.session = requests.Session()
        return session

    def url(self, key: str) -> str:
        return self.endpoint + "/" + encode_key(key)

    def _upload(self, key: str, data: bytes, public: bool) -> None:
        headers = {"x-amz-acl": "public-read" if public else "private", "Content-Type": _content_type(key)}
        response = self._session().put(self.url(key), data=data, headers=headers, timeout=30)
        response.raise_for_status()

    def put(self, key: str, data: bytes, public: bool = True) -> None:
        """Upload one object: anonymous GET/HEAD gets it when public, 403 otherwise."""
        self.put_many({key: data}, public=public)

    def put_many(self, objects: Dict[str, bytes], public: bool = True) -> None:
        """Upload objects in parallel and record them in ``manifest``."""
        with ThreadPoolExecutor(self.upload_threads) as pool:
            # list() re-raises the first upload error here.
            list(pool.map(lambda item: self._upload(item[0], item[1], public), objects.items()))
        for key, data in objects.items():
            self.manifest.objects[key] = data
            if public:
                self.manifest.private.discard(key)
            else:
                self.manifest.private.add(key)

    # --- seeding ------------------------------------------------------------------------------------------------

    def seed_spacenet(self, filler_tiles: int = 520, fixtures: Path = FIXTURES) -> Manifest:
        """Upload the real fixture tiles and ``filler_tiles`` filler tile + label pairs; return the manifest."""
        objects: Dict[str, bytes] = {}
        for name, dataset, split, aoi, product, tile_id in REAL_TILES:
            key = spacenet_key(dataset, split, aoi, product, tile_id)
            objects[key] = (fixtures / name).read_bytes()
            self._describe(key, objects[key])

        tiles, labels = make_filler(filler_tiles, fixtures)
        for tile_id, (data, bounds) in tiles.items():
            key = spacenet_key(*FILLER, "PS-RGB", tile_id)
            objects[key] = data
            self.manifest.footprints[key] = bounds
            self.manifest.ifd_offsets[key] = first_ifd_offset(data)
        for tile_id, data in labels.items():
            key = spacenet_key(*FILLER, "geojson_buildings", tile_id)
            objects[key] = data
            self.manifest.label_features[key] = len(json.loads(data)["features"])

        filler_keys = [spacenet_key(*FILLER, "PS-RGB", tile_id) for tile_id in tiles]
        at_start = sum(self.manifest.ifd_at_start(key) for key in filler_keys)
        # Clients must handle both layouts; make sure both are really there.
        assert 0 < at_start < len(filler_keys) or len(filler_keys) < 2, f"{at_start} of {len(filler_keys)} at start"
        self.put_many(objects)
        return self.manifest

    def _describe(self, key: str, data: bytes) -> None:
        """Record the footprint and IFD offset of a GeoTIFF, or the feature count of a label."""
        if key.endswith(".geojson"):
            self.manifest.label_features[key] = len(json.loads(data)["features"])
            return
        self.manifest.ifd_offsets[key] = first_ifd_offset(data)
        with MemoryFile(data) as memory, memory.open() as dataset:
            self.manifest.footprints[key] = tuple(transform_bounds(dataset.crs, "EPSG:4326", *dataset.bounds))

    def seed_hostile(self) -> List[str]:
        """Upload keys that would escape a download folder if joined to it naively, and one normal tile.

        moto stores and lists every one as written (it folds no ``..``, backslash or ``//``). A listing of
        ``HOSTILE_PREFIX`` with ``delimiter=/`` shows the backslash key, the ``..`` key and the normal tile as
        objects and the others as common prefixes (``PS-RGB/../``, ``PS-RGB//``, ``..._img8/``). requests folds
        literal ``..`` segments in a URL, so fetch these with ``url()`` (which percent-encodes them).
        """
        normal = spacenet_key("SN2_buildings", "train", "AOI_3_Paris", "PS-RGB", "img7")
        keys = [
            HOSTILE_PREFIX + "../../../../escaped.tif",
            HOSTILE_PREFIX + "SN2_buildings_train_AOI_3_Paris_PS-RGB_img8/../../../../../../escaped.tif",
            HOSTILE_PREFIX + "..\\..\\escaped.tif",  # one segment for S3, so a delimiter listing shows it as a file
            HOSTILE_PREFIX + "/etc/passwd.tif",  # the prefix's own slash makes it "...PS-RGB//etc/passwd.tif"
            HOSTILE_PREFIX + "..",  # a "file" named .. right in the product folder
            normal,
        ]
        # Every one is a valid GeoTIFF, so only the key can tell a client to refuse it.
        data, _ = _filler_tile(np.zeros((3, FILLER_PIXELS, FILLER_PIXELS), np.uint8), (2.30, 48.85, 2.302, 48.8516),
                               "img7", ifd_at_end=False)
        self.put_many({key: data for key in keys})
        self.manifest.footprints[normal] = (2.30, 48.85, 2.302, 48.8516)
        self.manifest.ifd_offsets[normal] = first_ifd_offset(data)
        self.manifest.hostile.extend(keys[:-1])
        return keys


def _content_type(key: str) -> str:
    # Never a form type: werkzeug would parse the body as a form and moto would store an empty object.
    if key.endswith(".geojson"):
        return "application/geo+json"
    return "image/tiff" if key.endswith(".tif") else "application/octet-stream"


# --- filler tiles -------------------------------------------------------------------------------------------------


def filler_tile_ids(count: int, seed: int = 2) -> List[str]:
    """Increasing ids with gaps, like the real bucket (img3, img5, img9, ...)."""
    rng = random.Random(seed)
    ids, number = [], 0
    for _ in range(count):
        number += rng.randint(1, 4)
        ids.append(f"img{number}")
    return ids


def filler_bounds(index: int) -> Bounds:
    row, col = divmod(index, FILLER_COLUMNS)
    west = FILLER_ORIGIN[0] + col * FILLER_CELL[0]
    north = FILLER_ORIGIN[1] - row * FILLER_CELL[1]
    return (west, north - FILLER_SIZE[1], west + FILLER_SIZE[0], north)


def make_filler(count: int, fixtures: Path = FIXTURES) -> Tuple[Dict[str, Tuple[bytes, Bounds]], Dict[str, bytes]]:
    """``count`` filler tiles: tile id -> (GeoTIFF bytes, bounds), and tile id -> GeoJSON label bytes.

    Pixels are crops of the real Vegas RGB tile; even tiles have the IFD at the start, odd ones at the end.
    """
    tiles, labels = _make_filler(count, Path(fixtures))
    return dict(tiles), dict(labels)


@functools.lru_cache(maxsize=2)
def _make_filler(count: int, fixtures: Path):
    # Cached: a second server in the same test session seeds without rebuilding 500 GeoTIFFs.
    with rasterio.open(fixtures / "sn3_vegas_rgb_roads" / "RGB-PanSharpen_AOI_2_Vegas_img0.tif") as source:
        rgb = source.read([1, 2, 3])
    usable_rows = rgb.shape[1] - 140  # a caption strip and a logo are burnt into the bottom rows
    tiles, labels = {}, {}
    for index, tile_id in enumerate(filler_tile_ids(count)):
        x = (index * 61) % (rgb.shape[2] - FILLER_PIXELS)
        y = (index * 97) % (usable_rows - FILLER_PIXELS)
        pixels = rgb[:, y:y + FILLER_PIXELS, x:x + FILLER_PIXELS]
        bounds = filler_bounds(index)
        tiles[tile_id] = _filler_tile(pixels, bounds, tile_id, ifd_at_end=index % 2 == 1)
        labels[tile_id] = _filler_label(bounds, random.Random(index), empty=index % 9 == 4)
    return tiles, labels


def _filler_tile(pixels: np.ndarray, bounds: Bounds, tile_id: str, ifd_at_end: bool) -> Tuple[bytes, Bounds]:
    profile = {
        "driver": "GTiff", "width": pixels.shape[2], "height": pixels.shape[1], "count": pixels.shape[0],
        "dtype": "uint8", "crs": "EPSG:4326", "compress": "deflate",
        # Affine built directly: rasterio's from_bounds warns about affine 3's deprecated "*" operator.
        "transform": Affine((bounds[2] - bounds[0]) / pixels.shape[2], 0.0, bounds[0],
                            0.0, -(bounds[3] - bounds[1]) / pixels.shape[1], bounds[3]),
    }
    with MemoryFile() as memory:
        # A small file written in one go, its tags set before its pixels, keeps its directory right after the
        # header (GDAL 3.10 moves it to the end when tags come after the pixels; 3.6 did not) ...
        with memory.open(**profile) as dataset:
            if not ifd_at_end:
                dataset.update_tags(SPACENET_TILE=tile_id)
            dataset.write(pixels)
        if ifd_at_end:
            # ... while growing the directory in update mode makes GDAL append it at the end of the file.
            with rasterio.open(memory.name, "r+") as dataset:
                dataset.update_tags(SPACENET_TILE=tile_id)
        data = memory.read()
    assert (first_ifd_offset(data) == 8) != ifd_at_end, "GDAL placed the TIFF directory elsewhere than planned"
    return data, bounds


def _filler_label(bounds: Bounds, rng: random.Random, empty: bool) -> bytes:
    """A SpaceNet-style label: 3-D (z = 0) building polygons well inside the tile, or none."""
    west, south, east, north = bounds
    features = []
    for number in range(0 if empty else rng.randint(1, 2)):
        width = (east - west) * rng.uniform(0.05, 0.15)
        height = (north - south) * rng.uniform(0.05, 0.15)
        x = rng.uniform(west + 0.2 * (east - west), east - 0.2 * (east - west) - width)
        y = rng.uniform(south + 0.2 * (north - south), north - 0.2 * (north - south) - height)
        ring = [[x, y, 0.0], [x + width, y, 0.0], [x + width, y + height, 0.0], [x, y + height, 0.0], [x, y, 0.0]]
        features.append({
            "type": "Feature",
            "properties": {"building_id": number + 1},
            "geometry": {"type": "Polygon", "coordinates": [ring]},
        })
    collection = {
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:OGC:1.3:CRS84"}},
        "features": features,
    }
    return json.dumps(collection).encode()


# --- for tests/conftest.py ----------------------------------------------------------------------------------------


def spacenet_bucket_server(filler_tiles: int = 520, hostile: bool = True) -> Iterator[SpaceNetBucketServer]:
    """A seeded server for the length of a pytest fixture; skips the test when the shared fixtures are absent.

    ``pytest.fixture(scope="session")(spacenet_bucket_server)`` makes it a fixture as it is.
    """
    if not FIXTURES.is_dir():
        import pytest  # only here: the rest of the module works outside pytest

        pytest.skip(f"the shared fixtures are not beside the checkout ({FIXTURES})")
    with SpaceNetBucketServer() as server:
        server.seed_spacenet(filler_tiles)
        if hostile:
            server.seed_hostile()
        yield server


__all__ = [
    "BUCKET", "FIXTURES", "Bounds", "KeyParts", "Manifest", "SpaceNetBucketServer", "encode_key", "first_ifd_offset",
    "make_filler", "parse_key", "spacenet_bucket_server", "spacenet_key",
]
