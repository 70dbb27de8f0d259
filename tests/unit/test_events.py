"""supervisor.events: S3 notification events into InputObject values."""
from __future__ import annotations

import base64
import copy
import json
from pathlib import Path
from typing import Any

import pytest

from supervisor.errors import EventError
from supervisor.events import InputObject, parse, script_from_event

EVENTS_DIR = Path(__file__).parents[1] / "events"


def sample(name: str) -> dict[str, Any]:
    """A sample event from ``tests/events/<name>.json``."""
    data: dict[str, Any] = json.loads((EVENTS_DIR / f"{name}.json").read_text(encoding="utf-8"))
    return data


def one_record(**object_fields: Any) -> dict[str, Any]:
    """The ``s3_put`` sample with its object's fields replaced (``None`` removes one)."""
    event = sample("s3_put")
    obj = event["Records"][0]["s3"]["object"]
    for name, value in object_fields.items():
        if value is None:
            obj.pop(name, None)
        else:
            obj[name] = value
    return event


# --- the samples, as S3 sends them ---------------------------------------------------


def test_put_parses_bucket_key_size_etag_sequencer_and_event() -> None:
    [obj] = parse(sample("s3_put"))
    assert obj.bucket == "scar-plants"
    assert obj.key == "input/daisy.jpg"
    assert obj.size == 1048576
    assert obj.etag == "d41d8cd98f00b204e9800998ecf8427e"
    assert obj.version_id is None
    assert obj.sequencer == "0066433A7F5B2C8E1A"
    assert obj.event_time == "2024-05-14T10:15:03.482Z"
    assert obj.event_name == "ObjectCreated:Put"
    assert obj.is_create is True
    assert obj.uri == "s3://scar-plants/input/daisy.jpg"


def test_special_key_is_decoded_plus_as_space_and_utf8_percent_escapes() -> None:
    [obj] = parse(sample("s3_put_special_key"))
    assert obj.key == "input/my photo+1 ñandú ü.jpg"
    assert obj.uri == "s3://scar-photos/input/my photo+1 ñandú ü.jpg"
    assert obj.size == 52431


def test_record_is_kept_raw_with_the_key_still_encoded() -> None:
    event = sample("s3_put_special_key")
    [obj] = parse(event)
    assert obj.record is event["Records"][0]
    assert obj.record["s3"]["object"]["key"] == "input/my+photo%2B1+%C3%B1and%C3%BA+%C3%BC.jpg"
    assert json.loads(obj.event_json()) == {"Records": [event["Records"][0]]}


def test_two_records_come_back_in_order_with_their_own_values() -> None:
    first, second = parse(sample("s3_put_two_records"))
    assert (first.key, second.key) == ("input/rose.png", "input/batch 2/tulip.tif")
    assert (first.size, second.size) == (20480, 7340032)
    assert first.version_id == "096fKKXTRTtl3on89fVO.nfljtsv6qko"
    assert second.version_id is None
    assert (first.event_name, second.event_name) == ("ObjectCreated:Put", "ObjectCreated:Copy")
    assert first.is_create and second.is_create
    assert first.sequencer == "00664359882E4A5D7B"
    assert second.sequencer == "00664359883B7C1E92"


def test_identity_uses_version_id_when_versioned_and_sequencer_when_not() -> None:
    versioned, unversioned = parse(sample("s3_put_two_records"))
    assert versioned.identity == "scar-plants/input/rose.png#v=096fKKXTRTtl3on89fVO.nfljtsv6qko"
    assert unversioned.identity == "scar-plants/input/batch 2/tulip.tif#seq=00664359883B7C1E92"


def test_identity_falls_back_to_etag_then_to_none() -> None:
    [with_etag] = parse(one_record(sequencer=None))
    assert with_etag.identity == "scar-plants/input/daisy.jpg#etag=d41d8cd98f00b204e9800998ecf8427e"
    [bare] = parse(one_record(sequencer=None, eTag=None))
    assert bare.identity == "scar-plants/input/daisy.jpg#none"


def test_identity_is_stable_for_a_retried_event_and_differs_for_a_new_upload() -> None:
    [first] = parse(sample("s3_put"))
    [retry] = parse(sample("s3_put"))
    [reupload] = parse(one_record(sequencer="0066433A7F5B2C8F00"))
    assert first.identity == retry.identity
    assert first.identity != reupload.identity


