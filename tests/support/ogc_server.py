"""Loopback WMTS and WMS servers for web-layer tests, as a mapping server answers them.

- WMTS 1.0.0 over a z/x/y tile folder (the pyramid tests/support/web_tiles.py builds): the GetCapabilities
  document (REST ``/wmts/1.0.0/WMTSCapabilities.xml`` or KVP ``/wmts?SERVICE=WMTS&REQUEST=GetCapabilities``) of one
  layer on the GoogleMapsCompatible tile matrix set, limited to the folder's zooms, and GetTile in KVP
  (``/wmts?...&REQUEST=GetTile&TILEMATRIX=z&TILEROW=y&TILECOL=x``) or REST
  (``/wmts/1.0.0/LAYER/STYLE/MATRIXSET/z/y/x.png``); a tile that is not there is 404.
- WMS 1.3.0 over a GeoTIFF: GetCapabilities (``/wms?SERVICE=WMS&REQUEST=GetCapabilities``) of one layer, and
  GetMap for any BBOX/WIDTH/HEIGHT in EPSG:3857 or EPSG:4326, rendered from the GeoTIFF by GDAL (bilinear
  resampling onto the asked grid; outside the GeoTIFF transparent), as PNG.

The capabilities name the URLs of the host the client asked (its Host header), so a proxy in front of the server
(tests/support/fault_proxy.py) stays on the path. Every request is recorded in ``requests``.

Import it with ``tests/support`` on ``sys.path`` (``import ogc_server``).
"""

from __future__ import annotations

import contextlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator, NamedTuple
from urllib.parse import parse_qsl, urlsplit
from xml.sax.saxutils import escape

WEB_MERCATOR_HALF = 20037508.342789244
# OGC's scale denominator of zoom 0 of GoogleMapsCompatible (0.28 mm pixels): 156543.03392804097 m / 0.00028
SCALE_ZOOM_0 = 559082264.0287178
LAYER = "spacenet"
MATRIX_SET = "GoogleMapsCompatible"
ATTRIBUTION = "Imagery: SpaceNet (CC BY-SA 4.0), served by the test server"


class Request(NamedTuple):
    method: str
    path: str  # path and query as the client sent them
    status: int
    kind: str  # "capabilities", "tile", "map" or "other"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 - http.server API
        server: OgcServer = self.server.owner
        parts = urlsplit(self.path)
        query = {key.upper(): value for key, value in parse_qsl(parts.query, keep_blank_values=True)}
        base = f"http://{self.headers.get('Host') or server.host}"
        try:
            status, content_type, body, kind = server.answer(parts.path, query, base)
        except Exception as error:  # noqa: BLE001 - a bug in the test server shows as a 500 with its words
            status, content_type, body, kind = 500, "text/plain", repr(error).encode(), "other"
        with server.lock:
            server.requests.append(Request("GET", self.path, status, kind))
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # quiet: tests read server.requests
        pass


