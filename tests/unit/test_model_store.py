"""core.fetch.model_store fetching from a real loopback HTTP server: the shipped registry with the shipped files served,
as if the plugin zip had left the models out."""

import json
import shutil

import file_server  # tests/support, on sys.path through tests/conftest.py
import pytest

from spacenet_toolkit.core import model_registry
from spacenet_toolkit.core.extract import runtime
from spacenet_toolkit.core.fetch.model_store import (
    Canceled,
    ModelDownloadError,
    ModelStore,
    NotInstalledError,
    UnknownModelError,
)

NAME = "buildings_unet_small"
MAIN = f"{NAME}.onnx"
HALF = f"{NAME}.fp16.onnx"


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """A release page serving the shipped model files."""
    folder = tmp_path_factory.mktemp("release")
    for path in model_registry.REGISTRY_PATH.parent.glob(f"{NAME}*.onnx"):
        shutil.copy(path, folder / path.name)
    with file_server.serve_folder(folder) as server:
        yield server


def store_at(tmp_path, base_url, registry=None):
    """A store whose bundled folder is empty: every registered model must be fetched."""
    (tmp_path / "plugin_models").mkdir(exist_ok=True)
    registry = registry or model_registry.load_registry(model_registry.REGISTRY_PATH, release_url=base_url)
    return ModelStore(registry, bundled_dir=tmp_path / "plugin_models", cache_dir=tmp_path / "cache")


def files_in(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_a_missing_model_is_downloaded_verified_and_then_found_without_a_request(release, tmp_path):
    store = store_at(tmp_path, release.url)
    assert not store.is_installed(NAME)
    with pytest.raises(NotInstalledError, match=f"'{NAME}' is downloaded on first use \\(6.5 MB\\)"):
        store.resolve(NAME, download=False)
    before = len(release.requested)
    reports = []
    path = store.resolve(NAME, report=lambda fraction, message: reports.append((fraction, message)))
    assert path == tmp_path / "cache" / MAIN
    assert path.read_bytes() == (model_registry.REGISTRY_PATH.parent / MAIN).read_bytes()
    assert files_in(tmp_path / "cache") == [MAIN]  # nothing else left behind
    assert release.requested[before:] == [f"/{MAIN}"]
    fractions = [fraction for fraction, _ in reports]
    assert fractions == sorted(fractions) and fractions[0] == 0 and fractions[-1] == 1
    messages = [message for _, message in reports if message]
    assert f"from {release.url}{MAIN} into {tmp_path / 'cache'}" in messages[0]
    assert "of 6.5 MB" in messages[1] and "verified" in messages[-1]
    assert store.is_installed(NAME)
    assert store_at(tmp_path, release.url).resolve(NAME) == path
    assert len(release.requested) == before + 1


def test_the_fp16_variant_is_fetched_on_request_beside_the_model(release, tmp_path):
    store = store_at(tmp_path, release.url)
    assert store.missing_half(NAME) is None  # nothing to put it beside yet
    main = store.resolve(NAME)
    half = store.missing_half(NAME)
    assert half.name == HALF
    store.fetch(half)
    assert runtime.fp16_variant(main) == tmp_path / "cache" / HALF
    assert store.missing_half(NAME) is None


def test_a_bundled_model_is_used_where_it_is(release, tmp_path):
    store = store_at(tmp_path, release.url)
    shutil.copy(model_registry.REGISTRY_PATH.parent / MAIN, tmp_path / "plugin_models" / MAIN)
    before = len(release.requested)
    assert store.resolve(NAME) == tmp_path / "plugin_models" / MAIN
    assert store.missing_half(NAME) is None  # the plugin folder is not ours to write
    assert len(release.requested) == before


def test_a_cached_file_that_is_not_the_registry_s_is_fetched_again(release, tmp_path):
    store = store_at(tmp_path, release.url)
    (tmp_path / "cache").mkdir()
    stale = tmp_path / "cache" / MAIN
    stale.write_bytes(b"\0" * store.registry.get(NAME).main.size)  # an older version, same size
    assert not store.is_installed(NAME)
    assert store.resolve(NAME).read_bytes() == (model_registry.REGISTRY_PATH.parent / MAIN).read_bytes()


def test_a_wrong_hash_is_a_clear_error_and_nothing_is_kept(release, tmp_path):
    data = json.loads(model_registry.REGISTRY_PATH.read_text(encoding="utf-8"))
    data["release_url"] = release.url
    data["models"][NAME]["files"][MAIN]["sha256"] = "0" * 64
    store = store_at(tmp_path, release.url, model_registry.parse_registry(data, "the test registry"))
    with pytest.raises(ModelDownloadError) as error:
        store.resolve(NAME)
    message = str(error.value)
    assert f"The downloaded {MAIN} from {release.url}{MAIN} is not the file the model registry names" in message
    assert f"where the test registry says {'0' * 64}" in message and "it was deleted" in message
    assert files_in(tmp_path / "cache") == []


def test_offline_gives_one_message_with_the_url_the_file_and_what_to_do(tmp_path):
    base = file_server.closed_port_url()
    store = store_at(tmp_path, base)
    with pytest.raises(ModelDownloadError) as error:
        store.resolve(NAME)
    assert str(error.value) == (
        f"Cannot download the model file {MAIN} (6.5 MB) from {base}{MAIN}: the server cannot be reached "
        "(connection refused); you may be offline, or a proxy or firewall blocks it. Download it by hand (e.g. "
        f"with a web browser) into {tmp_path / 'cache'}, or give the path of an .onnx file as the model."
    )
    assert files_in(tmp_path / "cache") == []


def test_a_file_missing_from_the_release_says_so(tmp_path):
    (tmp_path / "empty_release").mkdir()
    with file_server.serve_folder(tmp_path / "empty_release") as empty:
        store = store_at(tmp_path, empty.url)
        with pytest.raises(ModelDownloadError, match=r"the server has no such file \(HTTP 404\)"):
            store.resolve(NAME)
    assert files_in(tmp_path / "cache") == []


def test_cancel_mid_download_leaves_no_partial_file(release, tmp_path):
    store = store_at(tmp_path, release.url)
    partial_seen = []

    def report(fraction, message):
        if 0 < fraction < 1:
            partial_seen.extend(p.name for p in (tmp_path / "cache").iterdir())

    with pytest.raises(Canceled):
        store.resolve(NAME, report=report, is_canceled=lambda: bool(partial_seen))
    assert any(name.endswith(".part") for name in partial_seen)  # it was canceled while bytes were arriving
    assert files_in(tmp_path / "cache") == []
    assert store.resolve(NAME).is_file()  # and the next run starts afresh


def test_names_paths_and_unknown_models(release, tmp_path):
    store = store_at(tmp_path, release.url)
    own = tmp_path / "own.onnx"
    own.write_bytes(b"onnx")
    assert store.resolve(str(own)) == own
    (tmp_path / "plugin_models" / "dropped_in.onnx").write_bytes(b"onnx")
    assert store.resolve("dropped_in") == tmp_path / "plugin_models" / "dropped_in.onnx"
    assert store.unregistered_names() == ["dropped_in"]
    with pytest.raises(UnknownModelError, match="No model 'nowhere': give the name of a shipped model") as error:
        store.resolve("nowhere")
    assert "buildings_unet_small" in str(error.value) and "dropped_in)" in str(error.value)