def test_delete_is_returned_not_dropped_with_size_zero_and_no_etag() -> None:
    [obj] = parse(sample("s3_delete"))
    assert obj.event_name == "ObjectRemoved:Delete"
    assert obj.is_create is False
    assert obj.key == "input/daisy.jpg"
    assert obj.size == 0
    assert obj.etag is None
    assert obj.sequencer == "006643696897E0F3C2"


def test_multipart_upload_keeps_large_size_and_decodes_key() -> None:
    [obj] = parse(sample("s3_put_multipart"))
    assert obj.event_name == "ObjectCreated:CompleteMultipartUpload"
    assert obj.is_create is True
    assert obj.size == 5368709120
    assert obj.key == "input/raw/2024-05-14/camera=3/clip-0001.mp4"
    assert obj.etag == "e2fc714c4727ee9395f324cd2e7f331f-640"


def test_empty_records_is_nothing_to_do() -> None:
    assert parse(sample("s3_empty_records")) == []


def test_s3_test_event_is_nothing_to_do() -> None:
    assert parse(sample("s3_test_event")) == []


def test_equality_ignores_the_raw_record() -> None:
    [obj] = parse(sample("s3_put"))
    other_record = dict(obj.record, awsRegion="eu-west-1")
    twin = InputObject(
        bucket=obj.bucket,
        key=obj.key,
        size=obj.size,
        etag=obj.etag,
        version_id=obj.version_id,
        sequencer=obj.sequencer,
        event_time=obj.event_time,
        event_name=obj.event_name,
        record=other_record,
    )
    assert twin == obj
    assert hash(twin) == hash(obj)


def test_input_object_is_frozen() -> None:
    [obj] = parse(sample("s3_put"))
    with pytest.raises(AttributeError):
        obj.key = "other"  # type: ignore[misc]


# --- other input forms ---------------------------------------------------------------


def test_json_text_and_bytes_parse_like_the_mapping() -> None:
    text = (EVENTS_DIR / "s3_put_special_key.json").read_text(encoding="utf-8")
    expected = parse(json.loads(text))
    assert parse(text) == expected
    assert parse(text.encode("utf-8")) == expected
    assert expected[0].key == "input/my photo+1 ñandú ü.jpg"


def test_test_event_as_text_is_nothing_to_do() -> None:
    text = (EVENTS_DIR / "s3_test_event.json").read_text(encoding="utf-8")
    assert parse(text) == []


def sns_record(message: Any) -> dict[str, Any]:
    return {
        "EventSource": "aws:sns",
        "EventVersion": "1.0",
        "EventSubscriptionArn": "arn:aws:sns:us-east-1:123456789012:scar-uploads:2bcfbf39",
        "Sns": {
            "Type": "Notification",
            "MessageId": "95df01b4-ee98-5cb9-9903-4c221d41eb5e",
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:scar-uploads",
            "Subject": "Amazon S3 Notification",
            "Message": message,
            "Timestamp": "2024-05-14T12:30:01.123Z",
        },
    }


def sqs_record(body: Any) -> dict[str, Any]:
    return {
        "messageId": "059f36b4-87a3-44ab-83d2-661975830a7d",
        "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a",
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:scar-uploads",
        "awsRegion": "us-east-1",
    }


def test_sns_envelope_is_unwrapped_and_flattened_in_order() -> None:
    event = {
        "Records": [
            sns_record(json.dumps(sample("s3_put_two_records"))),
            sns_record(json.dumps(sample("s3_put_special_key"))),
        ]
    }
    keys = [obj.key for obj in parse(event)]
    assert keys == ["input/rose.png", "input/batch 2/tulip.tif", "input/my photo+1 ñandú ü.jpg"]


def test_sns_envelope_record_is_the_inner_s3_record() -> None:
    inner = sample("s3_put")
    [obj] = parse({"Records": [sns_record(json.dumps(inner))]})
    assert obj.record == inner["Records"][0]
    assert obj.record["eventSource"] == "aws:s3"


def test_sqs_envelope_is_unwrapped_and_flattened_in_order() -> None:
    event = {
        "Records": [
            sqs_record(json.dumps(sample("s3_put"))),
            sqs_record(json.dumps(sample("s3_test_event"))),
            sqs_record(json.dumps(sample("s3_delete"))),
        ]
    }
    objs = parse(event)
    assert [(o.key, o.event_name) for o in objs] == [
        ("input/daisy.jpg", "ObjectCreated:Put"),
        ("input/daisy.jpg", "ObjectRemoved:Delete"),
    ]


