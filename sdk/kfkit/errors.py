"""The one exception type for problems a user can fix (bad input, bad config, refused model).

The CLI prints its message as one line on stderr and exits non-zero, with no traceback.
"""


class KfkitError(Exception):
    """A user-facing error: the message says what was wrong and where."""
