"""Storage sizes: Kubernetes resource quantities in and out, and how LINSTOR rounds a requested size.

Shared by the CDI and snapshot simulators; pure functions only.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

_SUFFIXES: dict[str, int | Decimal] = {
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
    "Ei": 2**60,
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
}
_QUANTITY = re.compile(r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E))?$")
_BINARY_UNITS = ("", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei")

# linstor-csi's AllocationSizeKiB: at least 4 KiB, and always whole KiB (1025 bytes take 2 KiB).
LINSTOR_MINIMUM_BYTES = 4096
KIB = 1024


class QuantityError(ValueError):
    """Not a Kubernetes quantity."""


def parse_quantity(value: str | int | float) -> int:
    """Bytes in a quantity such as "10Gi", "1.5G", "1e3" or 1024; fractions of a byte round up, as Value() does."""
    if isinstance(value, bool):
        raise QuantityError(f"not a quantity: {value!r}")
    if isinstance(value, int):
        return value
    text = str(value).strip()
    match = _QUANTITY.match(text)
    if match is None:
        raise QuantityError(f"not a quantity: {value!r}")
    number, exponent, suffix = match.groups()
    try:
        amount = Decimal(number) * (Decimal(10) ** int(exponent[1:]) if exponent else Decimal(_SUFFIXES[suffix or ""]))
    except InvalidOperation as error:
        raise QuantityError(f"not a quantity: {value!r}") from error
    return math.ceil(amount)


def format_binary(size: int) -> str:
    """The canonical text of a byte count as a binary-SI quantity: 1073741824 -> "1Gi", 1536 -> "1536"."""
    if size < 0:
        return "-" + format_binary(-size)
    unit = 0
    while size and size % KIB == 0 and unit < len(_BINARY_UNITS) - 1:
        size //= KIB
        unit += 1
    return f"{size}{_BINARY_UNITS[unit]}"


def linstor_volume_size(requested: int) -> int:
    """Bytes LINSTOR allocates (and linstor-csi reports as capacity) for a request of `requested` bytes."""
    return max(LINSTOR_MINIMUM_BYTES, math.ceil(requested / KIB) * KIB)
