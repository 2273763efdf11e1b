"""``python -m sarcoma_risk.cli``: the same as the ``sarcoma-risk`` command (used by the Slicer module's subprocess)."""

import sys

from sarcoma_risk.cli import main

sys.exit(main())
