"""The reports' hand-solvable site and its seeded store (:mod:`reports_site`) as fixtures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from reports_site import SITE_YAML, seed_store


@pytest.fixture(scope="session")
def seeded_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Path of the test site YAML whose data directory holds the seeded store."""
    root = tmp_path_factory.mktemp("report_site")
    site = root / "site.yaml"
    site.write_text(SITE_YAML, encoding="utf-8")
    seed_store(root / "data")
    yield site
