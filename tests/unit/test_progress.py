"""core.progress: the one Canceled, report(fraction, message), spans of it and the cancel check."""

import pytest

from spacenet_toolkit.core import progress
from spacenet_toolkit.core.extract import calibrate, extract, preview
from spacenet_toolkit.core.fetch import fetch, model_store, s3
from spacenet_toolkit.core.score import apls, f1


def test_every_wing_raises_the_one_canceled():
    for module in (apls, calibrate, extract, f1, model_store, preview, s3):
        assert module.Canceled is progress.Canceled
    assert fetch.Canceled is progress.Canceled


def test_a_span_fills_its_share_of_the_callers_progress():
    seen = []
    report = lambda fraction, message=None: seen.append((fraction, message))  # noqa: E731
    part = progress.span(report, 0.4, 0.9)
    part(0.0, "start")
    part(0.5)
    inner = progress.span(part, 0.5, 1.0)
    inner(1.0, None)
    assert seen == [(0.4, "start"), (pytest.approx(0.65), None), (pytest.approx(0.9), None)]
    step = progress.counted(report, 0.0, 0.5)
    step(3, 4)
    step(0, 0)  # nothing to do is not a division by zero
    assert seen[-2:] == [(0.375, None), (0.0, None)]
    progress.span(None, 0, 1)(0.5, "nowhere")  # None reports nowhere


def test_check_raises_only_when_canceled():
    progress.check(None)
    progress.check(progress.never)
    with pytest.raises(progress.Canceled, match="at group 2"):
        progress.check(lambda: True, "at group 2")
