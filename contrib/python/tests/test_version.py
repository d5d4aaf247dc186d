"""The package version is the crate's version: ``Cargo.toml``'s ``[package] version``
must equal ``emonk_gateway.__version__`` (which ``pyproject.toml`` reads) and the
installed distribution's version."""

from __future__ import annotations

import re
from importlib.metadata import version

from gateway import REPO

import emonk_gateway


def crate_version() -> str:
    text = (REPO / "Cargo.toml").read_text()
    package = re.search(r"^\[package\]\s*$(.*?)(?=^\[|\Z)", text, re.M | re.S)
    assert package, "Cargo.toml has no [package] table"
    found = re.search(r'^version\s*=\s*"([^"]+)"', package.group(1), re.M)
    assert found, "Cargo.toml's [package] has no version"
    return found.group(1)


def test_the_package_version_is_the_crate_version() -> None:
    assert emonk_gateway.__version__ == crate_version(), (
        "bump contrib/python/src/emonk_gateway/_version.py to the version in Cargo.toml"
    )
    assert version("emonk-gateway") == emonk_gateway.__version__
