"""Config, Stats and Credentials are records (no dataclasses at import) that still behave as the dataclasses they were.

The public API did not change: positional and keyword construction, equality, frozen fields, a repr without the
password, and ``dataclasses.fields``/``asdict``/``replace`` (which import dataclasses on first use only).
"""

from __future__ import annotations

import dataclasses
import pickle
import typing

import pytest

from serverless_mysql import Credentials, Stats
from serverless_mysql._record import fields
from serverless_mysql.config import CLIENT_OPTIONS, Config


def test_credentials_construct_compare_and_stay_frozen() -> None:
    creds = Credentials("u", "secret", "h", 3307)
    assert creds == Credentials(user="u", password="secret", host="h", port=3307)
    assert creds != Credentials(user="u", password="other", host="h", port=3307)
    assert creds.database is None and creds.connect_args == {}
    assert Credentials().connect_args is not Credentials().connect_args  # a fresh dict each time
    assert "secret" not in repr(creds) and repr(creds).startswith("Credentials(user='u', host='h'")
    with pytest.raises(dataclasses.FrozenInstanceError):
        creds.user = "x"  # type: ignore[misc]
    with pytest.raises(TypeError, match="unexpected keyword argument 'nope'"):
        Credentials(nope=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="multiple values for argument 'user'"):
        Credentials("u", user="v")  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(creds)) == creds


def test_dataclasses_functions_still_work() -> None:
    creds = Credentials(user="u", host="h")
    assert dataclasses.is_dataclass(creds)
    assert [f.name for f in dataclasses.fields(Credentials)] == [
        "user", "password", "host", "port", "database", "connect_args"
    ]  # fmt: skip
    assert dataclasses.replace(creds, host="r") == Credentials(user="u", host="r")
    stats = Stats(connects=2)
    assert dataclasses.asdict(stats)["connects"] == 2 and stats == Stats(connects=2)
    assert typing.get_type_hints(Stats)["last_utilization"] == float | None


def test_config_fields_carry_the_option_specs() -> None:
    names = [f.name for f in fields(Config) if f.name != "explicit"]
    assert names == [o.name for o in CLIENT_OPTIONS]
    config = Config.from_options(host="db", password="pw")
    assert "pw" not in repr(config) and config.host == "db"
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.host = "x"  # type: ignore[misc]
