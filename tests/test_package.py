"""The package as installed: cheap imports, the error hierarchy, entry points, packaging, defaults, choices."""

from __future__ import annotations

import enum
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

import sarcoma_risk
from sarcoma_risk import errors
from sarcoma_risk.choices import check_choice
from sarcoma_risk.errors import InvalidInput, SarcomaRiskError
from sarcoma_risk.settings import default_store, default_weights_dir

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "torchvision", "pandas", "matplotlib", "openslide", "paquo", "SimpleITK", "slicer", "lifelines",
         "sksurv", "h5py", "tifffile", "shapely", "dask", "distributed")


def test_importing_the_foundation_and_building_the_cli_loads_no_heavy_library():
    code = (
        "import json, sys\n"
        "import sarcoma_risk, sarcoma_risk.records, sarcoma_risk.clinical, sarcoma_risk.cohort, sarcoma_risk.weights\n"
        "import sarcoma_risk.clinical.variables, sarcoma_risk.clinical.staging, sarcoma_risk.clinical.csvimport\n"
        "import sarcoma_risk.provenance, sarcoma_risk.tabular\n"
        "from sarcoma_risk.cli import build_parser\n"
        "build_parser()\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(result.stdout) == [], "imported at import time; import them inside the functions that use them"


def error_classes() -> list[type]:
    return [c for _, c in inspect.getmembers(errors, inspect.isclass)
            if issubclass(c, BaseException) and c.__module__ == errors.__name__]


@pytest.mark.parametrize("cls", error_classes(), ids=lambda c: c.__name__)
def test_every_error_is_a_sarcoma_risk_error_and_a_builtin_one(cls):
    if cls is SarcomaRiskError:
        return
    builtins = [b for b in cls.__mro__ if b.__module__ == "builtins" and b not in (Exception, BaseException, object)]
    assert issubclass(cls, SarcomaRiskError) and builtins, f"{cls.__name__} needs a fitting built-in base"


def test_a_missing_case_prints_its_message_not_a_key_repr():
    assert str(errors.CaseNotFound("case 'X' is not in the store")) == "case 'X' is not in the store"


def test_the_version_is_reported_by_the_package_and_the_command(capsys):
    from sarcoma_risk.cli import main

    assert sarcoma_risk.__version__ and sarcoma_risk.__version__ != "0.0.0+unknown"
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"sarcoma-risk {sarcoma_risk.__version__}"


def test_the_console_scripts_point_at_the_cli_mains():
    from importlib.metadata import entry_points

    scripts = {e.name: e.value for e in entry_points(group="console_scripts") if e.name.startswith("sarcoma-")}
    assert scripts == {"sarcoma-risk": "sarcoma_risk.cli:main", "sarcoma-qupath": "qupath_bridge.cli:main"}


def test_python_dash_m_runs_the_same_command_line():
    result = subprocess.run([sys.executable, "-m", "sarcoma_risk.cli", "cases", "--help"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0 and "list" in result.stdout and "history" in result.stdout


def test_every_package_folder_is_found_for_packaging_under_its_import_name():
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    from setuptools import find_packages

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    assert set(config) <= {"packages", "package-data"}, "no package-dir mapping: folders are named as imported"
    find = config["packages"]["find"]
    found = {name for where in find["where"] for name in find_packages(str(ROOT / where), include=find["include"])}
    on_disk = {".".join(p.parent.relative_to(ROOT / where).parts)
               for where, top in (("core", "sarcoma_risk"), (".", "qupath_bridge"))
               for p in (ROOT / where / top).rglob("__init__.py")}
    assert on_disk == found


def test_the_source_folder_core_is_not_importable_as_a_second_copy_of_the_package():
    result = subprocess.run([sys.executable, "-c", "import core"], capture_output=True, text=True, cwd=ROOT,
                            timeout=120)
    assert result.returncode != 0 and "import sarcoma_risk" in result.stderr
    assert Path(sarcoma_risk.__file__).resolve().parent == ROOT / "core" / "sarcoma_risk"


def test_the_demo_table_ships_as_package_data():
    from sarcoma_risk.cli.demo import demo_clinical_table

    assert demo_clinical_table().is_file()
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert {"data/*", "server/templates/*", "server/static/*"} <= set(config["tool"]["setuptools"]["package-data"][
        "sarcoma_risk"])


def test_the_store_location_follows_SARCOMA_RISK_STORE(monkeypatch, tmp_path):
    monkeypatch.setenv("SARCOMA_RISK_STORE", str(tmp_path / "team.sqlite"))
    assert default_store() == str(tmp_path / "team.sqlite")
    monkeypatch.setenv("SARCOMA_RISK_STORE", " https://records.example.org:8443 ")
    assert default_store() == "https://records.example.org:8443"
    monkeypatch.delenv("SARCOMA_RISK_STORE")
    default = default_store()
    assert default.name == "cases.sqlite" and "SarcomaRisk" in default.parts


def test_the_weights_folder_follows_SARCOMA_RISK_WEIGHTS(monkeypatch, tmp_path):
    monkeypatch.setenv("SARCOMA_RISK_WEIGHTS", str(tmp_path))
    assert default_weights_dir() == tmp_path
    monkeypatch.delenv("SARCOMA_RISK_WEIGHTS")
    assert default_weights_dir() == ROOT / "weights"


class Colour(enum.Enum):
    RED = "red"
    GREEN = "green"


def test_check_choice_accepts_values_members_and_names():
    assert check_choice("red", Colour, "colour") is Colour.RED
    assert check_choice(Colour.GREEN, Colour, "colour") is Colour.GREEN
    assert check_choice(" GREEN ", Colour, "colour") is Colour.GREEN


def test_check_choice_lists_the_valid_values_and_the_nearest():
    with pytest.raises(InvalidInput, match=r"colour: 'gren' is not valid; expected one of red, green. Did you mean 'green'\?"):
        check_choice("gren", Colour, "colour")
