#!/bin/sh
# scar-mrbayes: run MrBayes on the uploaded NEXUS file.
# mb writes its results (.p, .t, .mcmc, .pstat, .con.tre, ...) beside the data file it
# executes, so the analysis runs on a copy in $TMP_OUTPUT_DIR; the copy and the command
# file are removed at the end, leaving the results and mrbayes.log to be uploaded.
set -eu

NAME=$(basename "$INPUT_FILE_PATH")
cd "$TMP_OUTPUT_DIR"
cp "$INPUT_FILE_PATH" "$NAME"

cat >commands.nex <<EOF2
set autoclose=yes nowarn=yes
execute $NAME
lset nst=6 rates=gamma
mcmc ngen=${ITERATIONS:-10000} samplefreq=100 printfreq=1000 savebrlens=yes
sump
sumt
quit
EOF2

status=0
mb <commands.nex >mrbayes.log 2>&1 || status=$?
rm -f "$NAME" commands.nex
if [ "$status" -ne 0 ]; then
  tail -n 20 mrbayes.log >&2
  echo "mb failed with exit code $status" >&2
fi
exit "$status"
