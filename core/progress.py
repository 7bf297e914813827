"""The one progress and cancel contract of every long loop in core.

A long function takes ``report(fraction, message)`` (``fraction`` from 0 to 1 of its own work; ``message`` a line
for the log, or None) and ``is_canceled()``, and raises :class:`Canceled` when ``is_canceled()`` turns True,
leaving nothing half-written under a final name. A part of the work reports through :func:`span`, which maps its
own 0..1 into a share of the caller's. The provider's base bridges both to a ``QgsProcessingFeedback``.
"""

from __future__ import annotations

from collections.abc import Callable

Report = Callable[[float, "str | None"], None]
IsCanceled = Callable[[], bool]


class Canceled(Exception):  # noqa: N818 - the name says what happened
    """The caller's ``is_canceled()`` turned True; the work stopped without leaving a half-written result."""


def silent(fraction: float, message: str | None = None) -> None:
    """A ``report`` that reports nowhere."""


def never() -> bool:
    """An ``is_canceled`` that never cancels."""
    return False


def span(report: Report | None, low: float, high: float) -> Report:
    """The ``report`` of a part of the work that fills ``low``..``high`` of the caller's ``report``."""
    report = report or silent

    def part(fraction: float, message: str | None = None) -> None:
        report(low + (high - low) * fraction, message)

    return part


def counted(report: Report | None, low: float = 0.0, high: float = 1.0) -> Callable[[int, int], None]:
    """``step(done, total)`` reporting ``done`` of ``total`` steps as ``low``..``high`` of ``report``."""
    part = span(report, low, high)
    return lambda done, total: part(done / max(total, 1), None)


def check(is_canceled: IsCanceled | None, message: str = "") -> None:
    """Raise :class:`Canceled` when ``is_canceled()`` says True (None never cancels)."""
    if is_canceled is not None and is_canceled():
        raise Canceled(message) if message else Canceled()
