"""SarcomaRisk: recurrence risk after surgery for soft tissue sarcoma.

The core package (source folder ``core/``, imported as ``sarcoma_risk``) holds everything that is
not an adapter: the case record store, clinical variables, the radiology and pathology pipelines,
Cox fusion and the phantom cohort generator. Importing it is cheap: torch, OpenSlide and the like
are imported only by the functions that use them.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("sarcoma-risk")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
