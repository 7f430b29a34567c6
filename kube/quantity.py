"""Kubernetes resource quantities (`1Gi`, `500M`, `1073741824`, `1.5Gi`) as whole numbers of bytes."""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

_SUFFIXES: dict[str, int | Decimal] = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
    "m": Decimal("0.001"),
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]*)$")


def parse_quantity(value: str | int | float) -> int:
    """Bytes, rounded up (a quantity never shrinks when converted)."""
    if isinstance(value, int):
        return value
    match = _QUANTITY.match(str(value).strip())
    if not match or match.group(2) not in _SUFFIXES:
        raise ValueError(f"not a quantity: {value!r}")
    try:
        number = Decimal(match.group(1)) * Decimal(_SUFFIXES[match.group(2)])
    except InvalidOperation as error:
        raise ValueError(f"not a quantity: {value!r}") from error
    return math.ceil(number)
