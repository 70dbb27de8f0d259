#!/bin/sh
# ENTRYPOINT of an image that is both a Lambda container image and a Batch job image
# (layers/Dockerfile.example). Batch cannot replace an image's ENTRYPOINT, only its
# command, so this script chooses by its arguments:
#
#   supervisor-batch [ARG...]   the Batch job: python3 supervisor-batch.pyz ARG...
#   MODULE.FUNCTION             Lambda: the runtime interface client serving that handler
#                               (the image's CMD is supervisor.handler.lambda_handler)
#   COMMAND [ARG...]            anything else runs as given (a shell, a one-off command)
#
# Nothing is exported: the user's script sees the environment it would see anyway (no
# PYTHONPATH); the Lambda side puts the layer's directory on sys.path itself.
set -eu

SUPERVISOR_HOME=${SUPERVISOR_HOME:-/opt/supervisor}
SUPERVISOR_SITE=${SUPERVISOR_SITE:-/opt/python}
PYTHON=${SUPERVISOR_PYTHON:-python3}
# python3 -c RIC SITE HANDLER: SITE first on sys.path (and not the working directory),
# then awslambdaric's __main__ with sys.argv [.., HANDLER], as `python3 -m awslambdaric
# HANDLER` would run it.
RIC='import runpy, sys; sys.path[:] = [sys.argv.pop(1)] + [p for p in sys.path if p]; runpy.run_module("awslambdaric", run_name="__main__", alter_sys=True)'

is_handler() {  # one argument shaped like module.function that is not a command
  [ $# -eq 1 ] || return 1
  case "$1" in
    */*|-*|*[!A-Za-z0-9_.]*|.*|*.) return 1 ;;
    *.*) ! command -v "$1" >/dev/null 2>&1 ;;
    *) return 1 ;;
  esac
}

if [ $# -eq 0 ]; then
  echo "usage: $0 supervisor-batch [ARG...] | MODULE.FUNCTION | COMMAND [ARG...]" >&2
  exit 64
fi
if [ "$1" = supervisor-batch ]; then
  shift
  exec "$PYTHON" "$SUPERVISOR_HOME/supervisor-batch.pyz" "$@"
fi
if is_handler "$@"; then
  set -- "$PYTHON" -c "$RIC" "$SUPERVISOR_SITE" "$1"
  if [ -z "${AWS_LAMBDA_RUNTIME_API:-}" ] && command -v aws-lambda-rie >/dev/null 2>&1; then
    set -- aws-lambda-rie "$@"  # outside Lambda: the runtime interface emulator
  fi
fi
exec "$@"
