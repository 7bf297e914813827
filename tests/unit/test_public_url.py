"""What logs, messages and outputs show of a URL: its keys, tokens, signatures and passwords masked, the rest as is."""

import pytest

from spacenet_toolkit.core.public_url import public_text, public_url


@pytest.mark.parametrize(("url", "shown"), [
    ("https://tiles.example.com/{z}/{x}/{y}.png?apikey=s3cret", "https://tiles.example.com/{z}/{x}/{y}.png?apikey=***"),
    ("https://u:pw@h.example/wms?layers=a&access_token=t0k&style=", "https://u:***@h.example/wms?layers=a&access_token=***&style="),
    ("https://b.s3.amazonaws.com/x.tif?X-Amz-Signature=aa&X-Amz-Credential=bb&v=1",
     "https://b.s3.amazonaws.com/x.tif?X-Amz-Signature=***&X-Amz-Credential=***&v=1"),
    ("http://127.0.0.1:9000/{z}/{x}/{y}.png", "http://127.0.0.1:9000/{z}/{x}/{y}.png"),
    ("", ""),
])
def test_secrets_are_masked_and_nothing_else_moves(url, shown):
    assert public_url(url) == shown


def test_every_url_in_a_message_is_masked():
    message = "ReadBlockFromFile (http://h/19/1/2.png?key=abc) failed; see https://h/help?topic=x"
    assert public_text(message) == "ReadBlockFromFile (http://h/19/1/2.png?key=***) failed; see https://h/help?topic=x"
