"""A QGIS raster layer as a GDAL dataset name the engine and Dask workers open themselves: a file as it is; a
cloud-optimised GeoTIFF over HTTP or in the SpaceNet bucket as a ``/vsicurl?`` name that carries its own retries;
an XYZ/TMS, WMTS or WMS layer as a GDAL_WMS / GDAL_WMTS XML description that carries its own disk cache, bounded
connections, timeout and user agent. Everything a worker needs is in the name, so no GDAL setting has to travel.

Also what a good client checks before it asks someone else's server for thousands of tiles: how many tiles the
extent needs at the zoom the engine will read (counted, no request), and whether the service answers at all
(a few probe tiles: refused, down, timing out or empty everywhere is said in one sentence before the run)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit
from xml.sax.saxutils import escape, unescape

from qgis.core import QgsApplication, QgsProviderRegistry, QgsRasterLayer, QgsSettings

from ..core.fetch.catalog import BUCKET_URL
from ..core.public_url import public_url
from .layers import NotARasterFileError, raster_file, source_path

WEB_MERCATOR_HALF = 20037508.342789244
TILE_SIZE = 256
MAX_CONNECTIONS = 4  # parallel requests to one service: a polite browser's share
TIMEOUT_SETTING = "spacenet/web_timeout_s"
TIMEOUT_S = 30  # seconds a tile request may take (default of the setting)
HTTP_RETRIES = 3  # /vsicurl/ retries a 429/5xx this many times, RETRY_DELAY_S apart (GDAL doubles it each time)
RETRY_DELAY_S = 1
CACHE_MAX_BYTES = 1 << 30  # the tile cache's bound on disk (GDAL removes the oldest tiles beyond it)
CACHE_EXPIRES_S = 7 * 24 * 3600
# Spelled once: the tile count above which a run warns (settings key and default).
TILE_LIMIT_SETTING = "spacenet/web_tile_limit"
TILE_LIMIT_DEFAULT = 5000
PROBE_TILES = 5  # tiles the probe asks for before a run: the centre and four spread over the extent
SPACENET_BUCKET = "spacenet-dataset"
USER_AGENT_SETTING = "spacenet/web_user_agent"


@dataclass(frozen=True)
class RasterSource:
    """What the engine opens, and what the outputs record about where it came from."""

    name: str  # the GDAL dataset name: a path, /vsicurl?...url=..., or a GDAL_WMS / GDAL_WMTS XML document
    kind: str  # "file", "cog", "xyz", "wmts" or "wms"
    url: str = ""  # the file's or service's URL ("" for a local file)
    attribution: str = ""
    layer_name: str = ""
    zoom_range: tuple = ()  # (zmin, zmax) of an XYZ layer
    strict_name: str = ""  # tile services: the name without missing tiles read as blank, for the probe
    config: dict = field(default_factory=dict)  # GDAL settings the name could not carry (a private /vsis3/ bucket)

    @property
    def is_service(self) -> bool:
        return self.kind in ("xyz", "wmts", "wms")

    @property
    def shown_url(self) -> str:
        """The URL as logs, messages and outputs show it: keys, tokens and passwords in it masked."""
        return public_url(self.url)

    def metadata(self) -> dict:
        """What the outputs' metadata records of the source (nothing for a local file: its path says it)."""
        if self.kind == "file":
            return {}
        values = {"source": self.shown_url, "source_kind": self.kind}
        if self.attribution:
            values["attribution"] = self.attribution
        return values


