"""The one kind of error a staff request can meet: the hotline refused it, said why, and changed nothing.

The CLI turns it into a message and exit 1, the API into a JSON 4xx, the console into a form error. Anything
else is a fault (logged, 500 at most); a Refused is the user's to fix.
"""


class Refused(ValueError):
    """A request the hotline will not carry out (bad input, a state that forbids it); nothing was changed."""


class NotFound(Refused):
    """The thing a request names does not exist (the API answers 404)."""


class Conflict(Refused):
    """The request is well formed, but the current state forbids it, e.g. publishing what is published
    already (the API answers 409)."""


class Unprocessable(Refused):
    """Well formed, but not something that can be carried out as given, e.g. a time that has passed or a date
    that does not exist (the API answers 422)."""
