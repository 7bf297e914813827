"""core.fetch against a loopback server that accepts connections and never answers: the timeout, the retries, the
notices while waiting and the one sentence at the end."""

import time

import pytest
import silent_server  # tests/support, on sys.path through tests/conftest.py

from spacenet_toolkit.core.fetch import s3
from spacenet_toolkit.core.fetch.catalog import DEFAULT_TIMEOUT
from spacenet_toolkit.core.fetch.fetch import FetchRequest, fetch

KEY = "spacenet/SN2_buildings/train/AOI_2_Vegas/PS-RGB/SN2_buildings_train_AOI_2_Vegas_PS-RGB_img1.tif"
LISTING = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>spacenet-dataset</Name>'
    f"<IsTruncated>false</IsTruncated><Contents><Key>{KEY}</Key><Size>1000</Size>"
    "<ETag>&quot;0123456789abcdef0123456789abcdef&quot;</ETag></Contents></ListBucketResult>"
).encode()
GENEROUS = 60  # seconds: only keeps a broken client from hanging the suite; the attempts are what is asserted


def test_a_silent_server_fails_after_three_attempts_with_one_sentence():
    notices = []
    with silent_server.SilentServer() as server:
        endpoint = server.endpoint()
        started = time.monotonic()
        with pytest.raises(s3.TimedOutError) as error:
            list(s3.Bucket(endpoint, timeout=1, notify=notices.append).list_objects("spacenet/"))
        assert time.monotonic() - started < GENEROUS
        assert server.count == 3  # the first try and two retries, each a fresh connection left unanswered
    message = str(error.value)
    assert message.count(". ") == 0 and message.endswith(".")  # one sentence
    assert f"The endpoint {endpoint} accepted the connection but sent no answer within 1 s (3 attempts" in message
    assert "check its address and the network, or raise the timeout." in message
    assert error.value.sentence("TIMEOUT").endswith("or raise TIMEOUT.")
    assert isinstance(error.value, s3.EndpointUnreachableError)  # callers that caught it before still do
    assert len(notices) == 2
    assert notices[0].startswith(f"Waiting for {endpoint}: no answer within 1 s (attempt 1 of 3); trying again in")
    assert "(attempt 2 of 3)" in notices[1]


def test_a_server_that_answers_after_one_stalled_attempt_succeeds_on_the_retry():
    notices = []
    with silent_server.SilentServer(stall=1, body=LISTING) as server:
        listed = list(s3.Bucket(server.endpoint(), timeout=1, notify=notices.append).list_objects("spacenet/"))
        assert [request.answered for request in server.requests] == [False, True]
    assert [obj.key for obj in listed] == [KEY]
    assert len(notices) == 1 and "(attempt 1 of 3)" in notices[0]


def test_the_timeout_is_seconds_for_an_answer_and_the_connection_gets_at_most_ten():
    assert s3.Bucket("http://127.0.0.1:9/b", timeout=1).timeout == (1.0, 1.0)
    assert s3.Bucket("http://127.0.0.1:9/b", timeout=DEFAULT_TIMEOUT).timeout == (10.0, 30.0)
    assert s3.Bucket("http://127.0.0.1:9/b").timeout == (10.0, 60.0)  # callers other than fetch keep theirs
    with pytest.raises(s3.S3Error, match="more than 0 seconds"):
        s3.Bucket("http://127.0.0.1:9/b", timeout=0)


def request_for(endpoint, tmp_path, **overrides):
    values = dict(dataset="SN2_buildings", split="train", aoi="AOI_2_Vegas", products=("PS-RGB",),
                  output_folder=tmp_path / "tiles", endpoint=endpoint, timeout=1)
    values.update(overrides)
    return FetchRequest(**values)


def test_fetch_passes_its_timeout_down_and_reports_the_waiting_listing(tmp_path):
    messages = []
    assert FetchRequest("SN2_buildings", "train", "AOI_2_Vegas", ("PS-RGB",), tmp_path).timeout == DEFAULT_TIMEOUT
    with silent_server.SilentServer() as server:
        with pytest.raises(s3.TimedOutError, match="within 1 s"):
            fetch(request_for(server.endpoint(), tmp_path), report=lambda fraction, message: messages.append(message))
        assert server.count == 3
    assert sum("Waiting for" in (message or "") for message in messages) == 2
    assert not (tmp_path / "tiles").exists()


def test_a_download_left_waiting_in_a_worker_is_reported_and_fails_with_the_sentence(tmp_path):
    messages = []
    # The listing is answered; the download (a worker thread's GET of the tile) never is.
    with silent_server.SilentServer(stall=lambda index, method, target: "list-type" not in target,
                                    body=LISTING) as server:
        result = fetch(request_for(server.endpoint(), tmp_path),
                       report=lambda fraction, message: messages.append(message))
        downloads = [request for request in server.requests if "list-type" not in request.target]
        assert len(downloads) == 3
    [file] = result.files
    assert file.status == "failed" and "sent no answer within 1 s (3 attempts" in file.error
    waiting = [message for message in messages if message and message.startswith("Waiting for")]
    assert len(waiting) == 2 and KEY.rsplit("/", 1)[-1] in waiting[0]
    assert not [path for path in (tmp_path / "tiles").rglob("*") if path.is_file()]


def test_the_timeout_must_be_positive(tmp_path):
    from spacenet_toolkit.core.fetch.catalog import CatalogError

    with pytest.raises(CatalogError, match="more than 0 seconds"):
        request_for("http://127.0.0.1:9/b", tmp_path, timeout=0)


@pytest.mark.parametrize("stalled", ["listing", "download"])
def test_a_cancel_ends_a_request_that_waits_for_its_answer(tmp_path, stalled):
    """The cancel took effect only when every try had waited its whole timeout (90 s for a listing at 30 s)."""
    from spacenet_toolkit.core.progress import Canceled

    def stall(index, method, target):
        return ("list-type" in target) == (stalled == "listing")

    canceled_at = []
    with silent_server.SilentServer(stall=stall, body=LISTING) as server:
        started = time.monotonic()

        def is_canceled():
            if time.monotonic() - started > 1:
                canceled_at.append(canceled_at[0] if canceled_at else time.monotonic())
                return True
            return False

        with pytest.raises(Canceled):
            fetch(request_for(server.endpoint(), tmp_path, timeout=30), is_canceled=is_canceled)
        ended = time.monotonic()
    assert ended - canceled_at[0] < 2, "the cancel waited for the request"
    assert server.count == 1 + (stalled == "download")  # the stalled request, asked once: no try after the cancel
