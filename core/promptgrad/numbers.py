"""Numbers read back from a file (metrics.jsonl, facts.json, config.toml, sweep.toml, a checkpoint's step):
one parser, so a damaged number is refused the same way wherever it is read.

JSON and TOML hold integers of any length, and Python's own `float(value)` of a 400-digit integer raises
OverflowError, which no reader expected; NaN and infinity parse as floats. So every number read back goes
through `read_int` or `read_float`, which raise `DamagedNumber` (a ValueError and a TypeError, which every
reader of a record already takes as "this line or file is damaged"): a number that is not one (a string, a bool), an
integer beyond what a 64-bit count holds (torch, numpy and the TUI's chart all need that), a float beyond
the float range, or NaN or infinity where the value cannot be one (an accuracy; a diverged run's loss can).
"""

from __future__ import annotations

import math
from typing import Any

LARGEST_INT = 2**63 - 1  # steps, pair counts, token ids: what a 64-bit integer holds


class DamagedNumber(ValueError, TypeError):
    """A number read back from a file is not a usable one; the message says where and what it held. Both
    a ValueError and a TypeError: every reader of a record takes either as "damaged", as before."""


def shown(value: Any) -> str:
    """The value as a message can show it: a 400-digit integer cut short, never printed whole."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"an integer of {len(str(abs(value))) if value.bit_length() < 14000 else 'thousands of'} digits"
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:36]}..."


def read_int(value: Any, where: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise DamagedNumber(f"{where} is {shown(value)}, not a whole number")
    if abs(value) > LARGEST_INT:
        raise DamagedNumber(f"{where} is {shown(value)}, beyond any count promptgrad writes")
    return value


def read_float(value: Any, where: str, finite: bool = False) -> float:
    """A float from an int or a float; `finite`: NaN and infinity are damage too."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise DamagedNumber(f"{where} is {shown(value)}, not a number")
    try:
        number = float(value)
    except OverflowError:  # an integer too long for a float
        raise DamagedNumber(f"{where} is {shown(value)}, beyond the range of a float") from None
    if finite and not math.isfinite(number):
        raise DamagedNumber(f"{where} is {shown(value)}, which it can never be")
    return number


def read_plain(value: Any, where: str) -> Any:
    """`value` of a TOML or JSON document with every number in it checked (ints as counts, floats finite):
    for files of settings, where no number may be infinite or beyond a 64-bit count."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return read_int(value, where)
    if isinstance(value, float):
        return read_float(value, where, finite=True)
    if isinstance(value, dict):
        return {k: read_plain(v, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [read_plain(v, where) for v in value]
    return value
