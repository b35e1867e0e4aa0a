"""The client and engine of the SQLAlchemy tests (test_sqlalchemy*.py import them, as pytest finds fixtures)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from harness.mariadb import AppUser
from serverless_mysql import ServerlessMySQL
from serverless_mysql.sqlalchemy import create_engine
from tests.integration.conftest import ClientFactory


@pytest.fixture
def db(app_user: AppUser, client_factory: ClientFactory) -> ServerlessMySQL:
    """A client for a fresh app user, not connected yet (terminated at teardown)."""
    return client_factory(app_user)


@pytest.fixture
def engine(db: ServerlessMySQL) -> Engine:
    """``db``'s engine: the one :func:`serverless_mysql.sqlalchemy.create_engine` returns for that client."""
    return create_engine(db)
