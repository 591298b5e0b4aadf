"""How kfkit reads one value as a number or a date: the same rules at ingest, in training and
in serving, so ``"16,800.00"`` is 16800.0 whether it came from a CSV, a Parquet string column
or a prediction request.

Imported by the serving process, whose environment has only numpy, pandas, scikit-learn and
seldon-core beside kfkit's sdk: standard library only.
"""

from __future__ import annotations

import datetime as dt
import numbers
import re
from collections.abc import Iterable
from typing import Any

# A number as people write it, in one pattern (one regex call per value: ingest runs it on every
# value of a text column). Plain decimal notation, not Python's float() syntax, which also takes
# "nan", "inf" and "1_000"; thousands groups only when they cannot mean anything else: 1 to 3
# digits, then groups of exactly three ("1,5", a decimal comma, and "12,34" stay text); one leading
# currency sign after an optional sign ("$1,200.50", "-€3"): in front of a number it says nothing
# but the unit, while a trailing or embedded one ("12 EUR", "3$") stays text.
# The patterns are public so that ingest can run them column-wise (RE2 in Arrow reads them alike).
NUMBER_PATTERN = (
    r"^\s*([+-]?)[$€£¥]?(?:(\d{1,3}(?:,\d{3})+(?:\.\d+)?)|((?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?))\s*$"
)
_NUMBER = re.compile(NUMBER_PATTERN)
# A code, not a quantity: "007", "02134" (zip codes, account numbers lose meaning as numbers).
LEADING_ZERO_PATTERN = r"^\s*[+-]?[$€£¥]?0\d"
_LEADING_ZERO = re.compile(LEADING_ZERO_PATTERN)
# ISO 8601 calendar dates and date-times as people and databases write them (not week or
# ordinal dates, not the basic "20240105" form, which is also an integer).
ISO_DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$"
_ISO_DATE = re.compile(ISO_DATE_PATTERN)
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_SECONDS_PER_DAY = 86400.0


def parse_number(text: str) -> float | None:
    """The number a text holds ("1000.00", " 1000 ", "1,000.00", "$1,000"), or None if it is
    not one. Surrounding spaces are ignored; "nan", "inf" and other words are not numbers."""
    found = _NUMBER.match(text)
    if found is None:
        return None
    sign, grouped, plain = found.groups()
    return float(sign + (plain if grouped is None else grouped.replace(",", "")))


def number_of(value: Any) -> float | None:
    """A number (not a bool) as float, a text as :func:`parse_number` reads it, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, str):
        return parse_number(value)
    return None


def is_code(text: str) -> bool:
    """A number-looking text with a leading zero ("007"): an identifier, kept as text."""
    return bool(_LEADING_ZERO.match(text))


def parse_datetime(value: Any) -> dt.datetime | None:
    """A date or date-time (an ISO 8601 text, ``datetime.date`` or ``datetime.datetime``, which
    pandas' Timestamp is) as a datetime; naive ones are read as UTC. None if it is neither."""
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, dt.date):
        moment = dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        text = value.strip()
        if not _ISO_DATE.match(text):
            return None
        try:
            moment = dt.datetime.fromisoformat(_microseconds(text))
        except ValueError:  # "2024-02-30": the shape of a date, not a date
            return None
    else:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _microseconds(text: str) -> str:
    """fromisoformat takes at most 6 fraction digits; databases write up to 9."""
    return re.sub(r"(\.\d{6})\d+", r"\1", text)


def days_since_epoch(value: Any) -> float | None:
    """A date feature's number: days since 1970-01-01 UTC (fractions for the time of day)."""
    moment = parse_datetime(value)
    if moment is None:
        return None
    return (moment - _EPOCH).total_seconds() / _SECONDS_PER_DAY


def date_texts(values: Iterable[Any]) -> list[str | None] | None:
    """One column of dates as one text form, or None if some non-missing value is not a date.

    Date-only when every value falls at midnight UTC (``YYYY-MM-DD``, what a Parquet date and a
    CSV "2024-01-05" both become), else ``YYYY-MM-DDTHH:MM:SS[.ffffff]`` in UTC. The same table as
    CSV or Parquet then reads as the same text, so its rows hash to the same split."""
    moments: list[dt.datetime | None] = []
    for value in values:
        if value is None:
            moments.append(None)
            continue
        moment = parse_datetime(value)
        if moment is None:
            return None
        moments.append(moment.astimezone(dt.UTC))
    present = [m for m in moments if m is not None]
    if not present:
        return None
    date_only = all(m.time() == dt.time(0) for m in present)
    fraction = any(m.microsecond for m in present)
    return [None if m is None else date_text(m, date_only, fraction) for m in moments]


def date_text(moment: dt.datetime, date_only: bool, fraction: bool) -> str:
    """One UTC moment in its column's text form: ``date_only`` when every value of the column is
    at midnight, ``fraction`` when some value has microseconds (then all show six digits)."""
    if date_only:
        return moment.strftime("%Y-%m-%d")
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f" if fraction else "%Y-%m-%dT%H:%M:%S")