def raster_source(layer) -> RasterSource:
    """The GDAL dataset name behind ``layer`` (and what it came from); NotARasterFileError, saying why, for what
    the engine cannot read (a memory or virtual raster, a layer of another provider)."""
    provider = layer.providerType()
    if provider == "gdal":
        return _gdal_source(layer)
    if provider == "wms":
        parts = QgsProviderRegistry.instance().decodeUri("wms", layer.source())
        attribution = _attribution(layer) or _uri_value(layer.source(), "attribution")
        if parts.get("type") == "xyz":
            referer = parts.get("http-header:referer") or parts.get("referer", "")
            return xyz_source(parts.get("url", ""), int(parts.get("zmin") or 0), int(parts.get("zmax") or 18),
                              attribution, layer.name(), referer=referer)
        if parts.get("tileMatrixSet"):
            return wmts_source(parts.get("url", ""), str(parts.get("layers", "")), parts["tileMatrixSet"],
                               str(parts.get("styles", "")), attribution, layer.name())
        if parts.get("url"):
            return wms_source(parts["url"], _one(parts.get("layers")), _one(parts.get("styles")),
                              str(parts.get("crs") or layer.crs().authid()), str(parts.get("format") or "image/png"),
                              layer.extent(), layer.crs().isGeographic(), attribution, layer.name())
    raise NotARasterFileError(QgsApplication.translate(
        "SpaceNet", "'{name}' cannot be read by the extraction (provider {provider}): it reads GDAL rasters, "
        "XYZ/WMTS/WMS layers and cloud-optimised GeoTIFFs over HTTP or S3. Save it as a GeoTIFF first "
        "(right-click > Export > Save As…).").format(name=layer.name(), provider=provider))


def dataset_name(layer) -> str:
    """What reads a probability raster (calibration, the thresholds preview): a file or a remote GeoTIFF, not a
    tile service (its tiles are rendered images, not probabilities); NotARasterFileError says why."""
    if layer.providerType() != "gdal":
        return raster_file(layer)  # its refusal says what to do
    return raster_source(layer).name


class ServiceError(ValueError):
    """The tile service refuses, is down or times out for every tile asked: said in one sentence."""


def preflight(source: RasterSource, extent, gsd_m: float | None, limit: int | None = None) -> list:
    """Before a run over a tile service: the warnings a user must see (more tiles than ``limit``, counted from the
    extent and the zoom the engine will read, without a request), after asking for a few tiles of the extent
    (PROBE_TILES): ServiceError when none arrives because the service refuses (401/403), has none (404), is down
    or does not answer within the timeout. The tiles that arrive stay in the cache for the run."""
    import rasterio
    from rasterio.windows import Window

    from ..core.extract import raster

    info = raster.describe(source.name)
    grid = raster.model_grid(info, extent, gsd_m)
    level, _, tiles = raster.service_tiles(info, grid)
    zoom = (source.zoom_range[1] - level) if source.zoom_range else None
    where = f"zoom {zoom}" if zoom is not None else f"level {level}"
    warnings = []
    limit = tile_limit() if limit is None else limit
    if len(tiles) > limit:
        warnings.append(QgsApplication.translate(
            "SpaceNet", "The extent needs {count} tiles at {where} from {url}, more than the limit of {limit} "
            "(setting {setting}): the run asks the service for all of them, {connections} at a time. Cancel and "
            "choose a smaller extent unless the service allows it.").format(
            count=len(tiles), where=where, url=source.shown_url, limit=limit, setting=TILE_LIMIT_SETTING,
            connections=MAX_CONNECTIONS))
    probes = _spread(tiles, PROBE_TILES)
    answers = []
    with rasterio.open(source.strict_name or source.name,
                       **({"OVERVIEW_LEVEL": str(level - 1)} if level else {})) as src:
        for col, row in probes:
            window = Window(col * TILE_SIZE, row * TILE_SIZE, TILE_SIZE, TILE_SIZE)
            try:
                raster.read_with_retries(info, lambda w=window: src.read(1, window=w))
                return warnings
            except raster.RasterError as error:
                detail = raster.gdal_detail(error.__cause__) if error.__cause__ is not None else str(error)
            answers.append(_answer(detail))
            kind, value = answers[-1]
            if kind in ("down", "timeout") or (kind == "http" and (value == 429 or value >= 500)):
                break  # retried already (raster.read_with_retries): the service is failing, not one tile
    raise ServiceError(_refusal(source, where, answers, len(probes)))


