#!/bin/sh
# demo-report (batch): writes a small report next to the count.
set -eu
name=$(basename "$INPUT_FILE_PATH")
{
  echo "object:  s3://$STORAGE_BUCKET/$STORAGE_OBJECT_KEY"
  echo "words:   $(cat "$INPUT_FILE_PATH")"
  echo "ran on:  $EXECUTION_SERVICE, in $(busybox | head -n 1 | cut -d' ' -f1-2)"
  echo "request: $REQUEST_ID"
} > "$TMP_OUTPUT_DIR/${name%.*}.report.txt"
echo "report for $name written"
