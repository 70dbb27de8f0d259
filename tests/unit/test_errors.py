"""The error tree: every error class of the project lives in supervisor.errors, drawn there."""
from __future__ import annotations

import importlib
import pkgutil

import pytest

import supervisor
from supervisor import errors


def _all_modules() -> None:
    for info in pkgutil.walk_packages(supervisor.__path__, "supervisor."):
        if info.name.endswith("__main__"):
            continue
        importlib.import_module(info.name)


def _subclasses(cls: type) -> set[type]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= _subclasses(sub)
    return found


def test_every_error_class_is_defined_in_the_tree_and_drawn_in_its_docstring() -> None:
    _all_modules()
    classes = {c for c in _subclasses(errors.SupervisorError)
               if c.__module__.startswith("supervisor.")}  # tests may define their own
    outside = sorted(f"{c.__module__}.{c.__name__}" for c in classes
                     if c.__module__ != errors.__name__)
    assert outside == []
    doc = errors.__doc__ or ""
    assert [c.__name__ for c in classes if c.__name__ not in doc] == []


@pytest.mark.parametrize("text, line", [
    ("two\nlines", "two lines"),
    ("nul\x00key", "nul\\x00key"),
    ("lone \udc80 surrogate", "lone \\udc80 surrogate"),
])
def test_one_line_keeps_every_error_on_one_readable_line(text: str, line: str) -> None:
    assert errors.one_line(text) == line
    assert errors.describe(errors.StageInError(text)) == line
    assert errors.describe(ValueError(text)) == f"internal error: ValueError: {line}"


def test_translated_names_the_call_and_the_aws_error() -> None:
    from botocore.exceptions import ClientError

    failure = ClientError({"Error": {"Code": "NoSuchBucket", "Message": "gone"}}, "GetObject")
    with pytest.raises(errors.StageInError, match=r"^reading s3://b/k: NoSuchBucket: gone$"):
        with errors.translated("reading s3://b/k", errors.StageInError):
            raise failure
    assert errors.error_code(failure) == "NoSuchBucket"
