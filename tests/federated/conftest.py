"""Three phantom centres as fusion tables (no images), and the federated fit run in one process."""

from __future__ import annotations

import pytest

from sarcoma_risk.synthetic.tables import phantom_fusion_table


@pytest.fixture(scope="session")
def three_centres():
    """240 phantom cases over centres A, B, C, with simulated imaging scores."""
    return phantom_fusion_table(240, ("A", "B", "C"), seed=1)


def local_query(parts):
    """``query(op, request)`` that asks each centre's table directly (no transport)."""
    from sarcoma_risk.federated import centre

    return lambda op, request: {name: centre.answer(rows, request) for name, rows in parts.items()}


def split(table):
    return {str(name): rows for name, rows in table.groupby("centre")}