def test_nested_envelopes_are_not_unwrapped() -> None:
    inner_sns = {"Records": [sns_record(json.dumps(sample("s3_put")))]}
    with pytest.raises(EventError, match=r"Records\[0\]\.body\.Records\[0\]\.eventSource"):
        parse({"Records": [sqs_record(json.dumps(inner_sns))]})


def test_sqs_body_that_is_not_json_names_the_body() -> None:
    with pytest.raises(EventError, match=r"^Records\[0\]\.body is not valid JSON"):
        parse({"Records": [sqs_record("not json {")]})


def test_sns_message_that_is_not_an_s3_event_names_the_message() -> None:
    with pytest.raises(
        EventError, match=r"^Records\[0\]\.Sns\.Message is not an S3 event: .*'Records' list"
    ):
        parse({"Records": [sns_record(json.dumps({"hello": "world"}))]})


def test_bad_record_inside_envelope_names_its_full_path() -> None:
    inner = sample("s3_put_two_records")
    del inner["Records"][1]["s3"]["object"]["key"]
    with pytest.raises(EventError) as info:
        parse({"Records": [sqs_record(json.dumps(sample("s3_put"))), sqs_record(json.dumps(inner))]})
    assert str(info.value).startswith("Records[1].body.Records[1].s3.object.key is missing")


# --- malformed events ----------------------------------------------------------------


@pytest.mark.parametrize("raw", [["Records"], 42, None])
def test_not_a_mapping_is_not_an_s3_event(raw: Any) -> None:
    with pytest.raises(EventError, match=r"^not an S3 event: expected a mapping with a 'Records' list"):
        parse(raw)


def test_mapping_without_records_lists_its_keys() -> None:
    with pytest.raises(EventError) as info:
        parse({"detail-type": "Object Created", "source": "aws.s3"})
    message = str(info.value)
    assert message.startswith("not an S3 event: expected a mapping with a 'Records' list")
    assert "detail-type, source" in message


def test_records_not_a_list_says_what_it_is() -> None:
    with pytest.raises(EventError, match=r"got 'Records' as an object"):
        parse({"Records": {"s3": {}}})


def test_record_not_a_mapping_names_its_index() -> None:
    event = sample("s3_put")
    event["Records"].append("oops")
    with pytest.raises(EventError, match=r"^Records\[1\] is a string; expected an S3 event record"):
        parse(event)


def test_record_without_s3_names_the_field_and_index() -> None:
    event = sample("s3_put_two_records")
    del event["Records"][1]["s3"]
    with pytest.raises(EventError) as info:
        parse(event)
    assert str(info.value) == (
        "Records[1].s3 is missing; expected an S3 event record (eventSource aws:s3)"
    )


def test_record_without_key_matches_the_documented_message() -> None:
    event = sample("s3_put_two_records")
    del event["Records"][1]["s3"]["object"]["key"]
    with pytest.raises(EventError) as info:
        parse(event)
    assert str(info.value).startswith("Records[1].s3.object.key is missing; expected a string")


def test_key_not_a_string_is_an_error() -> None:
    with pytest.raises(EventError, match=r"^Records\[0\]\.s3\.object\.key is an int; expected a string"):
        parse(one_record(key=12345))


def test_empty_key_is_an_error() -> None:
    with pytest.raises(EventError, match=r"^Records\[0\]\.s3\.object\.key is empty"):
        parse(one_record(key=""))


def test_bucket_name_missing_is_an_error() -> None:
    event = sample("s3_put")
    del event["Records"][0]["s3"]["bucket"]["name"]
    with pytest.raises(EventError, match=r"^Records\[0\]\.s3\.bucket\.name is missing"):
        parse(event)


def test_key_with_invalid_utf8_escape_is_an_error() -> None:
    with pytest.raises(EventError, match=r"^Records\[0\]\.s3\.object\.key .* is not UTF-8 text"):
        parse(one_record(key="input/bad%FF.jpg"))
    with pytest.raises(EventError, match=r"is not UTF-8 text") as info:
        parse(one_record(key="input/lone\udc80.jpg"))
    assert "\\udc80" in str(info.value)  # shown escaped, the message stays printable


@pytest.mark.parametrize("size", ["1048576", 1.5, True])
def test_size_not_an_int_is_an_error(size: Any) -> None:
    with pytest.raises(EventError, match=r"^Records\[0\]\.s3\.object\.size is .*; expected an integer"):
        parse(one_record(size=size))


def test_negative_size_is_an_error() -> None:
    with pytest.raises(EventError, match=r"^Records\[0\]\.s3\.object\.size is -1"):
        parse(one_record(size=-1))


def test_version_id_not_a_string_is_an_error() -> None:
    with pytest.raises(EventError, match=r"^Records\[0\]\.s3\.object\.versionId is an int"):
        parse(one_record(versionId=7))


def test_wrong_event_source_is_an_error() -> None:
    event = sample("s3_put")
    event["Records"][0]["eventSource"] = "aws:dynamodb"
    with pytest.raises(EventError) as info:
        parse(event)
    assert str(info.value) == (
        "Records[0].eventSource is 'aws:dynamodb'; expected an S3 event record (eventSource aws:s3)"
    )


def test_missing_event_source_is_an_error() -> None:
    event = sample("s3_put")
    del event["Records"][0]["eventSource"]
    with pytest.raises(EventError, match=r"^Records\[0\]\.eventSource is missing"):
        parse(event)


def test_invalid_json_text_is_an_error() -> None:
    with pytest.raises(EventError, match=r"^event is not valid JSON \(.* line 1 column"):
        parse('{"Records": [')


def test_invalid_utf8_bytes_is_an_error() -> None:
    with pytest.raises(EventError, match=r"^event is not UTF-8 JSON text"):
        parse(b'{"Records": []}\xff')


def test_json_text_that_is_not_an_object_is_not_an_s3_event() -> None:
    with pytest.raises(EventError, match=r"^not an S3 event: .*\(got a list\)"):
        parse("[1, 2]")


def test_errors_are_one_line() -> None:
    with pytest.raises(EventError) as info:
        parse("{\n  bad\n}")
    assert "\n" not in str(info.value)


def test_parse_does_not_modify_the_event() -> None:
    event = sample("s3_put_two_records")
    before = copy.deepcopy(event)
    parse(event)
    assert event == before


# --- script_from_event ---------------------------------------------------------------


def test_script_is_decoded_from_base64() -> None:
    script = "#!/bin/sh\necho \"ñandú $INPUT_FILE_PATH\"\n"
    event = dict(sample("s3_put"), script=base64.b64encode(script.encode("utf-8")).decode("ascii"))
    assert script_from_event(event) == script


def test_script_base64_with_line_wrapping_is_accepted() -> None:
    script = "echo " + "x" * 200 + "\n"
    encoded = base64.encodebytes(script.encode("utf-8")).decode("ascii")
    assert "\n" in encoded.strip()
    assert script_from_event({"script": encoded}) == script


def test_script_absent_is_none() -> None:
    assert script_from_event(sample("s3_put")) is None


@pytest.mark.parametrize(
    "encoded",
    [
        "not*base64!",  # bad characters and bad length
        "ZWNo*byBoaQ==",  # "echo hi" with a stray '*' a lenient decoder would drop
        "ZWNobyBoaQ",  # missing padding
    ],
)
def test_script_invalid_base64_names_the_field(encoded: str) -> None:
    with pytest.raises(EventError, match=r"^event field 'script' is not valid base64"):
        script_from_event({"script": encoded})


def test_script_not_utf8_names_the_field() -> None:
    encoded = base64.b64encode(b"echo \xff\xfe").decode("ascii")
    with pytest.raises(EventError, match=r"^event field 'script' does not decode to UTF-8"):
        script_from_event({"script": encoded})


def test_script_not_a_string_names_the_field() -> None:
    with pytest.raises(EventError, match=r"^event field 'script' is a list"):
        script_from_event({"script": ["echo hi"]})


def test_parse_each_keeps_the_good_records_and_reports_each_bad_one() -> None:
    from supervisor.events import parse_each

    good = {"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
            "s3": {"bucket": {"name": "b"}, "object": {"key": "in/a+b.txt", "size": 1}}}
    event = {"Records": [good, "junk", {"eventSource": "aws:sqs", "body": "{"}, good]}
    objects, problems = parse_each(event)
    assert [o.key for o in objects] == ["in/a b.txt", "in/a b.txt"]
    assert [str(err).split(" ", 1)[0] for _, err in problems] == ["Records[1]",
                                                                 "Records[2].body"]
    assert problems[0][0] == {} and problems[1][0]["eventSource"] == "aws:sqs"
    with pytest.raises(EventError, match=r"^Records\[1\] is a string"):
        parse(event)