class OgcServer:
    """One loopback HTTP server that answers WMTS (from ``xyz_folder``) and WMS (from ``geotiff``) requests."""

    def __init__(self, xyz_folder: Path | None = None, geotiff: Path | None = None, *, rest: bool = False,
                 attribution: str = ATTRIBUTION):
        self.xyz_folder = Path(xyz_folder).resolve() if xyz_folder else None
        self.geotiff = Path(geotiff) if geotiff else None
        self.rest = rest  # the WMTS capabilities offer REST tile URLs (ResourceURL), else KVP GetTile only
        self.attribution = attribution
        self.requests: list[Request] = []
        self.lock = threading.Lock()
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._http.owner = self
        self._http.daemon_threads = True

    @property
    def host(self) -> str:
        host, port = self._http.server_address[:2]
        return f"{host}:{port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}/"

    def wmts_capabilities_url(self) -> str:
        return f"{self.url}wmts/1.0.0/WMTSCapabilities.xml" if self.rest else f"{self.url}wmts"

    def count(self, kind: str | None = None, status: int | None = None) -> int:
        with self.lock:
            return sum(1 for r in self.requests if (kind is None or r.kind == kind)
                       and (status is None or r.status == status))

    # --- answers ------------------------------------------------------------------------------------------------

    def answer(self, path: str, query: dict, base: str) -> tuple:
        """(status, content type, body, kind) of a GET."""
        request = query.get("REQUEST", "").lower()
        if path == "/wmts/1.0.0/WMTSCapabilities.xml" or (path == "/wmts" and request == "getcapabilities"):
            return 200, "application/xml", self.wmts_capabilities(base).encode(), "capabilities"
        if path == "/wmts" and request == "gettile":
            return self._tile(query.get("TILEMATRIX", ""), query.get("TILEROW", ""), query.get("TILECOL", ""))
        if path.startswith("/wmts/1.0.0/"):  # REST: /wmts/1.0.0/LAYER/STYLE/MATRIXSET/z/y/x.png
            z, y, x = (path.rsplit("/", 3)[1:] + ["", "", ""])[:3]
            return self._tile(z, y, x.rsplit(".", 1)[0])
        if path == "/wms" and request == "getcapabilities":
            return 200, "text/xml", self.wms_capabilities(base).encode(), "capabilities"
        if path == "/wms" and request == "getmap":
            return self._map(query)
        return 400, "text/plain", b"unknown request", "other"

    def _tile(self, z: str, y: str, x: str) -> tuple:
        if not (z.isdigit() and y.isdigit() and x.isdigit()) or self.xyz_folder is None:
            return 400, "text/plain", b"bad tile address", "tile"
        file = self.xyz_folder / z / x / f"{y}.png"
        if not file.is_file():
            return 404, "text/plain", b"no such tile", "tile"
        return 200, "image/png", file.read_bytes(), "tile"

    def zooms(self) -> list:
        return sorted(int(p.name) for p in self.xyz_folder.iterdir() if p.name.isdigit())

    def _bounds_3857(self) -> tuple:
        """(left, bottom, right, top) of the imagery in EPSG:3857: the GeoTIFF's, else the tile folder's finest zoom."""
        if self.geotiff is not None:
            import rasterio
            from rasterio.warp import transform_bounds

            with rasterio.open(self.geotiff) as src:
                return transform_bounds(src.crs, "EPSG:3857", *src.bounds)
        zoom = self.zooms()[-1]
        cols = sorted(int(p.name) for p in (self.xyz_folder / str(zoom)).iterdir())
        rows = sorted(int(p.stem) for col in cols for p in (self.xyz_folder / str(zoom) / str(col)).glob("*.png"))
        size = 2 * WEB_MERCATOR_HALF / 2**zoom
        return (-WEB_MERCATOR_HALF + cols[0] * size, WEB_MERCATOR_HALF - (rows[-1] + 1) * size,
                -WEB_MERCATOR_HALF + (cols[-1] + 1) * size, WEB_MERCATOR_HALF - rows[0] * size)

    def _bounds_4326(self) -> tuple:
        from rasterio.warp import transform_bounds

        return transform_bounds("EPSG:3857", "EPSG:4326", *self._bounds_3857())

    def wmts_capabilities(self, base: str) -> str:
        zooms = self.zooms()
        west, south, east, north = self._bounds_4326()
        left, bottom, right, top = self._bounds_3857()
        matrices, limits = [], []
        for z in range(zooms[-1] + 1):
            count = 2**z
            matrices.append(
                f"<TileMatrix><ows:Identifier>{z}</ows:Identifier><ScaleDenominator>{SCALE_ZOOM_0 / count!r}"
                f"</ScaleDenominator><TopLeftCorner>{-WEB_MERCATOR_HALF!r} {WEB_MERCATOR_HALF!r}</TopLeftCorner>"
                "<TileWidth>256</TileWidth><TileHeight>256</TileHeight>"
                f"<MatrixWidth>{count}</MatrixWidth><MatrixHeight>{count}</MatrixHeight></TileMatrix>")
            if z in zooms:
                size = 2 * WEB_MERCATOR_HALF / count
                limits.append(
                    f"<TileMatrixLimits><TileMatrix>{z}</TileMatrix>"
                    f"<MinTileRow>{int((WEB_MERCATOR_HALF - top) // size)}</MinTileRow>"
                    f"<MaxTileRow>{int((WEB_MERCATOR_HALF - bottom) // size)}</MaxTileRow>"
                    f"<MinTileCol>{int((left + WEB_MERCATOR_HALF) // size)}</MinTileCol>"
                    f"<MaxTileCol>{int((right + WEB_MERCATOR_HALF) // size)}</MaxTileCol></TileMatrixLimits>")
        resource = (f'<ResourceURL format="image/png" resourceType="tile" template="{escape(base)}/wmts/1.0.0/'
                    f'{LAYER}/default/{{TileMatrixSet}}/{{TileMatrix}}/{{TileRow}}/{{TileCol}}.png"/>'
                    if self.rest else "")
        kvp = (f'<ows:Operation name="{{name}}"><ows:DCP><ows:HTTP><ows:Get xlink:href="{escape(base)}/wmts?">'
               "<ows:Constraint name=\"GetEncoding\"><ows:AllowedValues><ows:Value>KVP</ows:Value>"
               "</ows:AllowedValues></ows:Constraint></ows:Get></ows:HTTP></ows:DCP></ows:Operation>")
        return (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<Capabilities xmlns="http://www.opengis.net/wmts/1.0" xmlns:ows="http://www.opengis.net/ows/1.1" '
            'xmlns:xlink="http://www.w3.org/1999/xlink" version="1.0.0">'
            "<ows:ServiceIdentification><ows:Title>SpaceNet test WMTS</ows:Title>"
            "<ows:ServiceType>OGC WMTS</ows:ServiceType><ows:ServiceTypeVersion>1.0.0</ows:ServiceTypeVersion>"
            f"<ows:AccessConstraints>{escape(self.attribution)}</ows:AccessConstraints>"
            "</ows:ServiceIdentification>"
            "<ows:ServiceProvider><ows:ProviderName>SpaceNet Toolkit tests</ows:ProviderName></ows:ServiceProvider>"
            "<ows:OperationsMetadata>" + kvp.format(name="GetCapabilities") + kvp.format(name="GetTile")
            + "</ows:OperationsMetadata><Contents>"
            f"<Layer><ows:Title>SpaceNet imagery</ows:Title><ows:Identifier>{LAYER}</ows:Identifier>"
            f"<ows:WGS84BoundingBox><ows:LowerCorner>{west!r} {south!r}</ows:LowerCorner>"
            f"<ows:UpperCorner>{east!r} {north!r}</ows:UpperCorner></ows:WGS84BoundingBox>"
            '<ows:BoundingBox crs="urn:ogc:def:crs:EPSG::3857">'
            f"<ows:LowerCorner>{left!r} {bottom!r}</ows:LowerCorner>"
            f"<ows:UpperCorner>{right!r} {top!r}</ows:UpperCorner></ows:BoundingBox>"
            '<Style isDefault="true"><ows:Identifier>default</ows:Identifier></Style>'
            f"<Format>image/png</Format><TileMatrixSetLink><TileMatrixSet>{MATRIX_SET}</TileMatrixSet>"
            f"<TileMatrixSetLimits>{''.join(limits)}</TileMatrixSetLimits></TileMatrixSetLink>{resource}</Layer>"
            f"<TileMatrixSet><ows:Identifier>{MATRIX_SET}</ows:Identifier>"
            "<ows:SupportedCRS>urn:ogc:def:crs:EPSG::3857</ows:SupportedCRS>"
            f"<WellKnownScaleSet>urn:ogc:def:wkss:OGC:1.0:GoogleMapsCompatible</WellKnownScaleSet>"
            f"{''.join(matrices)}</TileMatrixSet></Contents></Capabilities>")

    def wms_capabilities(self, base: str) -> str:
        west, south, east, north = self._bounds_4326()
        left, bottom, right, top = self._bounds_3857()
        online = f'<OnlineResource xmlns:xlink="http://www.w3.org/1999/xlink" xlink:href="{escape(base)}/wms?"/>'
        get = f"<DCPType><HTTP><Get>{online}</Get></HTTP></DCPType>"
        return (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<WMS_Capabilities version="1.3.0" xmlns="http://www.opengis.net/wms" '
            'xmlns:xlink="http://www.w3.org/1999/xlink">'
            f"<Service><Name>WMS</Name><Title>SpaceNet test WMS</Title>{online}</Service>"
            "<Capability><Request>"
            f"<GetCapabilities><Format>text/xml</Format>{get}</GetCapabilities>"
            f"<GetMap><Format>image/png</Format>{get}</GetMap>"
            "</Request><Exception><Format>XML</Format></Exception>"
            "<Layer><Title>SpaceNet test WMS</Title><CRS>EPSG:3857</CRS><CRS>EPSG:4326</CRS>"
            f"<Layer queryable=\"0\"><Name>{LAYER}</Name><Title>SpaceNet imagery</Title>"
            "<CRS>EPSG:3857</CRS><CRS>EPSG:4326</CRS>"
            f"<EX_GeographicBoundingBox><westBoundLongitude>{west!r}</westBoundLongitude>"
            f"<eastBoundLongitude>{east!r}</eastBoundLongitude><southBoundLatitude>{south!r}</southBoundLatitude>"
            f"<northBoundLatitude>{north!r}</northBoundLatitude></EX_GeographicBoundingBox>"
            f'<BoundingBox CRS="EPSG:3857" minx="{left!r}" miny="{bottom!r}" maxx="{right!r}" maxy="{top!r}"/>'
            f'<BoundingBox CRS="EPSG:4326" minx="{south!r}" miny="{west!r}" maxx="{north!r}" maxy="{east!r}"/>'
            f"<Attribution><Title>{escape(self.attribution)}</Title></Attribution>"
            "</Layer></Layer></Capability></WMS_Capabilities>")

    def _map(self, query: dict) -> tuple:
        """A GetMap: the GeoTIFF warped (bilinear, its alpha band honoured, as GDAL-based map servers do) onto the
        asked bbox and size, as an RGBA PNG."""
        import rasterio
        from affine import Affine
        from rasterio.enums import Resampling
        from rasterio.io import MemoryFile
        from rasterio.vrt import WarpedVRT

        crs = query.get("CRS") or query.get("SRS") or ""
        try:
            width, height = int(query["WIDTH"]), int(query["HEIGHT"])
            a, b, c, d = (float(v) for v in query["BBOX"].split(","))
        except (KeyError, ValueError):
            return 400, "text/xml", _service_exception("BBOX, WIDTH and HEIGHT are needed"), "map"
        if crs.upper() not in ("EPSG:3857", "EPSG:4326") or query.get("LAYERS") != LAYER:
            return 400, "text/xml", _service_exception(f"unknown layer or CRS {crs}"), "map"
        # WMS 1.3.0 takes EPSG:4326 in latitude, longitude order
        left, bottom, right, top = (b, a, d, c) if crs.upper() == "EPSG:4326" else (a, b, c, d)
        transform = Affine((right - left) / width, 0, left, 0, (bottom - top) / height, top)
        transform = Affine((right - left) / width, 0, left, 0, (bottom - top) / height, top)
        with rasterio.open(self.geotiff) as src, WarpedVRT(src, crs=crs, transform=transform, width=width,
                                                           height=height, resampling=Resampling.bilinear) as vrt:
            out = vrt.read()
        if out.shape[0] != 4:
            raise ValueError(f"the GeoTIFF should be RGBA: it warps to {out.shape[0]} bands")
        with MemoryFile() as memory:
            # the georeferencing only keeps rasterio from warning (per thread, unlike a warnings filter): the PNG
            # itself carries none, the client knows what it asked for
            with memory.open(driver="PNG", width=width, height=height, count=4, dtype="uint8", crs=crs,
                             transform=transform) as png:
                png.write(out)
            return 200, "image/png", memory.read(), "map"


