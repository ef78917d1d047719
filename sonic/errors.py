"""The one error class of a user's mistake.

:class:`InputError` is raised where an input given by the user — a file, a folder, an option's value, a config key —
is missing or cannot be used, with a message that names it and says what is wrong. The ``sonic`` command prints such
an error as one line on stderr and exits 2 (so do the operating system's "no such file", "is a directory", "not a
directory" and "permission denied"); any other exception that escapes a command is a bug and keeps its traceback.
``sonic -v <command>`` shows the traceback of an input error too.
"""

from __future__ import annotations

import json
from pathlib import Path


class InputError(ValueError):
    """A user's input (file, folder, option value, config key) is missing or wrong; the message names it."""


# The operating system's errors about a path the user gave: one line and exit 2 as well.
PATH_ERRORS = (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError)


def one_line(err: BaseException) -> str:
    """The message of an input error on one line: an OS error as ``<path>: <reason>`` (or the message it was raised
    with), anything else as its text with line breaks folded."""
    if isinstance(err, OSError) and err.filename is not None and err.strerror:
        return f"{err.filename}: {err.strerror}"
    return " ".join(str(err).split()) or err.__class__.__name__


def read_json(path: str | Path, what: str = "JSON file"):
    """The parsed content of a user's JSON file (a score file, a weights config); missing -> FileNotFoundError,
    not JSON -> :class:`InputError`, each naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(2, f"no such {what}", str(path))
    try:
        return json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{path}: not a {what} ({err})") from err
