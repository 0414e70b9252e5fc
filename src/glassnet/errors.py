"""The one exception the CLI reports politely: a mistake in the user's input."""

__all__ = ["UserError", "DivergedError", "require"]


class UserError(Exception):
    """Bad input from the user (a file, an option); the message names it and what was expected."""


class DivergedError(RuntimeError):
    """Training produced a non-finite loss; searches score such a candidate as failed (NaN)."""


def require(checks: list[tuple[bool, str]]) -> None:
    """Raise UserError with the message of the first check that is False."""
    for ok, message in checks:
        if not ok:
            raise UserError(message)