def _service_exception(text: str) -> bytes:
    return ('<?xml version="1.0" encoding="UTF-8"?><ServiceExceptionReport version="1.3.0" '
            f'xmlns="http://www.opengis.net/ogc"><ServiceException>{escape(text)}</ServiceException>'
            "</ServiceExceptionReport>").encode()


def wmts_uri(server: OgcServer) -> str:
    """The QGIS wms-provider URI of the server's WMTS layer, as the Data Source Manager writes it."""
    return (f"contextualWMSLegend=0&crs=EPSG:3857&dpiMode=7&format=image/png&layers={LAYER}&styles=default"
            f"&tileMatrixSet={MATRIX_SET}&url={server.wmts_capabilities_url()}")


def wms_uri(server: OgcServer) -> str:
    """The QGIS wms-provider URI of the server's WMS layer."""
    return f"contextualWMSLegend=0&crs=EPSG:3857&dpiMode=7&format=image/png&layers={LAYER}&styles=&url={server.url}wms"


@contextlib.contextmanager
def serve(xyz_folder: Path | None = None, geotiff: Path | None = None, **options) -> Iterator[OgcServer]:
    server = OgcServer(xyz_folder, geotiff, **options)
    thread = threading.Thread(target=server._http.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server._http.shutdown()
        server._http.server_close()
        thread.join()
