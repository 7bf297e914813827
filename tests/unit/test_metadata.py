"""metadata.txt is what the QGIS plugin manager and plugins.qgis.org read: it must be complete and honest."""

import configparser
import re

import pytest

REQUIRED = [
    "name", "qgisMinimumVersion", "description", "about", "version", "author", "email",
    "tracker", "repository", "homepage", "hasProcessingProvider", "tags", "icon", "experimental", "changelog",
]


@pytest.fixture(scope="module")
def metadata(repo_root):
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(repo_root / "metadata.txt", encoding="utf-8")
    return parser["general"]


def test_every_field_the_plugin_repository_needs_is_filled(metadata):
    assert [key for key in REQUIRED if not metadata.get(key, "").strip()] == []
    assert metadata["name"] == "SpaceNet Toolkit"
    assert metadata["qgisMinimumVersion"] == "3.22"
    assert metadata["hasProcessingProvider"] == "yes"
    assert metadata["experimental"] == "True"
    for url_key in ("tracker", "repository", "homepage"):
        assert metadata[url_key].startswith("https://")


def test_version_is_semantic_and_has_a_changelog_entry(metadata):
    assert re.fullmatch(r"\d+\.\d+\.\d+", metadata["version"])
    assert metadata["version"] in metadata["changelog"]


def test_about_names_every_runtime_dependency(metadata, repo_root):
    runtime = [
        re.split(r"[=<>\[ ]", line)[0]
        for line in (repo_root / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    runtime.append("onnxruntime")  # chosen by the Makefile, not listed in requirements.txt
    assert [name for name in runtime if name not in metadata["about"]] == []


def test_icon_is_a_png_and_licence_is_gpl2_or_later(metadata, repo_root):
    icon = repo_root / metadata["icon"]
    assert icon.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    licence = (repo_root / "LICENSE").read_text()
    assert "GNU GENERAL PUBLIC LICENSE" in licence and "Version 2, June 1991" in licence
    assert "any later version" in licence
