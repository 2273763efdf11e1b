"""The extension's files are consistent: CMake lists, module file, UI, Lib, catalog entry.

A file missing from the module's CMakeLists.txt is missing from the installed extension; a name
the module file uses but the Lib lacks fails only inside Slicer. Neither can run here, so these
tests read the files.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODULE_DIR = REPO / "SlicerSarcomaRisk"
MODULE_FILE = MODULE_DIR / "SarcomaRisk.py"
UI_FILE = MODULE_DIR / "Resources" / "UI" / "SarcomaRisk.ui"


def cmake_sets(text: str) -> dict[str, list[str]]:
    """``set(NAME items...)`` blocks of a CMake file, with ``${MODULE_NAME}`` expanded."""
    text = re.sub(r'("[^"]*")|#[^\n]*', lambda m: m.group(1) or "", text)  # comments, not # in strings
    values: dict[str, list[str]] = {}
    for name, body in re.findall(r'\bset\(\s*(\w+)((?:\s+(?:"[^"]*"|[^\s()"]+))*)\s*\)', text):
        items = re.findall(r'"[^"]*"|\S+', body)
        values[name] = [item.strip('"') for item in items]
    module = values.get("MODULE_NAME", [""])[0]
    return {k: [v.replace("${MODULE_NAME}", module) for v in items] for k, items in values.items()}


def module_tree() -> ast.Module:
    return ast.parse(MODULE_FILE.read_text(encoding="utf-8"), filename=str(MODULE_FILE))


# ---- CMake ---------------------------------------------------------------------------------------


def test_module_cmakelists_lists_every_script_and_resource_and_nothing_else():
    sets = cmake_sets((MODULE_DIR / "CMakeLists.txt").read_text(encoding="utf-8"))
    listed = set(sets["MODULE_PYTHON_SCRIPTS"]) | set(sets["MODULE_PYTHON_RESOURCES"])
    present = {p.relative_to(MODULE_DIR).as_posix() for p in MODULE_DIR.rglob("*")
               if p.is_file() and "__pycache__" not in p.parts and p.name != "CMakeLists.txt"}
    assert present - listed == set(), "files missing from SlicerSarcomaRisk/CMakeLists.txt"
    assert listed - present == set(), "CMakeLists.txt lists files that do not exist"
    assert all(s.endswith(".py") for s in sets["MODULE_PYTHON_SCRIPTS"])
    assert not any(r.endswith(".py") for r in sets["MODULE_PYTHON_RESOURCES"])


def test_module_cmakelists_builds_a_scripted_module_with_generic_tests():
    text = (MODULE_DIR / "CMakeLists.txt").read_text(encoding="utf-8")
    call = re.search(r"slicerMacroBuildScriptedModule\((.*?)\)", text, re.S).group(1).split()
    assert call[:2] == ["NAME", "${MODULE_NAME}"]
    assert "SCRIPTS" in call and call[call.index("SCRIPTS") + 1] == "${MODULE_PYTHON_SCRIPTS}"
    assert "RESOURCES" in call and call[call.index("RESOURCES") + 1] == "${MODULE_PYTHON_RESOURCES}"
    assert "WITH_GENERIC_TESTS" in call
    assert cmake_sets(text)["MODULE_NAME"] == ["SarcomaRisk"]
    assert re.search(r"slicer_add_python_unittest\(\s*SCRIPT\s+\$\{MODULE_NAME\}\.py\s*\)", text)


def test_top_level_cmakelists_declares_the_extension():
    text = (REPO / "CMakeLists.txt").read_text(encoding="utf-8")
    sets = cmake_sets(text)
    project = re.search(r"\bproject\(\s*(\w+)\s*\)", text).group(1)
    assert project == "SarcomaRisk" and not project.lower().startswith("slicer")
    for key in ("EXTENSION_HOMEPAGE", "EXTENSION_CONTRIBUTORS", "EXTENSION_DESCRIPTION", "EXTENSION_ICONURL",
                "EXTENSION_SCREENSHOTURLS", "EXTENSION_DEPENDS"):
        assert key in sets, key
    assert sets["EXTENSION_DEPENDS"] == ["PyTorch"]
    assert sets["EXTENSION_ICONURL"][0].endswith("SlicerSarcomaRisk/Resources/Icons/SarcomaRisk.png")
    order = [text.index(s) for s in ("find_package(Slicer REQUIRED)", "include(${Slicer_USE_FILE})",
                                     "add_subdirectory(SlicerSarcomaRisk)",
                                     "include(${Slicer_EXTENSION_GENERATE_CONFIG})",
                                     "include(${Slicer_EXTENSION_CPACK})")]
    assert order == sorted(order)


def test_catalog_entry_follows_the_extensions_index_schema():
    # Schema slicer-extension-catalog-entry-schema-v1.0.1 (Slicer/Slicer, Schemas/): required
    # $schema, category, scm_url; additionalProperties false; scm_type git|local; tier 1|3|5.
    entry = json.loads((REPO / "SarcomaRisk.json").read_text(encoding="utf-8"))
    allowed = {"$schema": str, "category": str, "scm_url": str, "scm_revision": str, "scm_type": str,
               "build_dependencies": list, "build_subdirectory": str, "enabled": bool, "tier": int}
    assert {"$schema", "category", "scm_url"} <= set(entry)
    assert set(entry) <= set(allowed)
    for key, value in entry.items():
        assert isinstance(value, allowed[key]), key
    assert entry["$schema"].endswith("slicer-extension-catalog-entry-schema-v1.0.1.json#")
    assert entry.get("scm_type", "git") in ("git", "local")
    assert entry.get("tier", 5) in (1, 3, 5)
    assert all(isinstance(d, str) for d in entry.get("build_dependencies", []))
    sets = cmake_sets((REPO / "CMakeLists.txt").read_text(encoding="utf-8"))
    assert entry["build_dependencies"] == sets["EXTENSION_DEPENDS"]
    assert entry["category"] == sets["EXTENSION_CATEGORY"][0]


def test_icon_is_a_128_pixel_png():
    from PIL import Image

    with Image.open(MODULE_DIR / "Resources" / "Icons" / "SarcomaRisk.png") as icon:
        assert icon.format == "PNG" and icon.size == (128, 128)


def test_requirements_are_the_core_dependencies_that_slicer_does_not_provide():
    import tomllib

    def name(requirement: str) -> str:
        return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower()

    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    core = {name(r): r for r in pyproject["project"]["dependencies"]}
    lines = [line.strip() for line in (MODULE_DIR / "Resources" / "requirements.txt").read_text().splitlines()]
    listed = {name(line): line for line in lines if line and not line.startswith("#")}
    slicer_provides = {"numpy", "simpleitk", "torch", "torchvision"}
    assert set(listed) == set(core) - slicer_provides
    assert all(listed[n] == core[n] for n in listed), "versions differ from pyproject.toml"


# ---- module file ---------------------------------------------------------------------------------


def test_module_file_defines_the_four_classes_slicer_expects():
    classes = {node.name: [ast.unparse(b) for b in node.bases] for node in module_tree().body
               if isinstance(node, ast.ClassDef)}
    assert classes["SarcomaRisk"] == ["ScriptedLoadableModule"]
    assert classes["SarcomaRiskWidget"] == ["ScriptedLoadableModuleWidget", "VTKObservationMixin"]
    assert classes["SarcomaRiskLogic"] == ["ScriptedLoadableModuleLogic"]
    assert classes["SarcomaRiskTest"] == ["ScriptedLoadableModuleTest"]


def test_module_file_imports_nothing_heavy_at_load_time():
    """Slicer loads the module at startup: dependencies are installed at first use, not imported here."""
    top_level = set()
    for node in module_tree().body:
        if isinstance(node, ast.Import):
            top_level |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            top_level.add((node.module or "").split(".")[0])
    assert top_level & {"SarcomaRiskLib", "sarcoma_risk", "torch", "numpy", "SimpleITK", "PyTorchUtils"} == set()
    source = MODULE_FILE.read_text(encoding="utf-8")
    assert "pip_ensure" in source and "pip_install" in source and "installTorch" in source


def test_parameters_are_saved_with_the_scene_through_the_wrapper(wrapper_parameters):
    assert wrapper_parameters == {
        "caseId": "str", "t2Volume": "vtkMRMLScalarVolumeNode", "t1ceVolume": "vtkMRMLScalarVolumeNode",
        "segmentation": "vtkMRMLSegmentationNode", "segmentId": "str", "score": "float", "percentile": "float",
        "tumorVolumeMl": "float", "gradcamVolume": "vtkMRMLScalarVolumeNode", "gradcamSha256": "str"}


def test_module_uses_only_names_the_lib_has():
    import dataclasses

    import SarcomaRiskLib

    used = {node.attr for node in ast.walk(module_tree())
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            and node.value.id == "SarcomaRiskLib"}
    assert used and used <= set(SarcomaRiskLib.__all__)
    assert all(hasattr(SarcomaRiskLib, name) for name in used)

    # Attributes read from what the Lib returns: a result, a case status, the panel's decisions.
    owners = {"result": [SarcomaRiskLib.RadiologyResult], "status": [SarcomaRiskLib.CaseStatus],
              "controls": [SarcomaRiskLib.Controls], "labels": [SarcomaRiskLib.ResultLabels]}

    def has(cls, attr):
        return hasattr(cls, attr) or (dataclasses.is_dataclass(cls) and attr in {f.name for f in dataclasses.fields(cls)})

    for node in ast.walk(module_tree()):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in owners:
            assert any(has(cls, node.attr) for cls in owners[node.value.id]), f"{node.value.id}.{node.attr}"
    # What the widget calls on its workflow controller.
    for node in ast.walk(module_tree()):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
                and node.value.attr == "_workflow"):
            assert hasattr(SarcomaRiskLib.WorkflowController, node.attr), f"self._workflow.{node.attr}"


def test_the_widget_serves_every_call_the_workflow_controller_makes_on_its_view():
    """The widget is the controller's view inside Slicer, where no test here reaches it."""
    import inspect

    from SarcomaRiskLib import WorkflowView

    widget = next(node for node in module_tree().body
                  if isinstance(node, ast.ClassDef) and node.name == "SarcomaRiskWidget")
    methods = {item.name: [a.arg for a in item.args.args] for item in widget.body if isinstance(item, ast.FunctionDef)}
    asked = {name: list(inspect.signature(member).parameters) for name, member in vars(WorkflowView).items()
             if inspect.isfunction(member) and not name.startswith("_")}
    assert set(asked) == {"log", "show_log", "show_error", "running_changed", "scored", "record_changed"}
    for name, parameters in asked.items():
        assert methods.get(name) == parameters, f"SarcomaRiskWidget.{name} should take {parameters}"


