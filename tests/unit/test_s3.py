"""core.fetch.s3 against a real S3-protocol server on loopback, directly and through a fault-injecting proxy."""

import hashlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import fault_proxy  # tests/support, on sys.path through tests/conftest.py
import pytest

from spacenet_toolkit.core.fetch import s3

FILLER_PREFIX = "spacenet/SN2_buildings/train/AOI_2_Vegas/"


def no_wait_policy(**overrides):
    return s3.RetryPolicy(base_delay=0.001, max_delay=0.01, **overrides)


def real_geotiff_keys(bucket):
    return [key for key in bucket.manifest.objects if key.endswith(".tif") and "AOI_2_Vegas/PS-RGB" not in key
            and key not in bucket.manifest.hostile and key not in bucket.manifest.private]


def obj_of(bucket, key):
    return s3.S3Object(key, bucket.manifest.size(key), bucket.manifest.md5(key))


def test_listing_follows_continuation_tokens_past_1000_keys(bucket):
    with fault_proxy.FaultProxy(bucket.origin) as proxy:
        listed = list(s3.Bucket(proxy.endpoint_for(bucket.endpoint)).list_objects(FILLER_PREFIX))
    expected = bucket.manifest.keys(dataset="SN2_buildings", split="train", aoi="AOI_2_Vegas")
    assert len(expected) > 1000
    assert [o.key for o in listed] == expected
    assert sum("list-type" in r.path for r in proxy.requests) == 2  # two pages
    by_key = {o.key: o for o in listed}
    sample = expected[7]
    assert by_key[sample].size == bucket.manifest.size(sample)
    assert by_key[sample].md5 == bucket.manifest.md5(sample)


def test_folders_head_and_ranges(bucket):
    client = s3.Bucket(bucket.endpoint)
    folders = client.list_folders("spacenet/SN3_roads/train/AOI_2_Vegas/")
    assert sorted(f.rsplit("/", 2)[-2] for f in folders) == ["PAN", "PS-RGB", "geojson_roads"]
    key = real_geotiff_keys(bucket)[0]
    data = bucket.manifest.objects[key]
    head = client.head(key)
    assert (head.size, head.md5) == (len(data), hashlib.md5(data).hexdigest())
    assert client.read_range(key, 100, 4196) == data[100:4196]
    assert client.read_range(key, len(data) - 10, len(data) + 100) == data[-10:]
    assert client.read_range(key, len(data) + 5, len(data) + 10) == b""


def test_downloads_survive_503s_and_dropped_connections(bucket, tmp_path):
    keys = real_geotiff_keys(bucket) + bucket.manifest.keys(product="PS-RGB", aoi="AOI_2_Vegas")[:20]
    with fault_proxy.FaultProxy(bucket.origin, seed=7, p_503=0.25, p_drop=0.25) as proxy:
        client = s3.Bucket(proxy.endpoint_for(bucket.endpoint), retry=no_wait_policy(attempts=30))
        transfers = [s3.Transfer(obj_of(bucket, key), tmp_path / key) for key in keys]
        results = s3.download_all(client, transfers, workers=6)
    assert {r.status for r in results} == {"downloaded"}, [r.error for r in results if r.error]
    for key in keys:
        assert (tmp_path / key).read_bytes() == bucket.manifest.objects[key]
    assert proxy.counts.get("503", 0) > 3 and proxy.counts.get("drop", 0) > 3
    assert not list(tmp_path.rglob("*.part"))


@pytest.mark.parametrize("drop_mode", ["reset", "close"])  # "close": some urllib3 versions see no error at all
def test_a_cut_body_resumes_from_where_it_was_cut(bucket, tmp_path, drop_mode):
    key = real_geotiff_keys(bucket)[0]
    with fault_proxy.FaultProxy(bucket.origin, seed=18, p_drop=0.6, drop_mode=drop_mode) as proxy:
        client = s3.Bucket(proxy.endpoint_for(bucket.endpoint), retry=no_wait_policy(attempts=30))
        assert client.download(obj_of(bucket, key), tmp_path / "tile.tif") == "downloaded"
        assert client.read_range(key, 0, 16384) == bucket.manifest.objects[key][:16384]
    assert (tmp_path / "tile.tif").read_bytes() == bucket.manifest.objects[key]
    assert proxy.counts.get("drop", 0) >= 2
    assert any(r.range and not r.range.startswith("bytes=0-") for r in proxy.requests), "resumed with a Range"


