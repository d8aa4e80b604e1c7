"""Errors meant for the person at the keyboard: one line that names the problem and the fix.

The CLI prints them without a traceback and exits with code 2; the service (later)
turns them into 4xx answers. Anything else escaping is a bug.
"""


class UserFacingError(Exception):
    """A problem with the user's input, files or configuration, described in one line."""
