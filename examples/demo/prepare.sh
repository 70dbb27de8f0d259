#!/bin/sh
# demo-prepare (lambda): upper-cases the uploaded text.
set -eu
name=$(basename "$INPUT_FILE_PATH")
tr 'a-z' 'A-Z' < "$INPUT_FILE_PATH" > "$TMP_OUTPUT_DIR/${name%.*}.txt"
echo "prepared $name on $EXECUTION_SERVICE"