def test_a_corrupted_body_is_caught_by_the_md5_and_fetched_again(bucket, tmp_path):
    key = real_geotiff_keys(bucket)[0]
    with fault_proxy.FaultProxy(bucket.origin, seed=1, p_corrupt=0.5) as proxy:  # one client: draws are repeatable
        client = s3.Bucket(proxy.endpoint_for(bucket.endpoint), retry=no_wait_policy())
        assert client.download(obj_of(bucket, key), tmp_path / "tile.tif") == "downloaded"
    assert proxy.counts.get("corrupt", 0) >= 1
    assert (tmp_path / "tile.tif").read_bytes() == bucket.manifest.objects[key]


def test_always_corrupt_bodies_fail_the_md5_check_and_leave_nothing(bucket, tmp_path):
    key = real_geotiff_keys(bucket)[0]
    with fault_proxy.FaultProxy(bucket.origin, p_corrupt=1.0) as proxy:
        client = s3.Bucket(proxy.endpoint_for(bucket.endpoint), retry=no_wait_policy())
        with pytest.raises(s3.IntegrityError, match="MD5"):
            client.download(obj_of(bucket, key), tmp_path / "tile.tif")
    assert list(tmp_path.iterdir()) == []


def test_a_partial_file_resumes_with_a_range_request(bucket, tmp_path):
    key = real_geotiff_keys(bucket)[0]
    data = bucket.manifest.objects[key]
    obj = obj_of(bucket, key)
    destination = tmp_path / "tile.tif"
    s3.part_path(obj, destination).write_bytes(data[:100_000])
    with fault_proxy.FaultProxy(bucket.origin) as proxy:
        assert s3.Bucket(proxy.endpoint_for(bucket.endpoint)).download(obj, destination) == "downloaded"
    assert [r.range for r in proxy.requests] == ["bytes=100000-"]
    assert destination.read_bytes() == data
    assert not s3.part_path(obj, destination).exists()


def test_a_killed_download_resumes_where_it_stopped(bucket, tmp_path, plugin_path):
    key = real_geotiff_keys(bucket)[0]
    data = bucket.manifest.objects[key]
    obj = obj_of(bucket, key)
    destination = tmp_path / "tile.tif"
    part = s3.part_path(obj, destination)
    with fault_proxy.FaultProxy(bucket.origin, bytes_per_second=400_000) as proxy:
        endpoint = proxy.endpoint_for(bucket.endpoint)
        script = textwrap.dedent(f"""
            import sys
            sys.path.insert(0, {str(plugin_path)!r})
            from spacenet_toolkit.core.fetch import s3
            obj = s3.S3Object({key!r}, {obj.size}, {obj.etag!r})
            s3.Bucket({endpoint!r}).download(obj, {str(destination)!r})
        """)
        child = subprocess.Popen([sys.executable, "-c", script])
        deadline = time.monotonic() + 30
        while not (part.exists() and part.stat().st_size > 200_000) and time.monotonic() < deadline:
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
        child.wait()
        kept = part.stat().st_size
        assert 0 < kept < len(data) and not destination.exists()
        proxy.set_faults(bytes_per_second=None)
        proxy.clear()
        assert s3.Bucket(endpoint).download(obj, destination) == "downloaded"
    assert proxy.requests[0].range == f"bytes={kept}-"
    assert destination.read_bytes() == data


def test_cancel_keeps_the_partial_file_and_never_the_final_name(bucket, tmp_path):
    key = real_geotiff_keys(bucket)[0]
    obj = obj_of(bucket, key)
    received = []
    with pytest.raises(s3.Canceled):
        s3.Bucket(bucket.endpoint).download(obj, tmp_path / "tile.tif", on_bytes=received.append,
                                            is_canceled=lambda: sum(received) > 0)
    assert not (tmp_path / "tile.tif").exists()
    assert 0 < s3.part_path(obj, tmp_path / "tile.tif").stat().st_size < obj.size


