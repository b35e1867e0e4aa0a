"""The text protocol's rows cut by hand (``_wire``): what housekeeping's ``SHOW PROCESSLIST`` reads."""

from __future__ import annotations

import pytest

from serverless_mysql._wire import column_name, pick


def lenenc(value: bytes | None) -> bytes:
    """A length-encoded string as the server sends it."""
    if value is None:
        return b"\xfb"
    n = len(value)
    if n < 251:
        return bytes([n]) + value
    if n < 1 << 16:
        return b"\xfc" + n.to_bytes(2, "little") + value
    if n < 1 << 24:
        return b"\xfd" + n.to_bytes(3, "little") + value
    return b"\xfe" + n.to_bytes(8, "little") + value


def test_pick_cuts_the_wanted_columns_in_the_order_asked() -> None:
    info = b"x" * 300  # a 2-byte length
    data = b"".join(lenenc(v) for v in (b"42", b"app", b"10.0.0.1:5", None, b"Sleep", b"7", b"", info))
    assert pick(data, (0, 1, 4, 5)) == (b"42", b"app", b"Sleep", b"7")
    assert pick(data, (5, 0)) == (b"7", b"42")
    assert pick(data, (3, 6, 7)) == (None, b"", info)


def test_long_values_use_the_wider_lengths() -> None:
    big = b"y" * 70_000  # a 3-byte length
    assert pick(lenenc(big) + lenenc(b"1"), (0, 1)) == (big, b"1")
    assert pick(b"\xfe" + (2).to_bytes(8, "little") + b"ab", (0,)) == (b"ab",)


def test_a_short_or_broken_row_is_an_error_not_a_wrong_count() -> None:
    with pytest.raises(ValueError, match="a row of 2 columns; column 4 wanted"):
        pick(lenenc(b"1") + lenenc(b"app"), (0, 4))
    with pytest.raises(ValueError, match="first byte 0xff"):
        pick(b"\xff\x00", (0,))


def test_a_column_definition_gives_its_name() -> None:
    definition = b"".join(lenenc(v) for v in (b"def", b"", b"", b"", b"Command", b"COMMAND")) + b"\x0c" + bytes(12)
    assert column_name(definition) == "Command"
