"""Every ``supervisor …`` command the README, the examples' READMEs, docs/ and ``--help``
show is parsed by the real argument parser; those that run offline and at once (``--help``,
``init``) are run; the definitions they name exist. (``--dry-run`` ones run in
``tests/integration/test_doc_commands_run.py``: they may build the layer first.)"""
from __future__ import annotations

from pathlib import Path

import pytest
from support.doccommands import ROOT, DocCommand, command_names, commands, commands_in

from supervisor.cli import build_parser, main

COMMANDS = commands(build_parser())


def _id(command: DocCommand) -> str:
    return f"{command.where}: supervisor {' '.join(command.argv)}"


def test_the_docs_show_commands_at_all() -> None:
    wheres = {c.where.split(":")[0] for c in COMMANDS}
    assert {"README.md", "examples/README.md", "examples/plants/README.md",
            "supervisor --help", "supervisor logs --help"} <= wheres
    assert len(COMMANDS) > 40


@pytest.mark.parametrize("command", COMMANDS, ids=_id)
def test_each_documented_command_parses(command: DocCommand,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    if command.mention:
        assert command.argv[0] in command_names(parser), command.text
        return
    try:
        parser.parse_args(list(command.argv))
    except SystemExit as exc:
        err = capsys.readouterr().err
        assert exc.code == 0 and "--help" in command.argv, f"{command.text}: {err}"
    for option in ("-f", "--file"):
        if option in command.argv:
            named = command.argv[command.argv.index(option) + 1]
            if named.startswith("examples/"):
                assert (ROOT / named).is_file(), f"{command.where}: {named} does not exist"


OFFLINE = [c for c in COMMANDS if not c.mention and ("--help" in c.argv or c.argv[0] == "init")]


@pytest.mark.parametrize("command", OFFLINE, ids=_id)
def test_each_documented_offline_command_runs(command: DocCommand, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    code = main(list(command.argv))
    assert code == 0, f"{command.text}: {capsys.readouterr().err}"


def test_a_command_without_its_required_option_would_be_caught() -> None:
    [rotten] = commands_in("x.md:1", "supervisor deploy examples/plants/function.yaml")
    with pytest.raises(SystemExit):
        build_parser().parse_args(list(rotten.argv))
