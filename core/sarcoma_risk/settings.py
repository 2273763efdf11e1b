"""Where things live by default: the case store and the weights folder."""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_data_dir

STORE_ENV = "SARCOMA_RISK_STORE"
WEIGHTS_ENV = "SARCOMA_RISK_WEIGHTS"


def default_store() -> str | Path:
    """``$SARCOMA_RISK_STORE`` (a path or a store URL) if set, else ``cases.sqlite`` in the per-user data folder."""
    env = os.environ.get(STORE_ENV, "").strip()
    if env:
        return env

    return Path(user_data_dir("SarcomaRisk", appauthor=False)) / "cases.sqlite"


def default_weights_dir() -> Path:
    """``$SARCOMA_RISK_WEIGHTS`` if set, else the shipped ``weights/`` folder.

    That folder sits beside the package in an installed Slicer extension (``<lib>/sarcoma_risk``,
    ``<lib>/weights``) and at the top of a source checkout (``core/sarcoma_risk``, ``weights``).
    """
    env = os.environ.get(WEIGHTS_ENV)
    if env:
        return Path(env).expanduser()
    package = Path(__file__).resolve().parent
    beside, checkout = package.parent / "weights", package.parents[1] / "weights"
    return beside if beside.is_dir() or not checkout.is_dir() else checkout
