"""SarcomaRiskLib: the logic of the SarcomaRisk Slicer module, free of Qt and Slicer singletons.

Everything takes the MRML scene and nodes as arguments (never ``slicer.mrmlScene`` or
``slicer.app``), so it runs in Slicer and, for tests, on a plain slicer-core scene. The heavy work
(the model) runs in a separate process through the ``sarcoma-risk`` command line.

Each name is imported on first use (PEP 562). The widget asks :mod:`.panel` what the controls show
before the core package ``sarcoma_risk`` may be installed (a source checkout, before the first
Compute), so importing this package must not import the modules that need the core.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # what static tools read; at run time __getattr__ below loads the same names
    from .controller import WorkflowController, WorkflowView
    from .errors import ScoringCancelled, ScoringFailed, ScoringTimeout
    from .export import ExportedInputs, export_inputs
    from .overlay import diverging_color_table, find_gradcam_node, load_gradcam, show_overlay
    from .panel import Controls, ResultLabels, guess_volumes, panel_controls, result_labels
    from .runner import CliProcess, default_python_executable
    from .status import CaseStatus, describe_fusion, list_case_ids, read_case_status
    from .validation import ScoringInputs, check_inputs
    from .workflow import DEFAULT_TIMEOUT_S, RadiologyResult, RadiologyScoring, start_fusion

#: Public name -> the module of this package that defines it.
_MODULE_OF = {
    **dict.fromkeys(("WorkflowController", "WorkflowView"), "controller"),
    **dict.fromkeys(("ScoringCancelled", "ScoringFailed", "ScoringTimeout"), "errors"),
    **dict.fromkeys(("ExportedInputs", "export_inputs"), "export"),
    **dict.fromkeys(("diverging_color_table", "find_gradcam_node", "load_gradcam", "show_overlay"), "overlay"),
    **dict.fromkeys(("Controls", "ResultLabels", "guess_volumes", "panel_controls", "result_labels"), "panel"),
    **dict.fromkeys(("CliProcess", "default_python_executable"), "runner"),
    **dict.fromkeys(("CaseStatus", "describe_fusion", "list_case_ids", "read_case_status"), "status"),
    **dict.fromkeys(("ScoringInputs", "check_inputs"), "validation"),
    **dict.fromkeys(("DEFAULT_TIMEOUT_S", "RadiologyResult", "RadiologyScoring", "start_fusion"), "workflow"),
}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups find it without coming here
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_MODULE_OF))