def test_ui_file_binds_parameters_and_has_every_widget_the_module_uses(wrapper_parameters):
    root = ET.parse(UI_FILE).getroot()
    widgets = {w.get("name"): w.get("class") for w in root.iter("widget")}
    bound = {}
    for widget in root.iter("widget"):
        for prop in widget.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                bound[prop.find("string").text] = widget.get("class")
    assert set(bound) <= set(wrapper_parameters)
    assert bound == {"caseId": "QLineEdit", "t2Volume": "qMRMLNodeComboBox", "t1ceVolume": "qMRMLNodeComboBox"}
    used = {node.attr for node in ast.walk(module_tree())
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
            and node.value.attr == "ui" and isinstance(node.value.value, ast.Name) and node.value.value.id == "self"}
    assert used - set(widgets) == set(), "self.ui.<name> used in SarcomaRisk.py but absent from the .ui file"
    assert widgets["segmentSelector"] == "qMRMLSegmentSelectorWidget"


# ---- the Lib ---------------------------------------------------------------------------------------


def test_importing_the_lib_loads_no_qt_ctk_slicer_or_torch():
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import SarcomaRiskLib\n"
        "[getattr(SarcomaRiskLib, name) for name in SarcomaRiskLib.__all__]\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('qt', 'ctk', 'slicer', 'torch', 'vtk'))\n"
        "print(','.join(bad))\n")
    out = subprocess.run([sys.executable, "-c", code, str(MODULE_DIR)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_the_panel_decisions_import_without_the_core_package_and_the_rest_needs_it():
    """Before the first Compute installs the core (a source checkout), the widget still sets its controls."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); sys.modules['sarcoma_risk'] = None  # not installed\n"
        "from SarcomaRiskLib import panel_controls, result_labels\n"
        "print(panel_controls(case_id='STS-1', t2=object(), segmentation=object(), segment_id='1',"
        " running=False).compute_enabled, result_labels(gradcam_sha256='', score=0, percentile=0,"
        " tumor_volume_ml=0).score)\n"
        "try:\n    from SarcomaRiskLib import RadiologyScoring\nexcept ImportError:\n    print('needs the core')\n")
    out = subprocess.run([sys.executable, "-c", code, str(MODULE_DIR)], capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["True -", "needs the core"]


def test_the_lib_declares_each_public_name_once_for_static_tools_and_once_for_loading():
    """The TYPE_CHECKING imports of SarcomaRiskLib/__init__.py name what its first-use loader loads."""
    import SarcomaRiskLib

    tree = ast.parse((MODULE_DIR / "SarcomaRiskLib" / "__init__.py").read_text(encoding="utf-8"))
    block = next(node for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING")
    declared = {alias.name: node.module for node in block.body if isinstance(node, ast.ImportFrom)
                for alias in node.names}
    assert declared == SarcomaRiskLib._MODULE_OF
    assert sorted(declared) == SarcomaRiskLib.__all__
    with pytest.raises(AttributeError, match="has no attribute 'Nothing'"):
        SarcomaRiskLib.Nothing


def test_lib_source_never_reaches_for_slicer_singletons_or_qt():
    for path in sorted((MODULE_DIR / "SarcomaRiskLib").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert not any(n.split(".")[0] in ("qt", "ctk") for n in names), f"{path.name} imports Qt"
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "slicer":
                assert node.attr not in ("app", "mrmlScene", "modules"), f"{path.name} uses slicer.{node.attr}"
            if isinstance(node, ast.Attribute) and node.attr in ("errorDisplay", "infoDisplay", "confirmOkCancelDisplay",
                                                                  "delayDisplay", "loadVolume", "setSliceViewerLayers"):
                pytest.fail(f"{path.name} calls the GUI function {node.attr}")
