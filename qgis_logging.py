"""Send the plugin's Python ``logging`` records to the QGIS log panel ("SpaceNet" tab)."""

import logging

from qgis.core import Qgis, QgsMessageLog

LOG_TAG = "SpaceNet"
PACKAGE_LOGGER = logging.getLogger(__package__)


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
    """Attach a handler to the plugin's package logger; ``remove`` detaches it on unload."""
    handler = QgsMessageLogHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    PACKAGE_LOGGER.addHandler(handler)
    if PACKAGE_LOGGER.level == logging.NOTSET:
        PACKAGE_LOGGER.setLevel(logging.INFO)
    return handler


def remove(handler: logging.Handler) -> None:
    PACKAGE_LOGGER.removeHandler(handler)
