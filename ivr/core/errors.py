"""The one kind of error a staff request can meet: the hotline refused it, said why, and changed nothing.

The CLI turns it into a message and exit 1, the API into a JSON 4xx, the console into a form error. Anything
else is a fault (logged, 500 at most); a Refused is the user's to fix.
"""


class Refused(ValueError):
    """A request the hotline will not carry out (bad input, a state that forbids it); nothing was changed."""
