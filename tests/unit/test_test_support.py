"""The test tools themselves: the seeded loopback S3 server (tests/support/s3_server.py) and the fault proxy
(tests/support/fault_proxy.py) behave as the download tests will assume."""

import hashlib
import json
import time
import xml.etree.ElementTree as ET

import fault_proxy  # tests/support, put on sys.path by tests/conftest.py
import pytest
import requests
import s3_server

S3 = "{http://s3.amazonaws.com/doc/2006-03-01/}"
FILLER_PREFIX = "spacenet/SN2_buildings/train/AOI_2_Vegas/"


def list_page(endpoint: str, prefix: str, token=None, delimiter=None) -> ET.Element:
    params = {"list-type": "2", "prefix": prefix}
    if token:
        params["continuation-token"] = token
    if delimiter:
        params["delimiter"] = delimiter
    response = requests.get(endpoint, params=params, timeout=10)
    assert response.status_code == 200, response.text
    return ET.fromstring(response.content)


def page_keys(page: ET.Element) -> list:
    return [element.text for element in page.iter(S3 + "Key")]


REAL_KEY = s3_server.spacenet_key("SN3_roads", "train", "AOI_2_Vegas", "PS-RGB", "img0")


# --- the server ---------------------------------------------------------------------------------------------------


def test_a_listing_pages_past_1000_keys(bucket):
    first = list_page(bucket.endpoint, FILLER_PREFIX)
    assert first.findtext(S3 + "IsTruncated") == "true"
    token = first.findtext(S3 + "NextContinuationToken")
    second = list_page(bucket.endpoint, FILLER_PREFIX, token=token)
    assert second.findtext(S3 + "IsTruncated") == "false"
    keys = page_keys(first) + page_keys(second)
    assert len(page_keys(first)) == 1000
    assert keys == bucket.manifest.keys(*s3_server.FILLER) and len(keys) == 1040


def test_anonymous_head_and_range_get(bucket):
    key = REAL_KEY
    head = requests.head(bucket.url(key), timeout=10)
    assert head.status_code == 200
    assert int(head.headers["Content-Length"]) == bucket.manifest.size(key)
    assert head.headers["ETag"] == bucket.manifest.etag(key)
    part = requests.get(bucket.url(key), headers={"Range": "bytes=100-199"}, timeout=10)
    assert part.status_code == 206
    assert part.content == bucket.manifest.objects[key][100:200]


def test_a_private_object_is_forbidden_anonymously(bucket):
    key = "spacenet/SN2_buildings/train/AOI_2_Vegas/private/secret.tif"
    bucket.put(key, b"not for you", public=False)
    assert requests.get(bucket.url(key), timeout=10).status_code == 403
    assert requests.head(bucket.url(key), timeout=10).status_code == 403


