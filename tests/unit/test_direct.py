"""Direct invocations (scar run / scar invoke / API Gateway): recognised, parsed, refused."""
from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from supervisor.direct import BODY_NAME, DirectInvocation, direct_invocation
from supervisor.errors import EventError
from supervisor.events import event_mapping
from supervisor.pipeline import command_script


@pytest.mark.parametrize("event, expected", [
    ({}, DirectInvocation(kind="direct")),
    ({"script": "ZWNobyBoaQo="}, DirectInvocation(kind="direct")),
    ({"cmd_args": ["ls", "-l"]}, DirectInvocation(kind="direct", cmd_args=("ls", "-l"))),
    ({"cmd_args": json.dumps(["a b", "c"])},  # SCAR sends the list as JSON text
     DirectInvocation(kind="direct", cmd_args=("a b", "c"))),
    ({"httpMethod": "POST", "body": "plain text", "isBase64Encoded": False},
     DirectInvocation(kind="api-gateway", body=b"plain text")),
    ({"httpMethod": "POST", "isBase64Encoded": True,
      "body": base64.b64encode(b"\x00\xffbin").decode(),
      "headers": {"Content-Disposition": 'attachment; filename="photo.jpg"'}},
     DirectInvocation(kind="api-gateway", body=b"\x00\xffbin", body_name="photo.jpg")),
    ({"requestContext": {}, "body": None}, DirectInvocation(kind="api-gateway", body=b"")),
])
def test_direct_invocations_are_recognised(event: dict[str, Any],
                                           expected: DirectInvocation) -> None:
    assert direct_invocation(event) == expected


@pytest.mark.parametrize("event", [
    {"Records": []}, {"Event": "s3:TestEvent"}, {"unknown": 1}, [], "text"])
def test_what_is_not_a_direct_invocation_goes_on_to_the_s3_parser(event: Any) -> None:
    assert direct_invocation(event) is None


@pytest.mark.parametrize("event, words", [
    ({"cmd_args": []}, "non-empty list of strings"),
    ({"cmd_args": [1]}, "non-empty list of strings"),
    ({"cmd_args": "not json"}, "not a JSON list"),
    ({"httpMethod": "POST", "body": "%%%", "isBase64Encoded": True}, "not base64"),
    ({"httpMethod": "POST", "headers": {"Content-Disposition": "filename=../../x"},
      "body": 5}, "'body' must be text"),
])
def test_a_bad_direct_invocation_is_one_line(event: dict[str, Any], words: str) -> None:
    with pytest.raises(EventError) as info:
        direct_invocation(event)
    assert words in str(info.value) and "\n" not in str(info.value)


def test_an_unsafe_file_name_in_the_request_is_not_used() -> None:
    event = {"httpMethod": "POST", "body": "x",
             "headers": {"content-disposition": 'attachment; filename="../../etc/passwd"'}}
    found = direct_invocation(event)
    assert found is not None and found.body_name == BODY_NAME


def test_an_event_given_as_json_text_is_read_and_other_text_is_one_line() -> None:
    assert event_mapping('{"cmd_args": ["x"]}') == {"cmd_args": ["x"]}
    assert event_mapping(b"{}") == {}
    for bad in ("[1, 2]", "not json", b"\xff", "[" * 100000 + "]" * 100000):
        with pytest.raises(EventError) as info:
            event_mapping(bad)
        assert "\n" not in str(info.value)


def test_the_command_script_quotes_every_word() -> None:
    assert command_script(["echo", "a b", "$HOME"], ("/entry", "-x")) == (
        "exec /entry -x echo 'a b' '$HOME'\n")


def test_one_line_escapes_what_would_break_a_line_or_a_terminal() -> None:
    from supervisor.records import one_line

    assert one_line("a\nb\tc  d") == "a b c d"
    assert one_line("nul\x00 esc\x1b[1m lone\udc80") == "nul\\x00 esc\\x1b[1m lone\\udc80"
