#!/bin/sh
# scar-plants: classify one uploaded image with the DEEP-OC plants model.
# deepaas-cli logs its progress and prints the prediction (a Python dict) last;
# that dict is written as JSON to $TMP_OUTPUT_DIR/<image name>.json, which the
# supervisor uploads to the output path.
set -eu

OUTPUT_FILE="$TMP_OUTPUT_DIR/$(basename "$INPUT_FILE_PATH").json"
LOG_FILE="$PWD/deepaas.log"   # beside, not inside, the output dir: not uploaded

echo "classifying $INPUT_FILE_PATH"
if ! deepaas-cli predict --files "$INPUT_FILE_PATH" >"$LOG_FILE" 2>&1; then
  cat "$LOG_FILE" >&2
  echo "deepaas-cli predict failed" >&2
  exit 1
fi

PREDICTION=$(grep -o '{.*}' "$LOG_FILE" | tail -n 1 || true)
if [ -z "$PREDICTION" ]; then
  cat "$LOG_FILE" >&2
  echo "no prediction in the output of deepaas-cli" >&2
  exit 1
fi
printf '%s\n' "$PREDICTION" | python3 -c '
import ast, json, sys
print(json.dumps(ast.literal_eval(sys.stdin.read()), indent=2))
' >"$OUTPUT_FILE"
echo "prediction written to $OUTPUT_FILE"
