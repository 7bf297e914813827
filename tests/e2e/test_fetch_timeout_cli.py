"""spacenet:fetchtiles from the command line against a loopback server that accepts connections and never answers
(issue 19): with --TIMEOUT=1 the run says which request is waiting while it retries, then fails in one sentence
that names the endpoint, the timeout and what to do; no traceback, and no output folder left behind (the run made
it, and takes it back when the run fails and leaves it empty)."""

import time

import pytest
import silent_server  # tests/support, on sys.path through tests/conftest.py

pytestmark = pytest.mark.e2e


def test_a_server_that_never_answers_times_out_with_retries_and_one_sentence(qgis_process_factory, plugin_path,
                                                                             tmp_path):
    qgis_process = qgis_process_factory(plugin_path=plugin_path)
    qgis_process.enable("spacenet_toolkit")
    output = tmp_path / "tiles"
    with silent_server.SilentServer() as server:
        endpoint = server.endpoint()
        started = time.monotonic()
        completed = qgis_process(
            "run", "spacenet:fetchtiles", "--DATASET=SN2_buildings", "--AOI=AOI_2_Vegas", "--SPLIT=train",
            "--PRODUCTS=PS-RGB", f"--ENDPOINT={endpoint}", "--TIMEOUT=1", "--LOAD_OUTPUTS=false",
            f"--OUTPUT_FOLDER={output}", timeout=120)
        elapsed = time.monotonic() - started
        attempts = server.count
    text = completed.stdout + completed.stderr
    assert completed.returncode != 0, text
    assert "Traceback" not in text, text
    assert attempts == 3, text  # the listing: a first try and two retries
    assert f"The endpoint {endpoint} accepted the connection but sent no answer within 1 s (3 attempts" in text, text
    assert "check its address and the network, or raise TIMEOUT." in text, text
    # while it waited: which request, and that it tries again
    assert f"Waiting for {endpoint}: no answer within 1 s (attempt 1 of 3); trying again in" in text, text
    assert "(attempt 2 of 3)" in text, text
    assert not output.exists(), list(output.rglob("*"))  # the run made the folder: it takes it back, empty
    assert elapsed < 100  # generous: three 1 s waits, the backoff and qgis_process's start


def test_help_lists_the_timeout_parameter(qgis_process_factory, plugin_path):
    qgis_process = qgis_process_factory(plugin_path=plugin_path)
    qgis_process.enable("spacenet_toolkit")
    completed = qgis_process("help", "spacenet:fetchtiles")
    assert completed.returncode == 0, completed.stderr
    assert "TIMEOUT" in completed.stdout and "Timeout for an answer (seconds)" in completed.stdout
