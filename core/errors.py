"""The one exception type for mistakes a user can fix (bad flags, files, templates).

The command line turns it into a one-line message and exit status 2; the TUI shows it beside the form
field it names. Anything else that goes wrong is a bug or a runtime failure and is reported as such.
"""


class UserError(Exception):
    """Bad input: the message says what was wrong and how to fix it, in one line."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field  # the config field at fault, so a form can flag it