def test_download_all_reports_overall_progress_and_cancels(bucket, tmp_path):
    keys = bucket.manifest.keys(product="PS-RGB", aoi="AOI_2_Vegas")[:30]
    transfers = [s3.Transfer(obj_of(bucket, key), tmp_path / key) for key in keys]
    seen = []
    results = s3.download_all(s3.Bucket(bucket.endpoint), transfers,
                               report=lambda fraction, message: seen.append(fraction))
    assert seen[-1] == 1.0 and all(0 <= fraction <= 1 for fraction in seen)
    assert {r.status for r in results} == {"downloaded"}
    again = s3.download_all(s3.Bucket(bucket.endpoint), transfers)
    assert {r.status for r in again} == {"present"}

    with fault_proxy.FaultProxy(bucket.origin, bytes_per_second=200_000) as proxy:
        slow = s3.Bucket(proxy.endpoint_for(bucket.endpoint))
        fresh = [s3.Transfer(obj_of(bucket, key), tmp_path / "second" / key) for key in real_geotiff_keys(bucket)]
        started = time.monotonic()
        with pytest.raises(s3.Canceled):
            s3.download_all(slow, fresh, is_canceled=lambda: time.monotonic() - started > 0.3)
        assert time.monotonic() - started < 5, "cancel must stop promptly"
    finals = [t.destination for t in fresh if t.destination.exists()]
    for path in finals:  # anything under its final name is complete
        assert path.read_bytes() == bucket.manifest.objects[path.relative_to(tmp_path / "second").as_posix()]


def test_refusals_and_missing_things_are_named(bucket, tmp_path):
    private_key = sorted(bucket.manifest.private)[0] if bucket.manifest.private else None
    client = s3.Bucket(bucket.endpoint)
    if private_key is None:
        private_key = "spacenet/private/img1.tif"  # outside every folder other tests list
        bucket.put(private_key, b"secret", public=False)
    with pytest.raises(s3.AccessDeniedError, match="403"):
        client.head(private_key)
    result = s3.download_all(client, [s3.Transfer(s3.S3Object(private_key, 6), tmp_path / "x.tif")])[0]
    assert result.status == "failed" and "403" in result.error
    with pytest.raises(s3.NotFoundError, match="404"):
        list(s3.Bucket(bucket.origin + "/no-such-bucket").list_objects("spacenet/"))
    with pytest.raises(s3.NotFoundError, match="no-such-key.tif"):
        client.head("spacenet/no-such-key.tif")


def test_an_unreachable_endpoint_fails_fast_with_its_url():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once the block ends: nothing listens there
    endpoint = f"http://127.0.0.1:{port}/spacenet-dataset"
    started = time.monotonic()
    with pytest.raises(s3.EndpointUnreachableError, match=f"127.0.0.1:{port}") as error:
        list(s3.Bucket(endpoint).list_objects("spacenet/"))
    assert "connection refused" in str(error.value)
    assert time.monotonic() - started < 5
    with pytest.raises(s3.S3Error, match="not an http"):
        s3.Bucket("spacenet-dataset.s3.amazonaws.com")


def test_disk_full_is_said_plainly(bucket, tmp_path):
    huge = s3.S3Object("spacenet/huge.tif", 10 ** 18)
    with pytest.raises(s3.DiskFullError, match="free"):
        s3.download_all(s3.Bucket(bucket.endpoint), [s3.Transfer(huge, tmp_path / "huge.tif")])
    if not os.path.exists("/dev/full"):
        return
    key = real_geotiff_keys(bucket)[0]
    obj = obj_of(bucket, key)
    s3.part_path(obj, tmp_path / "tile.tif").symlink_to("/dev/full")  # every write fails with ENOSPC
    with pytest.raises(s3.DiskFullError, match="is full"):
        s3.download_all(s3.Bucket(bucket.endpoint), [s3.Transfer(obj, tmp_path / "tile.tif")])


@pytest.mark.parametrize("relative", ["../escaped.tif", "a/../../escaped.tif", "..\\..\\escaped.tif", "/etc/passwd",
                                      "a//b.tif", "C:/Windows/x.tif", "a/./b.tif", "..", ""])
def test_unsafe_keys_are_refused(tmp_path, relative):
    with pytest.raises(s3.UnsafeKeyError):
        s3.safe_destination(tmp_path, relative)


def test_safe_keys_land_inside_the_root(tmp_path):
    path = s3.safe_destination(tmp_path, "SN2_buildings/train/AOI_2_Vegas/PS-RGB/x_img1.tif")
    assert path == (tmp_path / "SN2_buildings/train/AOI_2_Vegas/PS-RGB/x_img1.tif").resolve()
    (tmp_path / "link").symlink_to("/tmp")
    with pytest.raises(s3.UnsafeKeyError, match="outside"):
        s3.safe_destination(tmp_path, "link/escaped.tif")


def test_backoff_is_full_jitter_and_capped():
    policy = s3.RetryPolicy(base_delay=0.5, max_delay=4.0)
    delays = [policy.delay(attempt) for attempt in range(1, 12) for _ in range(50)]
    assert all(0 <= d <= 4.0 for d in delays)
    assert max(policy.delay(1) for _ in range(200)) <= 1.0
    assert len({round(d, 6) for d in delays}) > 100  # jittered, not fixed steps
