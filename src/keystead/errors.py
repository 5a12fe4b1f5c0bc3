"""Domain errors, raised by services and turned into wire formats by each adapter.

The tree::

    KeysteadError                 root; adapters catch this at the boundary
    ├── InvalidInput              the request is well-formed but a value is not acceptable
    │   └── BadRequest            the request itself is malformed (wire-level: 400)
    ├── NotFound                  the named object does not exist (in the caller's account)
    ├── Conflict                  the change collides with existing state (uniqueness, in use)
    │   └── FollowsDirectory      an auto-provisioned key was edited by hand
    ├── Unauthenticated           no credentials, or credentials that do not verify
    ├── Forbidden                 authenticated, but not allowed to do this
    ├── TooManyRequests           the caller must wait (``retry_after`` seconds) before trying again
    ├── MethodNotAllowed          the path exists, not for this method (``allowed``: those it takes)
    ├── Unavailable               the database cannot be reached (or is too busy): try again shortly
    ├── Internal                  Keystead's own fault: the caller gets a reference, the log all
    └── ConfigurationError        the service cannot start with the configuration it was given

Each class carries an HTTP-ish ``status`` so adapters need no lookup table of their
own; adapters remain free to render it differently (the CLI prints it, SCIM wraps it).
"""

from __future__ import annotations


class KeysteadError(Exception):
    """Root of every error Keystead raises on purpose."""

    status: int = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(KeysteadError):
    """A value in the request is not acceptable. ``fields`` names, where known, the
    field(s) at fault and the fix for each (a form shows them under its fields)."""

    status = 422

    def __init__(self, message: str, *, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.fields = fields or {}


class BadRequest(InvalidInput):
    """The request is malformed: not JSON, wrong types, a missing or garbled parameter."""

    status = 400


class NotFound(KeysteadError):
    status = 404


class Conflict(KeysteadError):
    status = 409


class FollowsDirectory(Conflict):
    """An auto-provisioned API key may only be changed by directory sync."""


class Unauthenticated(KeysteadError):
    status = 401


class Forbidden(KeysteadError):
    status = 403


class TooManyRequests(KeysteadError):
    status = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class MethodNotAllowed(KeysteadError):
    status = 405

    def __init__(self, message: str, *, allowed: tuple[str, ...]) -> None:
        super().__init__(message)
        self.allowed = allowed


class Unavailable(KeysteadError):
    """The database cannot be reached, or stayed busy past the wait: nothing was done."""

    status = 503


class Internal(KeysteadError):
    """An unexpected failure, already logged under ``reference``."""

    status = 500

    def __init__(self, reference: str) -> None:
        super().__init__(f"internal error (reference {reference})")


class ConfigurationError(KeysteadError):
    status = 500


def is_internal(exc: KeysteadError) -> bool:
    """Whether the error is Keystead's own fault (a 500 with a reference), not an answer."""
    return exc.status >= 500 and not isinstance(exc, Unavailable)
