"""The domain's errors: one tree, mapped once by each front end.

    OutboxError          the root: an error the caller can act on; `message` says what
    ├── NotFound         what was named does not exist, or is not the caller's to see
    ├── Conflict         the request is sound, but the state of things refuses it now
    ├── Invalid          the input is wrong; the message names what and why
    │   └── InvalidParameter   one named input (`parameter`) has a value that means nothing
    ├── Forbidden        the caller may not do this
    └── Unavailable      something the service depends on (the database) cannot be reached
                         now; trying again later may work (`retry_after_seconds`)

Every domain error derives from one of the five kinds, and is raised with the most specific
class (as httpx does with its exception tree).  No error here knows about HTTP: the API maps
the kinds to status codes and the legacy error shape (`api/errors.py`), the dashboard to HTML
pages (`web/errors.py`), the CLI to a one-line message and an exit code (`cli/common.py`).
Messages never carry patient data: they are shown to callers and written to logs.

Wording: a `message` is shown as is, except an `Invalid` one, which is a clause naming the part
and the problem ("from is not before to", "unknown system(s): X") that each front end frames:
the HTTP front ends as ASP.NET Web API words a bad request ("The request is invalid: <message>.")
and the CLI as ``error: <message>``.  So the domain never writes a front end's wording.
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
    """The input is wrong.  `message` names the part and the problem, in plain words, as a
    clause without a final period (the front ends frame it; see the module doc)."""


class InvalidParameter(Invalid):
    """One named input (a query parameter, a path segment, a form field) cannot mean anything.

    `parameter` is its name as the caller sent it, `problem` what is wrong, phrased to follow
    the name ("is not a GUID"): `message` is ``"<parameter> <problem>"``, and a front end may
    use the two parts to word it its own way (the dashboard names the form field).  Neither
    part ever echoes the value sent.
    """

    def __init__(self, parameter: str, problem: str) -> None:
        super().__init__(f"{parameter} {problem}")
        self.parameter = parameter
        self.problem = problem


class Forbidden(OutboxError):
    """The caller is known but may not do this."""


class Unavailable(OutboxError):
    """A dependency cannot be reached now; the same request may work after a while."""

    def __init__(self, message: str, *, retry_after_seconds: int = 5) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds
