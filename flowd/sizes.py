"""Byte sizes in settings: a plain number of bytes, or a number with a unit (`500MB`, `2GB`,
`1.5GiB`). Decimal units are powers of 1000 and binary ones (KiB, MiB, GiB, TiB) of 1024,
as disk sizes are sold and reported."""

from __future__ import annotations

import re

_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
          "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*")
MESSAGE = "must be a size in bytes such as 2000000000 or 2GB (KB, MB, GB, TB, KiB, MiB, GiB, TiB)"


def parse_size(text: str | int) -> int:
    """Bytes of `text`; ValueError with a user-facing message when it is not a size."""
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 0:
            raise ValueError(MESSAGE)
        return text
    match = _SIZE.fullmatch(text) if isinstance(text, str) and len(text) <= 32 else None
    if match is None or match.group(2).upper() not in _UNITS:
        raise ValueError(MESSAGE)
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])
