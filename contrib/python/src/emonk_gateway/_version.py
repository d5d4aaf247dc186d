"""The package version: always the emonkd crate's version (``Cargo.toml``), so a client
and a gateway of one release are recognisable as such (``clientVersion`` in ``connect``).
``tests/test_version.py`` fails CI when the two differ."""

__version__ = "0.1.0"
