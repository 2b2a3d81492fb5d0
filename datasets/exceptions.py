"""Errors raised for bad input (the one InputError of core.exceptions, where the datasets app names it)."""
from core.exceptions import InputError

__all__ = ["InputError"]
