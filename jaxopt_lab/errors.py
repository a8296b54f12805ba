"""Typed errors for bad input.

Every check of a user's argument raises an :class:`InputError`: a
:class:`InputValueError` for a value out of range or inconsistent with another argument,
an :class:`InputTypeError` for an argument of the wrong kind. They are also the built-in
``ValueError`` / ``TypeError``, so ``except ValueError`` code written before they existed
keeps working, and a caller (the ``jaxopt-lab`` command) can tell a user's mistake from
a bug by its class alone.
"""

from __future__ import annotations


class InputError(ValueError):
    """An argument is not what the function expects; the message names it.

    >>> import jaxopt_lab as jol
    >>> try:
    ...     jol.adam(learning_rate=-1.0)
    ... except jol.InputError as e:
    ...     print(type(e).__name__, isinstance(e, ValueError))
    InputValueError True
    """


class InputValueError(InputError):
    """An argument's value is out of range or inconsistent with another argument."""


class InputTypeError(InputError, TypeError):
    """An argument is of the wrong type or kind (also a ``TypeError``)."""


class InputFileNotFoundError(InputError, FileNotFoundError):
    """A path argument names no file (also a ``FileNotFoundError``)."""


__all__ = ["InputError", "InputFileNotFoundError", "InputTypeError", "InputValueError"]
