"""The fixtures of tests/ (a real synod serve from SYNOD_BIN)."""

from tests.conftest import admin_client, pytest_configure, server, team  # noqa: F401