def test_the_real_fixtures_round_trip_byte_for_byte(bucket):
    for name, *where in s3_server.REAL_TILES:
        data = (s3_server.FIXTURES / name).read_bytes()
        response = requests.get(bucket.url(s3_server.spacenet_key(*where)), timeout=10)
        assert response.content == data, name
        assert response.headers["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'


def test_filler_tiles_have_both_tiff_layouts_distinct_footprints_and_labels(bucket):
    manifest = bucket.manifest
    rasters = manifest.keys(*s3_server.FILLER, "PS-RGB")
    at_start = [key for key in rasters if manifest.ifd_at_start(key)]
    assert 0.4 < len(at_start) / len(rasters) < 0.6
    footprints = manifest.tile_footprints(*s3_server.FILLER)
    assert len(set(footprints.values())) == len(rasters) == 520
    assert manifest.tile_ids(*s3_server.FILLER) != [f"img{n}" for n in range(1, 521)]  # ids skip numbers

    tile_id = manifest.tile_ids(*s3_server.FILLER)[1]  # an odd index: its IFD is at the end
    from rasterio.io import MemoryFile  # only here: the other tests need no GDAL

    key = s3_server.spacenet_key(*s3_server.FILLER, "PS-RGB", tile_id)
    with MemoryFile(requests.get(bucket.url(key), timeout=10).content) as memory, memory.open() as tile:
        assert tile.crs.to_epsg() == 4326 and tile.count == 3
        assert tile.bounds == pytest.approx(footprints[tile_id])
    counts = [manifest.label_features[key] for key in manifest.keys(*s3_server.FILLER, "geojson_buildings")]
    assert 0 in counts and 2 in counts
    label = json.loads(manifest.objects[s3_server.spacenet_key(*s3_server.FILLER, "geojson_buildings", tile_id)])
    west, south, east, north = footprints[tile_id]
    for feature in label["features"]:
        for x, y, z in feature["geometry"]["coordinates"][0]:
            assert west < x < east and south < y < north and z == 0


def test_hostile_keys_are_stored_and_listed_as_written(bucket):
    listed = page_keys(list_page(bucket.endpoint, s3_server.HOSTILE_PREFIX))
    assert set(bucket.manifest.hostile) <= set(listed)
    assert any("/../" in key for key in listed) and any("\\" in key for key in listed)
    assert any("//" in key for key in listed)


# --- the proxy ----------------------------------------------------------------------------------------------------


def test_proxy_without_faults_relays_bytes_and_headers(bucket):
    key = REAL_KEY
    with fault_proxy.FaultProxy(bucket.origin) as proxy:
        url = proxy.endpoint_for(bucket.url(key))
        assert requests.get(url, timeout=10).content == bucket.manifest.objects[key]
        part = requests.get(url, headers={"Range": "bytes=10-19"}, timeout=10)
        assert part.status_code == 206 and part.content == bucket.manifest.objects[key][10:20]
        head = requests.head(url, timeout=10)
        assert head.headers["ETag"] == bucket.manifest.etag(key)
        assert int(head.headers["Content-Length"]) == bucket.manifest.size(key)
        page = list_page(proxy.endpoint_for(bucket.endpoint), FILLER_PREFIX)
        assert len(page_keys(page)) == 1000
    assert [(r.method, r.range, r.status, r.fault) for r in proxy.requests] == [
        ("GET", None, 200, None),
        ("GET", "bytes=10-19", 206, None),
        ("HEAD", None, 200, None),
        ("GET", None, 200, None),
    ]


def test_proxy_answers_slow_down(bucket):
    with fault_proxy.FaultProxy(bucket.origin, p_503=1.0) as proxy:
        response = requests.get(proxy.endpoint_for(bucket.url(REAL_KEY)), timeout=10)
        assert response.status_code == 503
        assert ET.fromstring(response.content).findtext("Code") == "SlowDown"
        # Listings and HEADs pass untouched unless asked for.
        assert requests.head(proxy.endpoint_for(bucket.url(REAL_KEY)), timeout=10).status_code == 200
        list_page(proxy.endpoint_for(bucket.endpoint), FILLER_PREFIX)
        proxy.set_faults(faults_on_listing=True)
        listing = requests.get(proxy.endpoint_for(bucket.endpoint), params={"list-type": "2"}, timeout=10)
        assert listing.status_code == 503
        proxy.set_faults(p_503=0.0)
        assert requests.get(proxy.endpoint_for(bucket.url(REAL_KEY)), timeout=10).status_code == 200
    assert proxy.counts == {"503": 2, "forwarded": 3}


def test_proxy_drops_connections_mid_body(bucket):
    broken = (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)
    with fault_proxy.FaultProxy(bucket.origin, p_drop=1.0) as proxy, pytest.raises(broken):
        requests.get(proxy.endpoint_for(bucket.url(REAL_KEY)), timeout=10)
    assert proxy.counts == {"drop": 1}
    # A plain close instead of a reset: urllib3 1.26 returns the short body without an error.
    with fault_proxy.FaultProxy(bucket.origin, p_drop=1.0, drop_mode="close") as proxy:
        try:
            body = requests.get(proxy.endpoint_for(bucket.url(REAL_KEY)), timeout=10).content
        except broken:
            body = b""
    assert len(body) < bucket.manifest.size(REAL_KEY)


def test_proxy_corrupts_bytes_but_keeps_the_length(bucket):
    key = REAL_KEY
    with fault_proxy.FaultProxy(bucket.origin, p_corrupt=1.0) as proxy:
        body = requests.get(proxy.endpoint_for(bucket.url(key)), timeout=10).content
    assert len(body) == bucket.manifest.size(key)
    assert body != bucket.manifest.objects[key]
    assert hashlib.md5(body).hexdigest() != bucket.manifest.md5(key)


def test_proxy_throttles_bodies(bucket):
    key = REAL_KEY
    with fault_proxy.FaultProxy(bucket.origin, bytes_per_second=100_000) as proxy:
        started = time.monotonic()
        part = requests.get(proxy.endpoint_for(bucket.url(key)), headers={"Range": "bytes=0-29999"}, timeout=10)
        assert time.monotonic() - started >= 0.25  # 30 kB at 100 kB/s
    assert part.content == bucket.manifest.objects[key][:30000]
