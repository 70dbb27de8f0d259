"""Workflows: which function's outputs trigger which, and loops refused."""
from __future__ import annotations

from typing import Any

import pytest

from supervisor.config import parse
from supervisor.errors import ConfigError
from supervisor.workflow import check_loops, edges, triggers


def fn(name: str, inp: str, *outs: str, provider: str = "s3") -> Any:
    return parse({"name": name, "container": {"image": "busybox"},
                  "input": [{"path": inp}],
                  "output": [{"path": o, "storage_provider": provider} for o in outs],
                  "storage_providers": {"s3": {"other": {"region": "eu-west-1"}}}},
                 check_files=False)


def test_an_output_path_inside_another_functions_input_triggers_it() -> None:
    split = fn("split", "videos/in", "videos/frames")
    label = fn("label", "videos/frames", "videos/labels")
    assert triggers(split, label) and not triggers(label, split)
    assert edges([split, label]) == {"split": ["label"], "label": []}


def test_folders_are_compared_by_segment_and_provider() -> None:
    a = fn("a", "b/in", "b/input2")
    b = fn("b", "b/input", "b/out")
    assert not triggers(a, b)  # b/input2 is not inside b/input
    c = fn("c", "x/in", "b/input/deeper")
    assert triggers(c, b)
    d = fn("d", "x/in2", "b/input", provider="s3.other")
    assert not triggers(d, b)  # another storage provider's bucket


def test_a_chain_without_a_loop_passes() -> None:
    check_loops([fn("a", "w/1", "w/2"), fn("b", "w/2", "w/3"), fn("c", "w/3", "w/4")])


def test_a_loop_through_a_chain_is_refused_with_its_path() -> None:
    configs = [fn("a", "w/1", "w/2"), fn("b", "w/2", "w/3"), fn("c", "w/3", "w/1")]
    with pytest.raises(ConfigError) as err:
        check_loops(configs)
    (problem,) = err.value.problems
    assert problem.startswith("workflow: a -> b -> c -> a: the outputs of c trigger a again")


def test_two_functions_feeding_each_other_are_one_loop() -> None:
    with pytest.raises(ConfigError) as err:
        check_loops([fn("a", "w/1", "w/2"), fn("b", "w/2", "w/1"), fn("z", "q/1", "q/2")])
    assert len(err.value.problems) == 1 and "a -> b -> a" in err.value.problems[0]
