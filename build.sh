#!/usr/bin/env bash
# Project tasks. Every one sets up what it needs on a fresh machine first.
#   ./build.sh test    mypy + the whole test suite (unit and moto-server integration)
#   ./build.sh demo    the end-to-end demo on the embedded local AWS endpoint
#   ./build.sh layer   supervisor build into dist/: the layers and supervisor-batch.pyz
#   ./build.sh bench   the benchmarks (not part of test)
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(pwd)
VENV=${VENV:-$ROOT/.venv}
PY=$VENV/bin/python

log() { printf '==> %s\n' "$*" >&2; }

ensure_system_packages() {
  # proot runs udocker containers (execmode P1); busybox-static builds the tiny test image;
  # docker-registry and skopeo serve and push test images; fakechroot and patchelf run
  # execmode F1; libseccomp2 lets the tests deny ptrace as Lambda does.
  local missing=()
  command -v proot >/dev/null 2>&1 || missing+=(proot)
  [ -x /bin/busybox ] || command -v busybox >/dev/null 2>&1 || missing+=(busybox-static)
  [ -x /usr/bin/skopeo ] || missing+=(skopeo)
  [ -x /usr/bin/docker-registry ] || missing+=(docker-registry)
  [ -f /usr/lib/x86_64-linux-gnu/fakechroot/libfakechroot.so ] \
    || dpkg -s libfakechroot >/dev/null 2>&1 || missing+=(fakechroot)
  [ -x /usr/bin/patchelf ] || missing+=(patchelf)
  compgen -G '/usr/lib/*/libseccomp.so.2' >/dev/null \
    || compgen -G '/usr/lib64/libseccomp.so.2' >/dev/null || missing+=(libseccomp2)
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    log "missing system packages: ${missing[*]} (install them: apt-get install -y ${missing[*]})"
    return 0
  fi
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# Run a setup step with its chatter (pip's and setuptools' warnings and banners) kept in
# a file, shown only when the step fails.
quietly() {
  local out status=0
  out=$(mktemp)
  "$@" >"$out" 2>&1 || status=$?
  if [ "$status" != 0 ]; then
    cat "$out" >&2
    log "failed ($status): $*"
  fi
  rm -f "$out"
  return "$status"
}

ensure_venv() {
  if [ ! -x "$PY" ]; then
    log "creating $VENV"
    python3 -m venv "$VENV"
    quietly "$PY" -m pip install -q --upgrade pip
  fi
  local stamp="$VENV/.stamp-deps" want
  want=$(cat setup.cfg pyproject.toml | sha256sum | cut -d' ' -f1)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    log "installing the project and its test dependencies into $VENV"
    quietly "$PY" -m pip install -q --disable-pip-version-check -e ".[test]"
    echo "$want" > "$stamp"
  fi
}

cmd_test() {
  ensure_system_packages
  ensure_venv
  log "ruff"
  "$VENV/bin/ruff" check supervisor tests bench
  log "mypy"
  "$VENV/bin/mypy"
  log "pytest"
  "$VENV/bin/pytest" "$@"
}

cmd_layer() {
  # The installed package's own builder (supervisor build --help), into dist/; the pinned
  # wheels are fetched once into dist/.wheels. Skips what is up to date with
  # dist/.supervisor-build.json (--force rebuilds). The udocker layer takes Debian's proot,
  # patchelf and libfakechroot. deploy and local need none of this: they build into
  # ~/.cache/supervisor on their own.
  ensure_system_packages
  ensure_venv
  "$VENV/bin/supervisor" build --out dist --wheelhouse dist/.wheels "$@"
}

cmd_demo() {
  # The local default: an embedded AWS endpoint, the demo workflow deployed into it with the
  # real provisioning code, one upload through lambda -> lambda-batch -> batch, in containers.
  # supervisor local builds the layers and supervisor-batch.pyz into ~/.cache/supervisor on
  # first use (and again only when the package changes).
  ensure_system_packages
  ensure_venv
  local image=examples/demo/busybox.tar
  [ -f "$image" ] || "$PY" -m supervisor.local.image "$image"
  "$VENV/bin/supervisor" local -f examples/demo/workflow.yaml \
    --put examples/demo/sample.txt "$@"
  local report=.supervisor-local/outputs/demo/reports/sample.report.txt
  if [ -f "$report" ]; then
    printf '\nThe report the last function wrote (%s):\n' "$report"
    cat "$report"
  fi
}

cmd_bench() {
  # Not part of test: timings only. Sets up the peer's own venv (faas-supervisor 1.5.8) and
  # matplotlib (the chart) in .venv when missing; python -m bench.run --help for options.
  ensure_venv
  if [ ! -x /usr/bin/time ]; then
    if [ "$(id -u)" = 0 ]; then
      DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null
    else
      log "/usr/bin/time is missing (apt-get install -y time)"; exit 1
    fi
  fi
  local peer="$ROOT/bench/.peer-venv"
  if ! "$peer/bin/python" -c 'import faassupervisor, webdav3, boto3, yaml' 2>/dev/null; then
    log "creating $peer (faas-supervisor 1.5.8)"
    python3 -m venv "$peer"
    # 1.5.8's metadata has a broken requirement (webdavclient3 (==3.14.6requests)).
    "$peer/bin/python" -m pip install -q --disable-pip-version-check --no-deps faas-supervisor==1.5.8
    "$peer/bin/python" -m pip install -q --disable-pip-version-check \
      webdavclient3==3.14.6 requests boto3 pyyaml setuptools
  fi
  if ! "$PY" -c 'import matplotlib' 2>/dev/null; then
    log "installing matplotlib into $VENV (the chart only)"
    "$PY" -m pip install -q --disable-pip-version-check matplotlib
  fi
  "$PY" -m bench.run "$@"
}

main() {
  case "${1:-}" in
    test) shift; cmd_test "$@" ;;
    demo) shift; cmd_demo "$@" ;;
    layer) shift; cmd_layer "$@" ;;
    bench) shift; cmd_bench "$@" ;;
    *) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
  esac
}

# The whole file is read before anything runs: editing it during a long run is safe.
main "$@"; exit
