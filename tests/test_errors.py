"""The error tree: one root, machine-readable codes, and one place to map foreign errors."""

from __future__ import annotations

import pytest

import omega.errors as errors
from omega.errors import (
    DecodeError,
    FrameTooLargeError,
    OmegaError,
    StorageError,
    TransportError,
    map_exceptions,
)


def test_every_exported_error_descends_from_the_root_with_a_unique_code() -> None:
    classes = [
        getattr(errors, name) for name in errors.__all__ if isinstance(getattr(errors, name), type)
    ]
    assert all(issubclass(cls, OmegaError) for cls in classes)
    codes = [cls.code for cls in classes]
    assert len(codes) == len(set(codes)), "two error classes share a code"


def test_every_error_class_appears_in_the_docstring_tree() -> None:
    doc = errors.__doc__ or ""
    for name in errors.__all__:
        if isinstance(getattr(errors, name), type):
            assert name in doc, f"{name} is missing from the tree in omega.errors' docstring"


def test_decode_errors_are_value_errors() -> None:
    assert issubclass(DecodeError, ValueError)
    with pytest.raises(ValueError, match="bad"):
        raise DecodeError("bad")


def test_details_are_kept() -> None:
    error = FrameTooLargeError(10, 5)
    assert (error.size, error.limit) == (10, 5)
    assert error.details == {"size": 10, "limit": 5}
    assert error.code == "frame_too_large"
    assert str(error) == "frame of 10 bytes exceeds the maximum of 5 bytes"


def test_map_exceptions_translates_and_chains() -> None:
    with (
        pytest.raises(TransportError, match="dial failed: refused") as info,
        map_exceptions({ConnectionError: TransportError, KeyError: StorageError}, "dial failed"),
    ):
        raise ConnectionRefusedError("refused")
    assert isinstance(info.value.__cause__, ConnectionRefusedError)


def test_map_exceptions_picks_the_first_match() -> None:
    with (
        pytest.raises(StorageError),
        map_exceptions({LookupError: StorageError, KeyError: TransportError}, "lookup"),
    ):
        raise KeyError("k")


def test_map_exceptions_lets_omega_and_unmapped_errors_through() -> None:
    with pytest.raises(DecodeError), map_exceptions({ValueError: StorageError}, "x"):
        raise DecodeError("already ours")  # a ValueError too, but never re-wrapped
    with pytest.raises(ZeroDivisionError), map_exceptions({KeyError: StorageError}, "x"):
        _ = 1 / 0
    with map_exceptions({KeyError: StorageError}, "x"):
        pass
