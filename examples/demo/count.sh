#!/bin/sh
# demo-count (lambda-batch): takes longer than its Lambda allows, so it finishes on Batch.
set -eu
name=$(basename "$INPUT_FILE_PATH")
echo "counting the words of $name on $EXECUTION_SERVICE (takes ${WORK_SECONDS}s)"
sleep "$WORK_SECONDS"
wc -w < "$INPUT_FILE_PATH" | tr -d ' ' > "$TMP_OUTPUT_DIR/${name%.*}.words"
