"""Send the plugin's Python ``logging`` records to the QGIS log panel ("SpaceNet" tab), and in qgis_process print
each of a run's messages once.

qgis_process echoes every critical message of the QGIS message log on stderr, and QGIS logs an algorithm's error
there twice (``QgsProcessingAlgorithm::run`` when it catches the exception, ``QgsProcessingFeedback::reportError``
when it reports it) while qgis_process's console feedback prints it too ("ERROR:<tab>..."): three copies of one
sentence. In qgis_process only, ``install`` puts ``ConsoleEcho`` in place of that echo: Processing's own critical
messages are left to the feedback (or, with ``--json``, where the feedback prints nothing, printed once), every
other critical message is printed as qgis_process prints it. The message log itself, and so the desktop's log panel
and processing dialog, still gets every message.
"""

import contextlib
import logging
import sys

from qgis.core import Qgis, QgsApplication, QgsMessageLog
from qgis.PyQt.QtCore import QCoreApplication

LOG_TAG = "SpaceNet"
PACKAGE_LOGGER = logging.getLogger(__package__)

_echo = []  # the ConsoleEcho that replaced qgis_process's, kept referenced while the message log may call it


def _qgis_level(levelno: int):
    if levelno >= logging.ERROR:
        return Qgis.MessageLevel.Critical
    if levelno >= logging.WARNING:
        return Qgis.MessageLevel.Warning
    return Qgis.MessageLevel.Info


class QgsMessageLogHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        try:
            QgsMessageLog.logMessage(self.format(record), LOG_TAG, _qgis_level(record.levelno))
        except Exception:  # a log call must never break the caller
            self.handleError(record)


def install() -> QgsMessageLogHandler:
    """Attach a handler to the plugin's package logger; ``remove`` detaches it on unload. In qgis_process, also
    print each message once (``install_console_echo``)."""
    handler = QgsMessageLogHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    PACKAGE_LOGGER.addHandler(handler)
    if PACKAGE_LOGGER.level == logging.NOTSET:
        PACKAGE_LOGGER.setLevel(logging.INFO)
    install_console_echo()
    return handler


def remove(handler: logging.Handler) -> None:
    PACKAGE_LOGGER.removeHandler(handler)


def processing_tags() -> frozenset:
    """The tags QGIS logs Processing's messages under (translated with the user's locale)."""
    return frozenset({"Processing", QCoreApplication.translate("QObject", "Processing"),
                      QCoreApplication.translate("QgsProcessingFeedback", "Processing")})


class ConsoleEcho:
    """qgis_process's echo of the message log, less the copies: critical messages on stderr, except those of
    Processing when the console feedback prints them (``feedback_prints_errors``), and never one twice in a row."""

    def __init__(self, feedback_prints_errors: bool, stream=None):
        self.feedback_prints_errors = feedback_prints_errors
        self.stream = stream
        self.tags = processing_tags()
        self._last = None

    def __call__(self, message: str, tag: str, level) -> None:
        if level != Qgis.MessageLevel.Critical or "DeprecationWarning:" in (message or ""):
            return
        if tag in self.tags:
            if self.feedback_prints_errors:
                return  # the feedback printed it as "ERROR:\t..."
            if message == self._last:
                return  # the run's catch logged it, then the feedback's reportError logged it again
        self._last = message
        stream = self.stream or sys.stderr
        with contextlib.suppress(Exception):  # an echo must never break the caller that logged
            stream.write(f"{message}\n")
            stream.flush()


def install_console_echo() -> bool:
    """In qgis_process, once per process: ``ConsoleEcho`` instead of qgis_process's own echo. Left alone (False)
    elsewhere, and where anything but qgis_process's echo listens to the message log (another plugin's listener
    would go with it). True when installed."""
    if _echo or QgsApplication.platform() != "qgis_process":
        return bool(_echo)
    message_log = QgsApplication.messageLog()
    signal = message_log.messageReceived[str, str, Qgis.MessageLevel]
    if message_log.receivers(signal) != 1:
        return False
    signal.disconnect()  # qgis_process's echo: a C++ lambda, only reachable this way
    # qgis_process's console feedback prints errors, except with --json (they go to a log printed on success only)
    echo = ConsoleEcho(feedback_prints_errors="--json" not in QCoreApplication.arguments())
    signal.connect(echo)
    _echo.append(echo)
    return True
