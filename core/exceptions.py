"""Errors raised for bad input: the message names the problem so a user can fix the file."""


class InputError(Exception):
    """A user-supplied file or option is unusable; str(error) says which and why."""
