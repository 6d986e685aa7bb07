"""The one exception type the CLI turns into a one-line message.

Anything the user can get wrong (a path, an option, a file) raises ``BauError`` with a message that
names the offending file or option and what was expected; ``bau`` prints it as ``error: ...`` and
exits with status 2 instead of showing a traceback.
"""


class BauError(Exception):
    """A user-facing error: bad input, missing file, malformed option."""
