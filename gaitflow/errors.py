"""The one exception type that reaches the user as a single line.

Library code raises :class:`GaitflowError` with a message that names the file
or key, what was wrong and what is expected; the CLI prints it and exits
non-zero instead of showing a traceback.
"""


class GaitflowError(Exception):
    """A problem with the user's input, reported as one clear line."""
