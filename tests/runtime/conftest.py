"""A small simulated site on free loopback ports, and a stepped runtime around it."""

from __future__ import annotations

from pathlib import Path

import pytest
from small_site import small_site_doc, write_site

from cems.config import load_site
from cems.config.model import SiteConfig


def small_site(tmp_path: Path) -> Path:
    """The small test site (see :mod:`small_site`) written to ``tmp_path``."""
    return write_site(small_site_doc(), tmp_path)


@pytest.fixture
def small_site_path(tmp_path: Path) -> Path:
    return small_site(tmp_path)


@pytest.fixture
def small_config(small_site_path: Path) -> SiteConfig:
    return load_site(small_site_path)
