"""The one exception type for problems a user can fix (bad input, bad config, refused model).

The CLI prints its message as one line on stderr and exits non-zero, with no traceback.
"""


class KfkitError(Exception):
    """A user-facing error: the message says what was wrong and where."""


def first_line(exc: BaseException) -> str:
    """An exception as one line: its message's first line, or its type when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
