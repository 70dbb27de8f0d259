#!/bin/sh
# A gray copy of the uploaded video, made by the image's ffmpeg.
set -eu
name=$(basename "$INPUT_FILE_PATH")
echo "grayify: $name on $EXECUTION_SERVICE"
ffmpeg -loglevel error -nostats -i "$INPUT_FILE_PATH" -vf hue=s=0 -c:a copy \
    "$TMP_OUTPUT_DIR/$name"
