"""The script's environment (pure) and running it (real /bin/sh, real process groups)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Mapping, Optional

import pytest
from conftest import process_gone

from supervisor.errors import ScriptError
from supervisor.process import become_subreaper
from supervisor.runner import (
    CONTRACT_VARS,
    CREDENTIAL_VARS,
    DEFAULT_PATH,
    MAX_LINE_BYTES,
    SUPERVISOR_VARS,
    TAIL_BYTES,
    RunResult,
    build_env,
    run,
    script_argv,
    write_script,
)
from supervisor.watchdog import Deadline
from supervisor.workdir import WorkDirs


@pytest.fixture
def work(tmp_path: Path) -> WorkDirs:
    return WorkDirs.create(tmp_path)


RECORD = {"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "in"}, "object": {"key": "a b.txt"}}}

BASE_ENV = {
    "PATH": "/opt/bin:/usr/bin:/bin",
    "HOME": "/home/sbx_user",
    "LANG": "C.UTF-8",
    "AWS_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "AKIA-SUPERVISOR",
    "AWS_SECRET_ACCESS_KEY": "supervisor-secret",
    "AWS_SESSION_TOKEN": "supervisor-token",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://169.254.170.23/v1/credentials",
    "AWS_PROFILE": "admin",
    "FUNCTION_CONFIG": "base64-yaml-with-provider-secrets",
    "FUNCTION_CONFIG_PATH": "/var/task/function_config.yaml",
    "SCRIPT": "ZWNobyBoaQ==",
    "SUPERVISOR_HANDOFF": "s3://staging/handoff.json",
    "EVENT": "{\"old\": \"event\"}",
}


def make_env(work: WorkDirs, **overrides: Any) -> dict[str, str]:
    kwargs: dict[str, Any] = dict(
        base_env=BASE_ENV,
        input_file=work.input_dir / "a b.txt",
        work=work,
        bucket="in",
        key="dir/a b.txt",
        event_json=json.dumps({"Records": [RECORD]}),
        event_time="2024-05-01T12:00:00.000Z",
        request_id="req-123",
        execution_service="lambda",
        variables={},
    )
    kwargs.update(overrides)
    return build_env(**kwargs)


def run_script(
    work: WorkDirs,
    text: str,
    *,
    deadline: Optional[Deadline] = None,
    env: Optional[Mapping[str, str]] = None,
    **kwargs: Any,
) -> RunResult:
    path = write_script(text, work)
    return run(
        script_argv(path),
        env=env if env is not None else {"PATH": DEFAULT_PATH},
        cwd=work.root,
        deadline=deadline if deadline is not None else Deadline.after(20.0),
        log_path=work.log_path,
        **kwargs,
    )


# --- build_env ------------------------------------------------------------------


def test_build_env_sets_every_contract_variable(work: WorkDirs) -> None:
    env = make_env(work)
    assert env["INPUT_FILE_PATH"] == str(work.input_dir / "a b.txt")
    assert env["TMP_INPUT_DIR"] == str(work.input_dir)
    assert env["TMP_OUTPUT_DIR"] == str(work.output_dir)
    assert env["STORAGE_OBJECT_KEY"] == "dir/a b.txt"
    assert env["STORAGE_BUCKET"] == "in"
    assert json.loads(env["EVENT"]) == {"Records": [RECORD]}  # the S3 event, one record
    assert env["EVENT_TIME"] == "2024-05-01T12:00:00.000Z"
    assert env["INSTANCE_IP"] == ""  # none given here
    assert env["REQUEST_ID"] == "req-123"
    assert env["AWS_LAMBDA_REQUEST_ID"] == "req-123"
    assert env["EXECUTION_SERVICE"] == "lambda"
    assert set(CONTRACT_VARS) <= set(env)


def test_build_env_keeps_the_ordinary_environment(work: WorkDirs) -> None:
    env = make_env(work)
    assert env["PATH"] == "/opt/bin:/usr/bin:/bin"
    assert env["HOME"] == "/home/sbx_user"
    assert env["LANG"] == "C.UTF-8"
    assert env["AWS_REGION"] == "us-east-1"


def test_build_env_strips_credentials_by_default(work: WorkDirs) -> None:
    env = make_env(work)
    assert not CREDENTIAL_VARS & set(env)
    assert "supervisor-secret" not in env.values()


def test_build_env_passes_credentials_when_asked(work: WorkDirs) -> None:
    env = make_env(work, pass_aws_credentials=True)
    assert env["AWS_ACCESS_KEY_ID"] == "AKIA-SUPERVISOR"
    assert env["AWS_SECRET_ACCESS_KEY"] == "supervisor-secret"
    assert env["AWS_SESSION_TOKEN"] == "supervisor-token"
    assert env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] == BASE_ENV["AWS_CONTAINER_CREDENTIALS_FULL_URI"]
    assert env["AWS_PROFILE"] == "admin"


@pytest.mark.parametrize("pass_credentials", [False, True])
def test_build_env_never_passes_the_supervisors_own_inputs(work: WorkDirs, pass_credentials: bool) -> None:
    env = make_env(work, pass_aws_credentials=pass_credentials)
    assert not SUPERVISOR_VARS & set(env)
    assert {"FUNCTION_CONFIG", "FUNCTION_CONFIG_PATH", "SCRIPT", "SUPERVISOR_HANDOFF"} <= SUPERVISOR_VARS
    assert env["EVENT"] == json.dumps({"Records": [RECORD]})  # re-set, not the supervisor's


def test_build_env_applies_user_variables(work: WorkDirs) -> None:
    env = make_env(work, variables={"MODEL": "small", "PATH": "/custom/bin", "LANG": "en_US.UTF-8"})
    assert env["MODEL"] == "small"
    assert env["PATH"] == "/custom/bin"
    assert env["LANG"] == "en_US.UTF-8"


def test_user_variables_cannot_clobber_contract_names(work: WorkDirs) -> None:
    clobber = {name: "user-value" for name in CONTRACT_VARS}
    env = make_env(work, variables=dict(clobber, OTHER="kept"))
    assert env == make_env(work, variables={"OTHER": "kept"})
    assert "user-value" not in env.values()


def test_user_may_set_their_own_aws_keys(work: WorkDirs) -> None:
    env = make_env(work, variables={"AWS_ACCESS_KEY_ID": "AKIA-USER"})
    assert env["AWS_ACCESS_KEY_ID"] == "AKIA-USER"
    assert "AWS_SECRET_ACCESS_KEY" not in env


def test_build_env_defaults_home_and_path(work: WorkDirs) -> None:
    env = make_env(work, base_env={"LANG": "C"})
    assert env["HOME"] == str(work.root)
    assert env["PATH"] == DEFAULT_PATH


@pytest.mark.parametrize("service", ["lambda", "batch"])
def test_build_env_accepts_both_execution_services(work: WorkDirs, service: str) -> None:
    assert make_env(work, execution_service=service)["EXECUTION_SERVICE"] == service


@pytest.mark.parametrize("service", ["", "Lambda", "lambda-batch", "fargate"])
def test_build_env_rejects_other_execution_services(work: WorkDirs, service: str) -> None:
    with pytest.raises(ValueError, match="execution_service"):
        make_env(work, execution_service=service)


@pytest.mark.parametrize("variables", [{"A=B": "x"}, {"": "x"}, {"OK": "nul\0byte"}])
def test_build_env_rejects_what_the_os_cannot_carry(work: WorkDirs, variables: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        make_env(work, variables=variables)


def test_build_env_is_pure(work: WorkDirs) -> None:
    base = dict(BASE_ENV)
    variables = {"MODEL": "small", "EVENT": "user"}
    first = make_env(work, base_env=base, variables=variables)
    first["MUTATED"] = "yes"
    second = make_env(work, base_env=base, variables=variables)
    assert base == BASE_ENV
    assert variables == {"MODEL": "small", "EVENT": "user"}
    assert "MUTATED" not in second
    assert first is not second


# --- script files ---------------------------------------------------------------


def test_write_script_writes_an_owner_only_executable(work: WorkDirs) -> None:
    path = write_script("#!/bin/sh\necho hi\n", work)
    assert path == work.script_path
    assert path.read_text() == "#!/bin/sh\necho hi\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    path.chmod(0o644)
    write_script("echo again\n", work)  # overwriting fixes the mode too
    assert path.read_text() == "echo again\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o700


def test_script_argv_runs_the_script_with_sh(tmp_path: Path) -> None:
    assert script_argv(tmp_path / "s.sh") == ["/bin/sh", str(tmp_path / "s.sh")]


# --- run: exit codes and output -------------------------------------------------


def test_run_exit_zero_succeeds(work: WorkDirs) -> None:
    result = run_script(work, "exit 0\n")
    assert result.exit_code == 0
    assert not result.timed_out
    assert result.succeeded
    assert result.log_path == work.log_path


def test_run_reports_a_nonzero_exit_code(work: WorkDirs) -> None:
    result = run_script(work, "echo failing; exit 3\n")
    assert result.exit_code == 3
    assert not result.timed_out
    assert not result.succeeded
    assert result.output_tail == "failing\n"


def test_run_reports_death_by_signal_as_the_shell_does(work: WorkDirs) -> None:
    result = run_script(work, "kill -9 $$\n")
    assert result.exit_code == 137  # 128 + SIGKILL, in the Lambda response and on Batch
    assert not result.timed_out
    assert not result.succeeded


def test_run_captures_stdout_and_stderr_to_log_and_tail(work: WorkDirs) -> None:
    result = run_script(work, "echo one\necho two >&2\nprintf three\n")
    assert work.log_path.read_bytes() == b"one\ntwo\nthree"
    assert result.output_tail == "one\ntwo\nthree"
    assert not result.output_truncated


def test_on_line_gets_every_line_in_order(work: WorkDirs) -> None:
    lines: list[str] = []
    result = run_script(work, "i=0\nwhile [ $i -lt 2000 ]; do echo \"line $i\"; i=$((i+1)); done\n"
                              "printf 'crlf\\r\\n'\nprintf 'no newline'\n", on_line=lines.append)
    assert result.succeeded
    assert lines == [f"line {i}" for i in range(2000)] + ["crlf", "no newline"]


def test_on_line_splits_very_long_lines(work: WorkDirs) -> None:
    lines: list[str] = []
    total = 2 * MAX_LINE_BYTES + 1000
    run_script(work, f"head -c {total} /dev/zero | tr '\\0' a; echo; echo after\n", on_line=lines.append)
    assert [len(line) for line in lines] == [MAX_LINE_BYTES, MAX_LINE_BYTES, 1000, 5]
    assert lines[-1] == "after"


def test_a_failing_on_line_does_not_stop_the_run(work: WorkDirs) -> None:
    def explode(line: str) -> None:
        raise RuntimeError("callback broke")

    result = run_script(work, "seq 1 1000\n", on_line=explode)
    assert result.succeeded
    assert work.log_path.read_text().splitlines()[-1] == "1000"


def test_tail_keeps_only_the_end_of_the_output(work: WorkDirs) -> None:
    result = run_script(work, "seq 1 20000\n")
    assert len(result.output_tail.encode()) <= TAIL_BYTES
    assert len(result.output_tail.encode()) > TAIL_BYTES - 10
    assert result.output_tail.endswith("19999\n20000\n")
    assert work.log_path.read_text() == "".join(f"{i}\n" for i in range(1, 20001))


def test_tail_does_not_start_inside_a_utf8_character(work: WorkDirs) -> None:
    # 3000 two-byte characters and a newline: the last 4096 bytes start mid-character.
    result = run_script(work, "head -c 3000 /dev/zero | tr '\\0' x | sed 's/x/\u00e9/g'; echo\n")
    assert result.output_tail == "\u00e9" * 2047 + "\n"


def test_output_cap_truncates_the_log_but_the_script_finishes(work: WorkDirs) -> None:
    cap = 100 * 1024
    lines: list[str] = []
    result = run_script(
        work,
        "yes 0123456789abcdefghijklmnopqrstuvwxyz | head -c 3000000\necho done\nexit 0\n",
        output_cap=cap, on_line=lines.append,
    )
    assert result.succeeded
    assert result.output_truncated
    log = work.log_path.read_bytes()
    marker = f"[output truncated at {cap} bytes]\n".encode()
    assert log.endswith(marker)
    assert len(log) <= cap + len(marker) + 1
    assert log.startswith(b"0123456789abcdefghijklmnopqrstuvwxyz\n" * 100)
    assert result.output_tail.endswith("done\n")  # the tail follows the real end
    assert lines[-1] == marker.decode().rstrip("\n")
    assert sum(len(line) + 1 for line in lines[:-1]) < cap + 100


def test_output_under_the_cap_is_not_truncated(work: WorkDirs) -> None:
    result = run_script(work, "printf '12345678\\n'\n", output_cap=9)
    assert not result.output_truncated
    assert work.log_path.read_bytes() == b"12345678\n"


def test_run_uses_the_given_cwd_env_and_no_stdin(work: WorkDirs) -> None:
    env = make_env(work, variables={"MODEL": "small"})
    script = (
        'pwd\n'
        'echo "input=$INPUT_FILE_PATH service=$EXECUTION_SERVICE model=$MODEL"\n'
        'echo "secret=${AWS_SECRET_ACCESS_KEY:-unset} config=${FUNCTION_CONFIG:-unset}"\n'
        'cat\n'  # stdin is /dev/null: returns at once
        'echo written > "$TMP_OUTPUT_DIR/out.txt"\n'
    )
    result = run_script(work, script, env=env, deadline=Deadline.after(5.0))
    assert result.succeeded
    lines = work.log_path.read_text().splitlines()
    assert Path(lines[0]).resolve() == work.root.resolve()
    assert lines[1] == f"input={work.input_dir / 'a b.txt'} service=lambda model=small"
    assert lines[2] == "secret=unset config=unset"
    assert (work.output_dir / "out.txt").read_text() == "written\n"


def test_duration_measures_the_run(work: WorkDirs) -> None:
    result = run_script(work, "sleep 0.3\n")
    assert 0.3 <= result.duration < 5.0


# --- run: deadlines and leftovers -----------------------------------------------


def test_timeout_kills_the_script_and_its_grandchildren(work: WorkDirs) -> None:
    script = 'sleep 60 &\necho $! > "$PWD/gc.pid"\necho started\nsleep 60\n'
    start = time.monotonic()
    result = run_script(work, script, deadline=Deadline.after(1.0), grace=1.0)
    elapsed = time.monotonic() - start
    assert result.timed_out
    assert not result.succeeded
    assert result.exit_code in (128 + 15, 128 + 9)  # SIGTERM, or SIGKILL after the grace
    assert 1.0 <= elapsed < 5.0
    assert result.output_tail == "started\n"
    assert process_gone(int((work.root / "gc.pid").read_text()))


@pytest.mark.parametrize("redirect", ["", " >/dev/null 2>&1"])
def test_background_leftovers_die_when_the_script_exits(work: WorkDirs, redirect: str) -> None:
    script = f'sleep 60{redirect} &\necho $! > "$PWD/gc.pid"\necho bye\nexit 0\n'
    start = time.monotonic()
    result = run_script(work, script, deadline=Deadline.after(30.0), grace=1.0)
    assert time.monotonic() - start < 3.0
    assert result.succeeded
    assert result.output_tail == "bye\n"
    assert process_gone(int((work.root / "gc.pid").read_text()), wait=0.5)


def test_a_script_ignoring_sigterm_is_sigkilled_after_the_grace(work: WorkDirs) -> None:
    start = time.monotonic()
    result = run_script(work, "trap '' TERM\nsleep 60\n", deadline=Deadline.after(0.5), grace=0.5)
    elapsed = time.monotonic() - start
    assert result.timed_out
    assert result.exit_code == 137
    assert 1.0 <= elapsed < 4.0


def test_an_already_expired_deadline_stops_the_script_at_once(work: WorkDirs) -> None:
    start = time.monotonic()
    result = run_script(work, "sleep 60\n", deadline=Deadline.after(-1.0), grace=0.5)
    assert result.timed_out
    assert time.monotonic() - start < 2.0


def test_no_deadline_waits_for_the_script(work: WorkDirs) -> None:
    result = run_script(work, "sleep 0.2; echo finished\n", deadline=Deadline.none())
    assert result.succeeded
    assert result.output_tail == "finished\n"


@pytest.mark.skipif(shutil.which("setsid") is None, reason="needs setsid(1)")
def test_a_process_escaping_the_group_does_not_block_the_run(work: WorkDirs) -> None:
    script = 'setsid sleep 60 &\necho $! > "$PWD/escaped.pid"\necho bye\n'
    start = time.monotonic()
    try:
        result = run_script(work, script, deadline=Deadline.after(30.0), grace=0.5)
        assert time.monotonic() - start < 6.0
        assert result.succeeded
        assert result.output_tail == "bye\n"
        if become_subreaper():  # Linux: what left the group was adopted and killed too
            assert process_gone(int((work.root / "escaped.pid").read_text()), wait=0.5)
    finally:
        pid_file = work.root / "escaped.pid"
        if pid_file.exists():
            try:
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
            except ProcessLookupError:  # killed by the run already
                pass


# --- run: two runs at once in one process ----------------------------------------


def wait_for(path: Path, wait: float = 10.0) -> None:
    end = time.monotonic() + wait
    while not path.exists():
        if time.monotonic() >= end:
            raise AssertionError(f"{path} never appeared")
        time.sleep(0.02)


def in_thread(work: WorkDirs, text: str, **kwargs: Any) -> "Future[RunResult]":
    """Start :func:`run_script` on a thread of its own; its result, later."""
    future: "Future[RunResult]" = Future()

    def target() -> None:
        try:
            future.set_result(run_script(work, text, **kwargs))
        except BaseException as exc:  # handed to the test through the future
            future.set_exception(exc)

    threading.Thread(target=target, daemon=True).start()
    return future


# Waits for the test to say "go" (a file), then ends with the given status.
WAIT_THEN_EXIT = 'touch "$PWD/started"\nwhile [ ! -e "$PWD/go" ]; do sleep 0.02; done\n{body}'


def test_a_run_does_not_kill_the_script_of_a_concurrent_run(tmp_path: Path) -> None:
    first, second = WorkDirs.create(tmp_path), WorkDirs.create(tmp_path)
    short = in_thread(first, WAIT_THEN_EXIT.format(body="echo short\n"))
    wait_for(first.root / "started")
    long = in_thread(second, WAIT_THEN_EXIT.format(body="echo long\nexit 0\n"))
    wait_for(second.root / "started")
    (first.root / "go").touch()
    assert short.result(timeout=20).succeeded  # its end sweeps what it left behind
    (second.root / "go").touch()
    result = long.result(timeout=20)
    assert (result.exit_code, result.timed_out, result.output_tail) == (0, False, "long\n")


def test_a_run_spares_what_a_concurrent_run_left_outside_its_group(tmp_path: Path) -> None:
    if shutil.which("setsid") is None or not become_subreaper():
        pytest.skip("needs setsid(1) and a subreaper")
    first, second = WorkDirs.create(tmp_path), WorkDirs.create(tmp_path)
    short = in_thread(first, WAIT_THEN_EXIT.format(body="echo short\n"))
    wait_for(first.root / "started")
    # The daemon's parent exits at once: the daemon is this process's child from then on.
    body = ('kill -0 "$(cat "$PWD/daemon.pid")" && echo daemon alive\n')
    long = in_thread(second, 'sh -c \'setsid sleep 60 & echo $! > "$PWD/daemon.pid"\'\n'
                     + WAIT_THEN_EXIT.format(body=body))
    wait_for(second.root / "started")
    daemon = int((second.root / "daemon.pid").read_text())
    try:
        (first.root / "go").touch()
        assert short.result(timeout=20).succeeded
        (second.root / "go").touch()
        result = long.result(timeout=20)
        assert result.succeeded
        assert result.output_tail == "daemon alive\n"
        assert process_gone(daemon, wait=0.5)  # its own run's end still stops it
    finally:
        if not process_gone(daemon, wait=0):
            os.kill(daemon, signal.SIGKILL)


def test_a_daemon_left_while_another_run_goes_on_dies_by_the_end_of_both(
        tmp_path: Path) -> None:
    if shutil.which("setsid") is None or not become_subreaper():
        pytest.skip("needs setsid(1) and a subreaper")
    first, second = WorkDirs.create(tmp_path), WorkDirs.create(tmp_path)
    long = in_thread(first, WAIT_THEN_EXIT.format(body="echo long\n"))
    wait_for(first.root / "started")
    short = run_script(second, 'setsid sleep 60 &\necho $! > "$PWD/daemon.pid"\necho bye\n')
    daemon = int((second.root / "daemon.pid").read_text())
    try:
        assert short.succeeded
        (first.root / "go").touch()
        assert long.result(timeout=20).succeeded
        assert process_gone(daemon, wait=0.5)
    finally:
        if not process_gone(daemon, wait=0):
            os.kill(daemon, signal.SIGKILL)


# --- run: start failures --------------------------------------------------------


def test_a_missing_interpreter_is_a_script_error(work: WorkDirs) -> None:
    path = write_script("exit 0\n", work)
    with pytest.raises(ScriptError, match="/nonexistent/bin/sh"):
        run(["/nonexistent/bin/sh", str(path)], env={}, cwd=work.root,
            deadline=Deadline.after(5.0), log_path=work.log_path)


def test_a_non_executable_program_is_a_script_error(work: WorkDirs) -> None:
    program = work.root / "not-executable"
    program.write_text("#!/bin/sh\nexit 0\n")
    program.chmod(0o600)
    with pytest.raises(ScriptError, match="not-executable"):
        run([str(program)], env={}, cwd=work.root, deadline=Deadline.after(5.0),
            log_path=work.log_path)


def test_run_result_succeeded_needs_exit_zero_and_no_timeout(tmp_path: Path) -> None:
    def result(code: int, timed_out: bool) -> RunResult:
        return RunResult(exit_code=code, timed_out=timed_out, duration=0.0, output_tail="",
                         output_truncated=False, log_path=tmp_path / "log")

    assert result(0, False).succeeded
    assert not result(0, True).succeeded
    assert not result(1, False).succeeded
    assert not result(-15, True).succeeded


def test_build_env_passes_the_instance_ip(work: WorkDirs) -> None:
    assert make_env(work, instance_ip="10.1.2.3")["INSTANCE_IP"] == "10.1.2.3"
    assert make_env(work, variables={"INSTANCE_IP": "x"})["INSTANCE_IP"] == ""  # contract wins


NOT_ROOT_PROGRAM = r"""
import os, sys, tempfile
from pathlib import Path
from supervisor.runner import run
from supervisor.watchdog import Deadline
from supervisor.workdir import WorkDirs
os.environ["SUPERVISOR_SECRET_PROBE"] = "s3cr3t-in-the-supervisor"
work = WorkDirs.create(Path(tempfile.mkdtemp()))
script = work.root / "s.sh"
script.write_text('cat /proc/$PPID/environ > "$TMP_OUTPUT_DIR/seen" 2>&1; echo "rc=$?"\n')
result = run(["/bin/sh", str(script)], env={"PATH": "/usr/bin:/bin",
             "TMP_OUTPUT_DIR": str(work.output_dir)}, cwd=work.root,
             deadline=Deadline.after(20), log_path=work.log_path)
seen = (work.output_dir / "seen").read_text(errors="replace")
print("LEAKED" if "s3cr3t-in-the-supervisor" in seen else "HIDDEN", result.output_tail.strip())
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run the check as another user")
def test_a_script_cannot_read_the_supervisors_environment(tmp_path: Path) -> None:
    """As a non-root user (root can read any process): /proc/$PPID/environ is closed."""
    import subprocess

    nobody = 65534
    python = Path("/usr/bin/python3")  # the project's venv may live where nobody cannot go
    if not python.exists():
        pytest.skip("no /usr/bin/python3 for the unprivileged user")
    done = subprocess.run(
        [str(python), "-c", NOT_ROOT_PROGRAM], capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
             "HOME": str(tmp_path), "TMPDIR": "/tmp"},
        user=nobody, group=nobody, extra_groups=[], cwd="/tmp")
    if done.returncode != 0 and "Permission denied" in done.stderr:
        pytest.skip(f"user {nobody} cannot read the project: {done.stderr.strip()[-200:]}")
    assert done.returncode == 0, done.stderr[-2000:]
    verdict, rc = done.stdout.split()[:2]
    assert verdict == "HIDDEN" and rc != "rc=0", done.stdout