def for_run(source: RasterSource, extent, gsd_m: float | None, scheduler: str = "") -> RasterSource:
    """``source`` as a run over ``extent`` (in the layer's CRS, or None) at the model's ``gsd_m`` reads it:

    - a WMS layer is described over the extent at the model's resolution, so that each GetMap asks the server for
      the model's own pixels (a WMS renders any resolution; a pyramid of fixed levels would be resampled twice);
    - a WMTS or WMS layer whose layer gives no attribution takes the one its capabilities state (WMS: the layer's
      Attribution title; WMTS: the service's access constraints, else its provider's name);
    - where the blocks run on a Dask scheduler the user names (workers on other machines), the tile cache is left
      out of the description: its folder is a path of this machine, which a worker may not have or may not write.
      A local cluster's workers share this machine's cache folder, as this process does."""
    if not source.is_service:
        return source
    if source.kind == "wms" and gsd_m:
        source = _wms_at_resolution(source, extent, gsd_m)
    if not source.attribution and source.kind in ("wmts", "wms"):
        source = replace(source, attribution=capabilities_attribution(source))
    if runs_elsewhere(scheduler):
        source = replace(source, name=_without_cache(source.name), strict_name=_without_cache(source.strict_name))
    return source


def runs_elsewhere(scheduler: str) -> bool:
    """Whether ``scheduler`` (the SCHEDULER parameter) names a Dask scheduler, whose workers may be on other
    machines: not empty (this process or a local cluster), 'local' or 'in-process'."""
    from ..core.extract import cluster

    choice = (scheduler or "").strip().lower()
    return bool(choice) and choice != cluster.LOCAL and choice not in cluster.IN_PROCESS


def _without_cache(name: str) -> str:
    return re.sub(r"<Cache>.*?</Cache>", "", name, flags=re.DOTALL)


def _wms_at_resolution(source: RasterSource, extent, gsd_m: float) -> RasterSource:
    """The WMS description over ``extent`` (clipped to the layer's) with pixels of the model grid's size."""
    from ..core.extract import raster

    info = raster.describe(source.name)  # a GDAL_WMS description opens without a request
    grid = raster.model_grid(info, extent, gsd_m)
    left, bottom, right, top = raster.corner_bounds(grid.transform, grid.width, grid.height)
    width, height = grid.width, grid.height

    def window(name: str) -> str:
        data_window = (f"<DataWindow><UpperLeftX>{left!r}</UpperLeftX><UpperLeftY>{top!r}</UpperLeftY>"
                       f"<LowerRightX>{right!r}</LowerRightX><LowerRightY>{bottom!r}</LowerRightY>"
                       f"<SizeX>{width}</SizeX><SizeY>{height}</SizeY></DataWindow>")
        return re.sub(r"<DataWindow>.*?</DataWindow>", data_window, name, flags=re.DOTALL)

    return replace(source, name=window(source.name), strict_name=window(source.strict_name))


def capabilities_attribution(source: RasterSource) -> str:
    """The attribution a WMTS/WMS service's capabilities state for the layer; "" when they state none or cannot
    be read (the run's probes say what is wrong with the service)."""
    import urllib.request
    import xml.etree.ElementTree as ElementTree

    request = urllib.request.Request(capabilities_url(source.url, source.kind.upper()),
                                     headers={"User-Agent": user_agent()})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s()) as answer:  # noqa: S310 - the layer's own URL
            root = ElementTree.fromstring(answer.read(4 * 2**20))
    except (OSError, ValueError, ElementTree.ParseError):
        return ""
    if source.kind == "wms":
        return _wms_attribution(root, set(_layer_names(source.name)))
    texts = [_text(root, "ServiceIdentification", "AccessConstraints"), _text(root, "ServiceProvider",
                                                                                "ProviderName")]
    return next((text for text in texts if text and text.lower() != "none"), "")


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _text(root, *path) -> str:
    """The text of the first element at ``path`` (local names, any namespace) below ``root``; "" if none."""
    nodes = [root]
    for name in path:
        nodes = [child for node in nodes for child in node if _local(child.tag) == name]
    return (nodes[0].text or "").strip() if nodes else ""


def _wms_attribution(root, names: set, inherited: str = "") -> str:
    """The Attribution title of the first WMS layer named in ``names`` (a layer inherits its parent's)."""
    for child in root:  # recursion, not root.iter(): a layer's attribution is inherited from its parents
        if _local(child.tag) not in ("Capability", "Layer"):
            continue
        own = _text(child, "Attribution", "Title") if _local(child.tag) == "Layer" else ""
        found = own or inherited
        if _local(child.tag) == "Layer" and _text(child, "Name") in names and found:
            return found
        deeper = _wms_attribution(child, names, found)
        if deeper:
            return deeper
    return ""


