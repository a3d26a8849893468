"""The domain's errors: one tree, mapped once by each front end.

    OutboxError          the root: an error the caller can act on; `message` is shown as is
    ├── NotFound         what was named does not exist, or is not the caller's to see
    ├── Conflict         the request is sound, but the state of things refuses it now
    ├── Invalid          the input is wrong; the message names what and why
    ├── Forbidden        the caller may not do this
    └── Unavailable      something the service depends on (the database) cannot be reached
                         now; trying again later may work (`retry_after_seconds`)

Every domain error derives from one of the five kinds, and is raised with the most specific
class (as httpx does with its exception tree).  No error here knows about HTTP: the API maps
the kinds to status codes and the legacy error shape (`api/errors.py`), the dashboard to HTML
pages (`web/errors.py`), the CLI to a one-line message and an exit code (`cli/common.py`).
Messages never carry patient data: they are shown to callers and written to logs.
"""

from __future__ import annotations


class OutboxError(Exception):
    """The root of the tree.  Catch this to handle every error a caller can act on."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(OutboxError):
    """The thing named does not exist, or the caller may not know whether it does."""


class Conflict(OutboxError):
    """The request is well formed, but the current state refuses it (try later, or change it)."""


class Invalid(OutboxError):
    """The input is wrong.  `message` names the part and the problem, in plain words."""


class Forbidden(OutboxError):
    """The caller is known but may not do this."""


class Unavailable(OutboxError):
    """A dependency cannot be reached now; the same request may work after a while."""

    def __init__(self, message: str, *, retry_after_seconds: int = 5) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds
