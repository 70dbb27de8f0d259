"""Run history's parts that need no AWS: bands, the stored counters, the prediction, the
config, and one invocation's reads and writes over a fake client."""
from __future__ import annotations

import subprocess
import sys
from typing import Any, Optional

import pytest
from botocore.exceptions import ClientError

from supervisor.config import HistoryConfig, parse, to_mapping
from supervisor.errors import ConfigError
from supervisor.events import InputObject
from supervisor.events import parse as parse_events
from supervisor.history import History, HistoryKey, Observation, RunHistory, history_id, predict
from supervisor.history.bands import (
    about_bytes,
    about_seconds,
    band_size,
    bucket_floor,
    duration_bucket,
    size_band,
)
from supervisor.history.model import counter_increments
from supervisor.history.runtime import explore_draw, history_key
from supervisor.s3event import event_of, object_created_record
from supervisor.watchdog import Deadline

MB = 1_000_000


def runs(*seen: tuple[int, float, str]) -> History:
    """A history holding these (size, seconds, outcome) runs."""
    return History().plus([Observation(size, seconds, outcome)  # type: ignore[arg-type]
                           for size, seconds, outcome in seen])


# ------------------------------------------------------------------ bands and words

@pytest.mark.parametrize("size", [1000, 8 * MB, 5 * 10**9])
def test_a_band_holds_its_middle_size(size: int) -> None:
    band = size_band(size)
    assert size_band(int(band_size(band))) == band
    assert size_band(int(size * 1.1)) > band  # bands are narrower than 10 %


def test_a_bucket_starts_at_its_floor_and_is_narrower_than_ten_percent() -> None:
    for seconds in (0.002, 0.5, 2.95, 40.0, 900.0):
        bucket = duration_bucket(seconds)
        assert bucket_floor(bucket) <= seconds < bucket_floor(bucket + 1)
        assert bucket_floor(bucket + 1) / bucket_floor(bucket) < 1.1
    assert duration_bucket(0.0) == 0 and size_band(0) == 0


@pytest.mark.parametrize(("value", "text"), [(3, "3 B"), (999, "1 KB"), (8.4 * MB, "8.4 MB"),
                                             (123_456, "120 KB"), (2e12, "2 TB")])
def test_sizes_are_written_to_two_digits(value: float, text: str) -> None:
    assert about_bytes(value) == text


@pytest.mark.parametrize(("value", "text"), [(40.2, "40 s"), (2.94, "2.9 s"), (0.451, "0.45 s"),
                                             (123.4, "120 s")])
def test_seconds_are_written_to_two_digits(value: float, text: str) -> None:
    assert about_seconds(value) == text


# ------------------------------------------------------------------ the stored form

def test_runs_are_counted_per_band_outcome_and_bucket() -> None:
    seen = [Observation(8 * MB, 41.0, "timed_out"), Observation(8 * MB, 41.0, "timed_out"),
            Observation(1000, 0.2, "completed"), Observation(1000, 0.2, "failed")]
    increments = counter_increments(seen)
    band, bucket = size_band(8 * MB), duration_bucket(41.0)
    assert increments[f"s{band}t{bucket}"] == 2
    assert increments["runs"] == 4 and increments["wasted_s"] == 82.0
    assert increments["lambda_s"] == pytest.approx(82.4)

    history = History().plus(seen)
    assert history.runs == 4 and history.wasted_seconds == 82.0
    assert history.bands[band].total("t") == 2 and history.bands[band].total() == 2
    assert history.bands[size_band(1000)].total() == 2
    assert History.from_attributes({"runs": 1, "s1x2": 5, "s3c4": "x", "other": "y"}).bands == {}


def test_a_changed_script_image_or_memory_is_another_history() -> None:
    base = HistoryKey(function="f", script="echo", image="busybox host", memory=512)
    others = [HistoryKey("f", "echo 2", "busybox host", 512),
              HistoryKey("f", "echo", "alpine host", 512),
              HistoryKey("f", "echo", "busybox host", 1024),
              HistoryKey("g", "echo", "busybox host", 512)]
    assert len({history_id(k) for k in [base, *others]}) == 5
    assert history_id(base) == history_id(HistoryKey("f", "echo", "busybox host", 512))
    assert history_id(base).startswith("history:f:")


def test_the_key_names_where_the_script_runs() -> None:
    config = parse({"name": "f", "container": {"image": "busybox", "run_on_host": True}})
    assert history_key(config, "echo", 512).image == "busybox host"
    inside = parse({"name": "f", "container": {"image": "busybox"}})
    assert history_key(inside, "echo", 512).image == "busybox image"


# ------------------------------------------------------------------ the prediction

def test_no_history_runs_here() -> None:
    decision = predict(History(), size=8 * MB, budget=12.0)
    assert not decision.delegate and decision.reason is None


def test_one_timeout_at_the_budget_sends_a_similar_input_to_batch() -> None:
    history = runs((8 * MB, 12.1, "timed_out"))
    decision = predict(history, size=int(8.3 * MB), budget=12.0)
    assert decision.delegate
    assert decision.reason == "history: inputs of ~8 MB took ≥ 12 s here (1 run), budget 12 s"


def test_timeouts_at_a_larger_budget_say_so_in_the_reason() -> None:
    history = runs(*[(8 * MB, 40.3, "timed_out")] * 3)
    decision = predict(history, size=8 * MB, budget=12.0)
    # the seconds are a bucket's floor: 40.3 s is counted as 39 s or more
    assert decision.reason == "history: inputs of ~8 MB took ≥ 39 s here (3 runs), budget 12 s"


def test_a_timeout_with_a_much_smaller_budget_says_nothing() -> None:
    history = runs((8 * MB, 12.0, "timed_out"))
    assert not predict(history, size=8 * MB, budget=60.0).delegate


def test_runs_that_completed_after_more_than_the_budget_send_it_to_batch() -> None:
    history = runs((8 * MB, 30.0, "completed"))
    assert predict(history, size=8 * MB, budget=12.0).delegate
    assert not predict(history, size=8 * MB, budget=40.0).delegate


def test_in_doubt_a_record_runs_here() -> None:
    one_each = runs((8 * MB, 13.0, "timed_out"), (8 * MB, 5.0, "completed"))
    assert not predict(one_each, size=8 * MB, budget=12.0).delegate
    two_to_one = runs((8 * MB, 13.0, "timed_out"), (8 * MB, 13.0, "timed_out"),
                      (8 * MB, 5.0, "completed"))
    assert predict(two_to_one, size=8 * MB, budget=12.0).delegate
    near = runs((8 * MB, 11.9, "completed"))  # the budget's own bucket: it fitted
    assert not predict(near, size=8 * MB, budget=12.0).delegate


def test_a_failed_run_counts_as_what_it_took() -> None:
    assert not predict(runs((8 * MB, 0.5, "failed")), size=8 * MB, budget=12.0).delegate
    assert predict(runs((8 * MB, 50.0, "failed")), size=8 * MB, budget=12.0).delegate


def test_a_bigger_input_than_one_that_did_not_fit_goes_to_batch() -> None:
    history = runs((2 * MB, 13.0, "timed_out"))
    decision = predict(history, size=8 * MB, budget=12.0)
    assert decision.reason == ("history: inputs of ~2 MB, smaller than this one, took ≥ 13 s "
                               "here (1 run), budget 12 s")
    assert not predict(history, size=MB, budget=12.0).delegate  # smaller: nothing known


def test_a_bigger_input_that_fitted_keeps_a_smaller_one_here() -> None:
    history = runs((2 * MB, 13.0, "timed_out"), (32 * MB, 3.0, "completed"))
    assert not predict(history, size=8 * MB, budget=12.0).delegate


def test_the_own_band_wins_over_its_neighbours() -> None:
    history = runs((2 * MB, 13.0, "timed_out"), (8 * MB, 3.0, "completed"))
    assert not predict(history, size=8 * MB, budget=12.0).delegate


def test_exploration_runs_here_a_record_that_would_go_to_batch() -> None:
    history = runs((8 * MB, 13.0, "timed_out"))
    explored = predict(history, size=8 * MB, budget=12.0, explore_fraction=0.1, draw=0.05)
    assert not explored.delegate and explored.explored
    assert explored.would is not None and explored.would.startswith("history: ")
    kept = predict(history, size=8 * MB, budget=12.0, explore_fraction=0.1, draw=0.5)
    assert kept.delegate and not kept.explored


def test_the_exploration_draw_is_fixed_by_the_object_and_spread_evenly() -> None:
    assert explore_draw("b/k/v1", "d") == explore_draw("b/k/v1", "d")
    draws = [explore_draw(f"bucket/key-{n}", "digest") for n in range(20000)]
    assert all(0 <= d < 1 for d in draws)
    assert 0.016 < sum(d < 0.02 for d in draws) / len(draws) < 0.024
    assert 0.48 < sum(d < 0.5 for d in draws) / len(draws) < 0.52


# ------------------------------------------------------------------ configuration

def test_history_is_off_by_default_and_read_when_given() -> None:
    assert parse({"name": "f"}).history == HistoryConfig()
    assert HistoryConfig().expires_after_seconds == 2_592_000
    config = parse({"name": "f", "execution_mode": "lambda-batch",
                    "history": {"table": "supervisor-history", "expires_after_seconds": 3600,
                                "explore_fraction": 0.1}})
    assert config.history == HistoryConfig("supervisor-history", 3600, 0.1)
    again = parse(to_mapping(config))
    assert again == config
    assert to_mapping(parse({"name": "f"})).get("history") is None


def test_an_fdl_entry_takes_history_beside_lambda() -> None:
    entry: dict[str, Any] = {"lambda": {"name": "f"}, "history": {"table": "t-1", "x": 1}}
    assert parse(entry).history.table == "t-1"
    with pytest.raises(ConfigError) as caught:
        parse({"lambda": {"name": "f"}, "history": {"table": "no"}}, path="functions.aws[0]")
    assert caught.value.problems == (
        "functions.aws[0].history.table: 'no' is not a DynamoDB table name; "
        "must be 3-255 letters, digits, '_', '-' or '.'",)


@pytest.mark.parametrize(("history", "problem"), [
    ({"explore_fraction": 2}, "history.explore_fraction: 2 is not a fraction"),
    ({"explore_fraction": True}, "history.explore_fraction: True is not a fraction"),
    ({"expires_after_seconds": 5}, "history.expires_after_seconds: 5 is out of range"),
    ("yes", "history: 'yes' is not a mapping"),
])
def test_wrong_history_settings_are_problems(history: Any, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse({"name": "f", "history": history})
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems


def test_the_handler_imports_nothing_of_history() -> None:
    code = ("import sys, supervisor.handler; "
            "print(sorted(m for m in sys.modules if m.startswith('supervisor.history')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    assert done.stdout.strip() == "[]"


# ------------------------------------------------------------------ one invocation

def clock() -> float:
    """A clock that stands still: the deadlines below are as long as they were made."""
    return 1000.0


class FakeDynamoDB:
    """Answers GetItem with ``item``; records every call and the seconds it was given."""

    def __init__(self, item: Optional[dict[str, Any]] = None, fail: str = "") -> None:
        self.item, self.fail = item, fail
        self.calls: list[tuple[str, float, dict[str, Any]]] = []

    def client(self, seconds: float) -> Any:
        fake = self

        class Client:
            def __getattr__(self, name: str) -> Any:
                def call(**kwargs: Any) -> Any:
                    fake.calls.append((name, seconds, kwargs))
                    if fake.fail:
                        raise ClientError({"Error": {"Code": fake.fail, "Message": "no"}}, name)
                    return {"Item": fake.item} if fake.item and name == "get_item" else {}
                return call

        return Client()


def invocation(fake: FakeDynamoDB, *, budget: float = 20.0,
               write_left: float = 25.0, explore: float = 0.0) -> RunHistory:
    settings = HistoryConfig(table="history-table", explore_fraction=explore)
    return RunHistory(settings, HistoryKey("f", "echo"), client=fake.client,
                      budget=Deadline.after(budget, clock),
                      write_by=Deadline.after(write_left, clock), clock=clock)


def input_object(size: int, key: str = "in/a.dat") -> InputObject:
    return parse_events(event_of(object_created_record("b", key, size=size)))[0]


def test_one_read_an_invocation_with_a_client_timeout_from_the_budget() -> None:
    fake = FakeDynamoDB()
    run = invocation(fake, budget=12.0)
    assert run.reason_to_delegate(input_object(8 * MB)) is None
    assert run.reason_to_delegate(input_object(8 * MB, "in/b.dat")) is None
    assert [(name, round(seconds, 6)) for name, seconds, _ in fake.calls] == [("get_item", 0.6)]


def test_a_failed_read_is_no_history_and_the_runs_are_still_written() -> None:
    fake = FakeDynamoDB(fail="ProvisionedThroughputExceededException")
    run = invocation(fake)
    assert run.reason_to_delegate(input_object(8 * MB)) is None
    run.note(input_object(8 * MB), 20.5, "timed_out")
    run.flush()  # fails too: logged, not raised
    assert [name for name, _, _ in fake.calls] == ["get_item", "update_item"]


def test_runs_of_the_invocation_count_for_its_next_records_and_are_written_once() -> None:
    fake = FakeDynamoDB()
    run = invocation(fake)
    assert run.reason_to_delegate(input_object(8 * MB)) is None
    run.note(input_object(8 * MB), 20.1, "timed_out")
    assert run.reason_to_delegate(input_object(8 * MB, "in/b.dat")) is not None
    run.note(input_object(1000), 0.5, "completed")
    run.flush()
    run.flush()  # nothing new: no call
    (update,) = [kwargs for name, _, kwargs in fake.calls if name == "update_item"]
    added = {update["ExpressionAttributeNames"][n.split()[0]]: n
             for n in update["UpdateExpression"][4:].split(" SET ")[0].split(", ")}
    assert {"runs", "lambda_s", "wasted_s"} <= set(added)
    assert update["ConditionExpression"] == "attribute_not_exists(#id) OR #ex > :now"


def test_a_stored_history_decides_and_exploration_is_fixed_per_object() -> None:
    item = {f"s{size_band(8 * MB)}t{duration_bucket(20.0)}": {"N": "2"}, "runs": {"N": "2"}}
    assert invocation(FakeDynamoDB(item)).reason_to_delegate(input_object(8 * MB))
    explored = invocation(FakeDynamoDB(item), explore=1.0)
    assert explored.reason_to_delegate(input_object(8 * MB)) is None


def test_no_write_without_the_time_for_its_client_timeout() -> None:
    fake = FakeDynamoDB()
    run = invocation(fake, write_left=0.4)
    run.note(input_object(1000), 0.5, "completed")
    run.flush()
    assert fake.calls == []
    hurried = invocation(fake, write_left=0.6)
    hurried.note(input_object(1000), 0.5, "completed")
    hurried.flush()
    assert [(name, round(seconds, 6)) for name, seconds, _ in fake.calls] == [("update_item", 0.3)]


def test_a_budget_under_a_second_reads_nothing() -> None:
    fake = FakeDynamoDB()
    assert invocation(fake, budget=0.5).reason_to_delegate(input_object(8 * MB)) is None
    assert fake.calls == []
