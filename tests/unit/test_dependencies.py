"""The dependency checks that decide which algorithms the plugin offers."""

import sys

from spacenet_toolkit.core import dependencies


def test_an_installed_module_is_found_without_being_imported(monkeypatch):
    monkeypatch.delitem(sys.modules, "json.tool", raising=False)
    assert dependencies.is_installed("json.tool")
    assert "json.tool" not in sys.modules


def test_absent_and_blocked_modules_count_as_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "shapely", None)  # how Python marks a module that must not import
    assert dependencies.missing(["json", "spacenet_no_such_package", "shapely", "no_parent.child"]) == [
        "spacenet_no_such_package",
        "shapely",
        "no_parent.child",
    ]


def test_install_command_uses_pip_names_and_quotes_version_specifiers():
    command = dependencies.install_command(["shapely", "onnxruntime", "somepkg"])
    assert command == 'python -m pip install "shapely>=2" onnxruntime somepkg'


def test_describe_missing_names_package_purpose_and_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    text = dependencies.describe_missing(["json", "onnxruntime"])
    assert "onnxruntime (model inference" in text
    assert "python -m pip install onnxruntime" in text
    assert "json" not in text
    assert dependencies.describe_missing(["json"]) == ""


def test_report_lists_every_package_and_installs_only_the_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "rasterio", None)
    monkeypatch.setitem(sys.modules, "distributed", None)
    required, optional = dependencies.report().split("\nOptional:\n")
    lines = required.splitlines()
    status = {line.split(": ")[1].split(" - ")[0]: line.split(":")[0] for line in lines if " - " in line}
    assert set(status) == set(dependencies.PACKAGES)
    assert status["rasterio"] == "MISSING"
    assert status["numpy"] == "installed"
    assert lines[-1] == "python -m pip install rasterio"  # the optional packages are not in it
    assert optional.startswith("not installed: distributed - optional: extraction spread over worker processes")
    assert optional.endswith('(python -m pip install "dask[distributed]")')
