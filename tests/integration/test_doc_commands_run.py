"""The documented ``supervisor deploy … --dry-run`` commands run as printed, from the
checkout's root, and call nothing (see ``tests/unit/test_doc_commands.py`` for the rest)."""
from __future__ import annotations

import pytest
from support.doccommands import ROOT, DocCommand, commands

from supervisor.cli import build_parser, main

pytestmark = pytest.mark.integration

DRY_RUNS = [c for c in commands(build_parser()) if "--dry-run" in c.argv]


def test_the_docs_show_a_dry_run() -> None:
    assert DRY_RUNS


@pytest.mark.parametrize("command", DRY_RUNS,
                         ids=lambda c: f"{c.where}: supervisor {' '.join(c.argv)}")
def test_each_documented_dry_run_runs_as_printed(command: DocCommand,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    if any(a.endswith(".yaml") and not (ROOT / a).is_file() for a in command.argv):
        pytest.skip(f"{command.where} names a definition of the reader's own")
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    code = main(list(command.argv))
    captured = capsys.readouterr()
    assert code == 0, f"{command.text}: {captured.err}"
    assert "dry run in eu-west-1, nothing was called" in captured.out
