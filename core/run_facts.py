"""What a report says was scored: the inputs, when, and with which plugin and model, as plain values.

The QGIS side gathers them (layer names, sources, counts, CRSs, the proposals' model fields); ``html_report``
renders them. Nothing here knows QGIS.
"""

from __future__ import annotations

import configparser
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

PLUGIN_METADATA = Path(__file__).resolve().parent.parent / "metadata.txt"


@dataclass(frozen=True)
class InputFacts:
    """One scored input."""

    role: str  # "Truth", "Proposals"
    name: str  # the layer's name (a file's name when it was given as a path)
    source: str  # the file or provider URI behind it
    feature_count: int | None  # None: its provider cannot tell without reading every feature
    crs: str  # e.g. "EPSG:32616 (WGS 84 / UTM zone 16N)"; "" when it has none


@dataclass(frozen=True)
class ModelFacts:
    """A model that made the proposals, as our extraction recorded it."""

    name: str
    version: str = ""  # "" when the output does not say (outputs of older plugin versions)

    def label(self) -> str:
        return f"{self.name} {self.version}" if self.version else self.name


@dataclass(frozen=True)
class RunFacts:
    """The header of a scoring report."""

    algorithm: str  # "spacenet:scoref1"
    started: str  # local time with its UTC offset, ISO 8601 (local_time)
    plugin_version: str
    inputs: tuple = ()  # InputFacts
    compared_in: str = ""  # the CRS (or coordinate space) the geometries were compared in
    group_field: str = ""  # "" when everything is one group
    models: tuple = ()  # ModelFacts; empty when the proposals do not say they came from our extraction


def local_time(moment: datetime | None = None) -> str:
    """``moment`` (default: now) in the local time zone with its offset, to the second: 2024-05-01T14:03:22+02:00."""
    moment = datetime.now().astimezone() if moment is None else moment.astimezone()
    return moment.isoformat(timespec="seconds")


def plugin_version(metadata: Path = PLUGIN_METADATA) -> str:
    """The version in the plugin's metadata.txt; "" when it cannot be read."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(metadata, encoding="utf-8")
    except (OSError, configparser.Error):
        return ""
    return parser.get("general", "version", fallback="").strip()


def models_from(pairs) -> tuple:
    """Distinct (model name, version) pairs, as ModelFacts sorted by name and version; empty or None names left
    out, None versions as ""."""
    found = set()
    for name, version in pairs:
        name = _text(name)
        if name:
            found.add(ModelFacts(name, _text(version)))
    return tuple(sorted(found, key=lambda model: (model.name, model.version)))


def _text(value) -> str:
    return "" if value is None else str(value).strip()