def _layer_names(name: str) -> list:
    match = re.search(r"<Layers>(.*?)</Layers>", name)
    return [unescape(part) for part in match.group(1).split(",")] if match else []


def _uri_value(uri: str, key: str) -> str:
    match = re.search(rf"(?:^|&){key}=([^&]*)", uri)
    return unquote(match.group(1)) if match else ""


def _spread(tiles: list, count: int) -> list:
    """The centre tile, then tiles spread evenly over the list (row by row), ``count`` at most."""
    if not tiles:
        return []
    picks = [tiles[len(tiles) // 2]] + [tiles[round(i * (len(tiles) - 1) / max(1, count - 2))]
                                       for i in range(count - 1)]
    return list(dict.fromkeys(picks))[:count]


def _answer(detail: str) -> tuple:
    from ..core.extract import raster

    status, _ = raster.service_failure(detail)
    if status is not None:
        return "http", status
    if re.search(r"could ?n.t connect|connection refused|failed to connect", detail, re.IGNORECASE):
        return "down", None
    if re.search(r"timed? ?out|timeout was reached", detail, re.IGNORECASE):
        return "timeout", None
    return "other", detail.strip().splitlines()[-1][:200] if detail.strip() else "no answer"


def _refusal(source: RasterSource, where: str, answers: list, asked: int) -> str:
    kinds = {kind for kind, _ in answers}
    statuses = sorted({value for kind, value in answers if kind == "http"})
    host = urlsplit(source.url).netloc.rpartition("@")[2] or source.shown_url
    if "down" in kinds:
        return (f"The tile service at {host} did not accept a connection: it is down, or the URL or port is wrong "
                f"({source.shown_url}). Nothing was run.")
    if "timeout" in kinds:
        return (f"The tile service at {host} did not answer within {timeout_s()} s (setting {TIMEOUT_SETTING}). "
                "Nothing was run.")
    if statuses and set(statuses) <= {401, 403}:
        return (f"The tile service at {host} refused every tile asked at {where} (HTTP "
                f"{', '.join(map(str, statuses))}): it needs a key or a login, or does not allow this use "
                f"({source.shown_url}). Nothing was run.")
    if statuses and (statuses[-1] == 429 or statuses[-1] >= 500):
        return (f"The tile service at {host} answered HTTP {statuses[-1]} to a tile of the extent at {where}, "
                f"{raster_retries()} times over with growing waits: it is overloaded or failing; try again later. "
                "Nothing was run.")
    if statuses == [404]:
        return (f"The tile service at {host} has none of the {asked} tiles asked at {where} (HTTP 404): check the "
                f"URL template and zoom range of the layer ({source.shown_url}), and that the extent is inside its "
                "coverage. Nothing was run.")
    said = ", ".join(f"HTTP {value}" if kind == "http" else str(value or kind) for kind, value in answers)
    return f"The tile service at {host} sent no tile of the extent at {where} ({said}). Nothing was run."


def raster_retries() -> int:
    from ..core.extract import raster

    return raster.SERVICE_RETRIES + 1


def uri_for_layer(value: str) -> str:
    """A raster parameter's text as QGIS should load it: ``s3://spacenet-dataset/key`` (which GDAL does not read)
    as the bucket's public HTTPS URL under /vsicurl/; a bare wms-provider URI (an XYZ layer's ``type=xyz&url=...``,
    a WMTS or WMS layer's ``crs=...&layers=...&url=https://...``, which qgis_process takes for a missing file) with
    the ``wms://`` prefix that names its provider; anything else unchanged."""
    if not isinstance(value, str):
        return value
    if value.startswith(f"s3://{SPACENET_BUCKET}/"):
        return "/vsicurl/" + bucket_url(value[len(f"s3://{SPACENET_BUCKET}/"):])
    if re.match(r"^(type=xyz&|([\w-]+=[^&]*&)*url=https?)", value) and "&" in value:  # key=value&...&url=http...
        return "wms://" + value
    return value


_GDAL_REMOTE = re.compile(r"^(/vsicurl[/?]|/vsis3/|/vsigs/|/vsiaz/|/vsiadls/|/vsioss/|/vsiswift/|https?://)")


def remote_layer(value, context):
    """A raster parameter's text naming a remote GDAL dataset (``/vsicurl/``, ``/vsis3/``, ... or a plain http(s)
    URL of an image), which qgis_process takes for a missing file, as the id of a layer loaded into the context's
    temporary store, where the run's parameterAsRasterLayer finds it (loaded once); anything else unchanged.
    RemoteRasterError when GDAL cannot open it, in GDAL's words."""
    if not isinstance(value, str) or not _GDAL_REMOTE.match(value.strip()):
        return value
    uri = value.strip()
    if uri.startswith(("http://", "https://")):
        uri = "/vsicurl/" + uri
    store = context.temporaryLayerStore()
    for layer in store.mapLayers().values():
        if isinstance(layer, QgsRasterLayer) and layer.source() == uri and layer.isValid():
            return layer.id()
    layer = QgsRasterLayer(uri, Path(urlsplit(uri.split("url=")[-1]).path).stem or "remote raster", "gdal")
    if not layer.isValid():
        raise RemoteRasterError(QgsApplication.translate(
            "SpaceNet", "GDAL cannot open '{uri}' ({why}): check the address, that the server answers, and that it "
            "serves byte ranges (a cloud-optimised GeoTIFF).").format(uri=value, why=layer.error().summary().strip()
                                                                       or "no answer"))
    store.addMapLayer(layer)
    return layer.id()


class RemoteRasterError(Exception):
    pass


def bucket_url(key: str) -> str:
    """The public HTTPS URL of a key in the SpaceNet bucket (core.fetch's endpoint; anonymous, no signing)."""
    return f"{BUCKET_URL}/{quote(key, safe='/~-._')}"


def _gdal_source(layer) -> RasterSource:
    path = source_path(layer)
    if Path(path).is_file():
        return RasterSource(path, "file", layer_name=layer.name())
    url = _remote_url(path)
    if url:
        return RasterSource(vsicurl_name(url), "cog", url, _attribution(layer), layer.name())
    if path.startswith("/vsis3/"):  # another bucket: read with the credentials QGIS itself opened it with
        return RasterSource(path, "cog", "s3://" + path[len("/vsis3/"):], _attribution(layer), layer.name())
    if path.startswith("/vsi") or path.startswith("<GDAL_WMS") or path.startswith("WMTS:"):
        return RasterSource(path, "cog" if path.startswith("/vsi") else "wms", path, _attribution(layer), layer.name())
    raise NotARasterFileError(QgsApplication.translate(
        "SpaceNet", "'{name}' has no file or URL GDAL can open ({source}): a memory or virtual raster cannot be "
        "read by the extraction; save it as a GeoTIFF first (right-click > Export > Save As…).").format(
        name=layer.name(), source=path or "no source"))


def _remote_url(path: str) -> str:
    """The HTTP(S) URL of a /vsicurl/ path, an http(s) path, or a /vsis3/ path in the SpaceNet bucket; "" else."""
    if path.startswith("/vsicurl/"):
        return path[len("/vsicurl/"):]
    if path.startswith("/vsicurl?"):
        match = re.search(r"(?:^|[?&])url=([^&]+)", path[len("/vsicurl"):])
        return unquote(match.group(1)) if match else ""
    if re.match(r"^https?://", path):
        return path
    for prefix in (f"/vsis3/{SPACENET_BUCKET}/", f"s3://{SPACENET_BUCKET}/"):
        if path.startswith(prefix):
            return bucket_url(path[len(prefix):])
    return ""


def vsicurl_name(url: str) -> str:
    """``url`` for GDAL's /vsicurl/, with its retries on 429/5xx and no directory listing in the name itself."""
    return (f"/vsicurl?max_retry={HTTP_RETRIES}&retry_delay={RETRY_DELAY_S}&list_dir=no"
            f"&useragent={quote(user_agent(), safe='')}&url={quote(url, safe='')}")


def user_agent() -> str:
    from ..core.fetch.s3 import USER_AGENT

    return str(QgsSettings().value(USER_AGENT_SETTING, "", type=str) or USER_AGENT)


def cache_folder() -> Path:
    """Where tiles are kept between runs: a folder of QGIS's own network cache."""
    base = QgsSettings().value("cache/directory", "", type=str) or str(Path(QgsApplication.qgisSettingsDirPath())
                                                                        / "cache")
    return Path(base) / "spacenet_tiles"


def timeout_s() -> int:
    return int(QgsSettings().value(TIMEOUT_SETTING, TIMEOUT_S, type=int) or TIMEOUT_S)


def tile_limit() -> int:
    return int(QgsSettings().value(TILE_LIMIT_SETTING, TILE_LIMIT_DEFAULT, type=int) or TILE_LIMIT_DEFAULT)


def _common_xml(zero_blocks: bool, bands: int = 4, referer: str = "") -> str:
    """The elements every tile-service description carries: block size, bands, cache, connections, timeout."""
    cache = (f"<Cache><Path>{escape(str(cache_folder()))}</Path><MaxSize>{CACHE_MAX_BYTES}</MaxSize>"
             f"<Expires>{CACHE_EXPIRES_S}</Expires></Cache>")
    zero = ("<ZeroBlockHttpCodes>204,404</ZeroBlockHttpCodes>" if zero_blocks
            else "<ZeroBlockHttpCodes>204</ZeroBlockHttpCodes>")
    return (f"<BandsCount>{bands}</BandsCount>{cache}<MaxConnections>{MAX_CONNECTIONS}</MaxConnections>"
            f"<Timeout>{timeout_s()}</Timeout>{zero}<UserAgent>{escape(user_agent())}</UserAgent>"
            + (f"<Referer>{escape(referer)}</Referer>" if referer else ""))


def xyz_source(url: str, zmin: int, zmax: int, attribution: str = "", layer_name: str = "",
               referer: str = "") -> RasterSource:
    """An XYZ (or TMS with ``{-y}``) tile template as a GDAL_WMS TMS description: EPSG:3857, the data window at
    ``zmax``, an overview for every coarser zoom (GDAL reads them for decimated reads: a whole-layer preview asks
    for the few tiles of zoom 0 or 1; below ``zmin`` the service's 404s read as blank)."""
    if "{q}" in url or "{quadkey}" in url:
        raise NotARasterFileError(QgsApplication.translate(
            "SpaceNet", "The tile URL {url} addresses tiles by quadkey, which the extraction does not read yet: "
            "use the service's {{z}}/{{x}}/{{y}} URL.").format(url=url))
    y_origin = "bottom" if "{-y}" in url else "top"
    template = url.replace("{-y}", "${y}").replace("{z}", "${z}").replace("{x}", "${x}").replace("{y}", "${y}")
    for server in ("{s}", "{switch:"):
        if server in template:  # subdomains: one is enough (the cache and connection bound are per service)
            template = re.sub(r"\{switch:([^,}]+)[^}]*\}", r"\1", template).replace("{s}", "a")

    def document(zero_blocks: bool) -> str:
        return ("<GDAL_WMS><Service name=\"TMS\">"
                f"<ServerUrl>{escape(template)}</ServerUrl></Service>"
                f"<DataWindow><UpperLeftX>{-WEB_MERCATOR_HALF}</UpperLeftX><UpperLeftY>{WEB_MERCATOR_HALF}</UpperLeftY>"
                f"<LowerRightX>{WEB_MERCATOR_HALF}</LowerRightX><LowerRightY>{-WEB_MERCATOR_HALF}</LowerRightY>"
                f"<TileLevel>{zmax}</TileLevel><TileCountX>1</TileCountX><TileCountY>1</TileCountY>"
                f"<YOrigin>{y_origin}</YOrigin></DataWindow>"
                f"<Projection>EPSG:3857</Projection><BlockSizeX>{TILE_SIZE}</BlockSizeX>"
                f"<BlockSizeY>{TILE_SIZE}</BlockSizeY><OverviewCount>{zmax}</OverviewCount>"
                f"{_common_xml(zero_blocks, referer=referer)}</GDAL_WMS>")

    return RasterSource(document(True), "xyz", url, attribution, layer_name, (zmin, zmax), document(False))


def wmts_source(url: str, layer: str, matrix_set: str, style: str = "", attribution: str = "",
                layer_name: str = "") -> RasterSource:
    """A WMTS layer as a GDAL_WMTS description (GDAL reads the capabilities and picks the matrix per zoom)."""
    capabilities = capabilities_url(url, "WMTS")

    def document(zero_blocks: bool) -> str:
        return (f"<GDAL_WMTS><GetCapabilitiesUrl>{escape(capabilities)}</GetCapabilitiesUrl>"
                f"<Layer>{escape(layer)}</Layer>"
                + (f"<Style>{escape(style)}</Style>" if style else "")
                + f"<TileMatrixSet>{escape(matrix_set)}</TileMatrixSet>{_common_xml(zero_blocks)}</GDAL_WMTS>")

    return RasterSource(document(True), "wmts", url, attribution, layer_name, strict_name=document(False))


def wms_source(url: str, layers: str, styles: str, crs: str, image_format: str, extent, geographic: bool,
               attribution: str = "", layer_name: str = "") -> RasterSource:
    """A WMS layer as a GDAL_WMS 1.3.0 GetMap description over the layer's extent, at a resolution finer than any
    model's (0.05 m, or its equivalent in degrees) with overviews: the engine reads the level nearest its grid."""
    finest = 5e-7 if geographic else 0.05
    span = max(extent.width(), extent.height())
    levels = max(0, math.ceil(math.log2(max(1.0, span / finest / 2**30))))  # GDAL's sizes are 32-bit integers
    size_x = max(1, int(extent.width() / (finest * 2**levels)))
    size_y = max(1, int(extent.height() / (finest * 2**levels)))
    base = url if url.endswith(("?", "&")) else url + ("&" if "?" in url else "?")

    def document(zero_blocks: bool) -> str:
        return ("<GDAL_WMS><Service name=\"WMS\"><Version>1.3.0</Version>"
                f"<ServerUrl>{escape(base)}</ServerUrl><Layers>{escape(layers)}</Layers>"
                f"<Styles>{escape(styles)}</Styles><CRS>{escape(crs)}</CRS>"
                f"<ImageFormat>{escape(image_format)}</ImageFormat><Transparent>TRUE</Transparent></Service>"
                f"<DataWindow><UpperLeftX>{extent.xMinimum()!r}</UpperLeftX><UpperLeftY>{extent.yMaximum()!r}"
                f"</UpperLeftY><LowerRightX>{extent.xMaximum()!r}</LowerRightX><LowerRightY>{extent.yMinimum()!r}"
                f"</LowerRightY><SizeX>{size_x}</SizeX><SizeY>{size_y}</SizeY></DataWindow>"
                f"<BlockSizeX>{TILE_SIZE}</BlockSizeX><BlockSizeY>{TILE_SIZE}</BlockSizeY>"
                f"<ZeroBlockOnServerException>{'true' if zero_blocks else 'false'}</ZeroBlockOnServerException>"
                f"{_common_xml(zero_blocks)}</GDAL_WMS>")

    return RasterSource(document(True), "wms", url, attribution, layer_name, strict_name=document(False))


def _one(value) -> str:
    return ",".join(value) if isinstance(value, (list, tuple)) else str(value or "")


def _attribution(layer) -> str:
    """The service's attribution as QGIS knows it: the layer's attribution, else its metadata's rights."""
    # QGIS 3.38 moved the attribution to the layer's server properties (the old getter warns there)
    server = layer.serverProperties() if hasattr(layer, "serverProperties") else None
    attribution = server.attribution() if hasattr(server, "attribution") else layer.attribution()
    parts = [attribution] if attribution else []
    parts += [right for right in layer.metadata().rights() if right]
    provider = layer.dataProvider()
    if not parts and provider is not None and hasattr(provider, "metadata"):
        parts += [right for right in provider.metadata().rights() if right] if hasattr(provider.metadata(),
                                                                                        "rights") else []
    return "; ".join(dict.fromkeys(parts))


def capabilities_url(url: str, service: str) -> str:
    """The GetCapabilities URL of a WMTS/WMS layer's ``url``: a KVP endpoint (``https://host/wmts``, as QGIS
    stores it) gets SERVICE and REQUEST, which GDAL does not add; a REST document (``.../WMTSCapabilities.xml``)
    or a URL that asks for the capabilities already stays as it is."""
    if urlsplit(url).path.lower().endswith(".xml") or re.search(r"[?&]request=getcapabilities", url, re.IGNORECASE):
        return url
    separator = "" if url.endswith(("?", "&")) else ("&" if "?" in url else "?")
    return f"{url}{separator}SERVICE={service}&REQUEST=GetCapabilities"
