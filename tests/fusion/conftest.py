"""Fixtures of the fusion tests: seeded synthetic development and validation tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from .fusion_synthetic import FAST, make_table

from sarcoma_risk.fusion.model import CoxFusion


@pytest.fixture(scope="session")
def development_table() -> tuple[pd.DataFrame, np.ndarray]:
    return make_table(240, seed=1, missing_radiology=0.1, missing_pathology=0.15, missing_clinical=0.05)


@pytest.fixture(scope="session")
def validation_table() -> tuple[pd.DataFrame, np.ndarray]:
    return make_table(200, seed=2, missing_radiology=0.1, missing_pathology=0.1, split="validation")


@pytest.fixture(scope="session")
def fitted(development_table) -> CoxFusion:
    """A CoxFusion fitted on the development table (all seven sub-models)."""
    return CoxFusion(**FAST).fit(development_table[0])
