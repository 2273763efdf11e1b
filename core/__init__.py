"""``core/`` is the source folder that holds the ``sarcoma_risk`` package; it is not a package itself.

Without this guard, ``import core`` from the repository root would succeed as a namespace package
and ``import core.sarcoma_risk.errors`` would load a second copy of every module (with exception
classes that are not the installed ones).
"""

raise ImportError("core/ is a source folder, not a package: import sarcoma_risk (core/sarcoma_risk) instead")
