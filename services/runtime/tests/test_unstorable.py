"""What the worker does with data PostgreSQL refuses (a NUL character in a string): it is the
message's fault, not "the database is away", and a failure's own text is made storable. The
live path, two workspaces, is test_flow_tenancy.py; the ledger's side is test_ledger.py."""

from __future__ import annotations

import asyncpg
from sqlalchemy.exc import DBAPIError, OperationalError

from modyard.runtime.components.base import without_nul
from modyard.runtime.engine import worker


class _Adapted(Exception):
    """What SQLAlchemy's asyncpg dialect raises under its DBAPIError: the SQLSTATE kept."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def test_data_the_database_refuses_is_the_messages_fault() -> None:
    refused = asyncpg.exceptions.UntranslatableCharacterError("\\u0000 cannot be converted")
    assert worker._unstorable(refused)
    assert worker._unstorable(DBAPIError("INSERT", {}, _Adapted("22P05")))
    assert worker._unstorable(DBAPIError("INSERT", {}, _Adapted("22021")))


def test_a_database_away_or_another_error_is_not() -> None:
    assert not worker._unstorable(asyncpg.exceptions.CannotConnectNowError("starting up"))
    assert not worker._unstorable(OperationalError("INSERT", {}, _Adapted("57P01")))
    assert not worker._unstorable(DBAPIError("INSERT", {}, _Adapted("23503")))  # a foreign key
    assert not worker._unstorable(ValueError("\x00"))


def test_a_failures_text_loses_its_nul_characters_and_keeps_everything_else() -> None:
    details = {"body": "a\x00b", "list": ["\x00", 1, None], "n": 2, "key\x00": True}
    assert without_nul("before\x00after") == "before\ufffdafter"
    assert without_nul(details) == {
        "body": "a\ufffdb",
        "list": ["\ufffd", 1, None],
        "n": 2,
        "key\ufffd": True,
    }
    assert without_nul("clean") == "clean"
    assert without_nul(None) is None
