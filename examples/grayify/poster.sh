#!/bin/sh
# The first frame of the gray video as a still image, made by the image's ffmpeg.
set -eu
name=$(basename "$INPUT_FILE_PATH")
echo "poster: $name on $EXECUTION_SERVICE"
ffmpeg -loglevel error -nostats -i "$INPUT_FILE_PATH" -frames:v 1 \
    "$TMP_OUTPUT_DIR/${name%.*}.png"
