"""SarcomaRiskLib: the logic of the SarcomaRisk Slicer module, free of Qt and Slicer singletons.

Everything takes the MRML scene and nodes as arguments (never ``slicer.mrmlScene`` or
``slicer.app``), so it runs in Slicer and, for tests, on a plain slicer-core scene. The heavy work
(the model) runs in a separate process through the ``sarcoma-risk`` command line.
"""

from .errors import ScoringCancelled, ScoringFailed, ScoringTimeout
from .export import ExportedInputs, export_inputs
from .overlay import PREFERRED_COLORMAPS, choose_colormap, find_gradcam_node, load_gradcam, show_overlay
from .runner import CliProcess, default_python_executable
from .status import CaseStatus, describe_fusion, list_case_ids, read_case_status
from .validation import ScoringInputs, check_inputs
from .workflow import DEFAULT_TIMEOUT_S, RadiologyResult, RadiologyScoring, start_fusion

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "PREFERRED_COLORMAPS",
    "CaseStatus",
    "CliProcess",
    "ExportedInputs",
    "RadiologyResult",
    "RadiologyScoring",
    "ScoringCancelled",
    "ScoringFailed",
    "ScoringInputs",
    "ScoringTimeout",
    "check_inputs",
    "choose_colormap",
    "default_python_executable",
    "describe_fusion",
    "export_inputs",
    "find_gradcam_node",
    "list_case_ids",
    "load_gradcam",
    "read_case_status",
    "show_overlay",
    "start_fusion",
]
