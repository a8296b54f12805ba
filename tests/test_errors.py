"""The typed errors of bad input: one base class, two kinds, and both still the
built-in ``ValueError`` / ``TypeError`` that callers caught before they existed."""

from __future__ import annotations

import pytest

import jaxopt_lab as jol
from jaxopt_lab import errors
from jaxopt_lab.cli import UsageError


def test_the_hierarchy():
    assert issubclass(jol.InputError, ValueError)
    assert not issubclass(jol.InputError, TypeError)
    assert issubclass(jol.InputValueError, jol.InputError)
    assert issubclass(jol.InputValueError, ValueError)
    assert not issubclass(jol.InputValueError, TypeError)
    for base in (jol.InputError, TypeError, ValueError):
        assert issubclass(jol.InputTypeError, base)
    assert issubclass(UsageError, jol.InputError)


def test_exported_from_the_package_and_errors():
    assert (jol.InputError, jol.InputValueError, jol.InputTypeError) == (
        errors.InputError,
        errors.InputValueError,
        errors.InputTypeError,
    )
    assert {"InputError", "InputValueError", "InputTypeError"} <= set(jol.__all__)


@pytest.mark.parametrize("cls", [jol.InputError, jol.InputValueError, jol.InputTypeError])
def test_except_value_error_still_catches(cls):
    try:
        raise cls("`x` is bad.")
    except ValueError as e:
        assert str(e) == "`x` is bad."
    else:  # pragma: no cover
        pytest.fail("not caught")


def test_except_type_error_catches_only_the_type_kind():
    with pytest.raises(TypeError):
        raise jol.InputTypeError("`x` must be a number.")
    with pytest.raises(jol.InputValueError):  # not swallowed by an `except TypeError`
        try:
            raise jol.InputValueError("`x` must be > 0.")
        except TypeError:  # pragma: no cover
            pytest.fail("an InputValueError is not a TypeError")


def test_the_library_raises_them_and_old_handlers_still_work():
    with pytest.raises(jol.InputValueError, match="learning_rate"):
        jol.adam(-1.0)
    with pytest.raises(jol.InputTypeError, match="nesterov"):
        jol.sgd(0.1, momentum=0.9, nesterov="yes")
    try:  # code written against the built-in classes
        jol.sgd(0.1, momentum=0.9, nesterov="yes")
    except ValueError:
        pass
    try:
        jol.sgd(0.1, momentum=0.9, nesterov="yes")
    except TypeError:
        pass
