#!/bin/sh
# Counts lines, words and bytes of the uploaded file and writes an upper-cased copy.
set -eu
name=$(basename "$INPUT_FILE_PATH")
mkdir -p "$TMP_OUTPUT_DIR/reports"
wc -l -w -c < "$INPUT_FILE_PATH" > "$TMP_OUTPUT_DIR/reports/$name.wc.txt"
tr 'a-z' 'A-Z' < "$INPUT_FILE_PATH" > "$TMP_OUTPUT_DIR/$name.upper.txt"
echo "processed $name ($(wc -c < "$INPUT_FILE_PATH") bytes) on $EXECUTION_SERVICE"
