#!/usr/bin/env bash
# Sets up, builds and runs the main sample: trains a small byte-level GPT on
# the King James Bible for about three minutes on the default device, then
# generates a passage from it. Arguments go to `train` (see
# build/samples/train --help); with none it uses its defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/vkformer-xdg-$(id -u)}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
scripts/build.sh

# The King James Bible as plain text, one verse per line (once; data/ is not
# tracked). `bible` (Debian's bible-kjv) prints a heading per chapter
# ("Genesis 1"), blank lines, and each verse as "  <number> <text>": keep
# only the verse text.
if [ ! -s data/kjv.txt ]; then
  if ! command -v bible >/dev/null; then
    echo "run-sample: the bible program is missing (Debian package bible-kjv)" >&2
    exit 1
  fi
  mkdir -p data
  bible -l0 "gen1:1-rev22:21" | sed -n 's/^  [0-9][0-9]* //p' > data/kjv.txt.tmp
  verses=$(wc -l < data/kjv.txt.tmp)
  first=$(head -n 1 data/kjv.txt.tmp)
  last=$(tail -n 1 data/kjv.txt.tmp)
  if [ "$verses" -ne 31102 ] ||
     [ "$first" != "In the beginning God created the heaven and the earth." ] ||
     [ "$last" != "The grace of our Lord Jesus Christ be with you all. Amen." ] ||
     LC_ALL=C grep -q '[^ -~]' data/kjv.txt.tmp; then
    echo "run-sample: bible's output does not look like the 31102 verses of the KJV" \
         "($verses lines; first: \"$first\")" >&2
    rm -f data/kjv.txt.tmp
    exit 1
  fi
  mv data/kjv.txt.tmp data/kjv.txt
  echo "run-sample: data/kjv.txt: $verses verses, $(wc -c < data/kjv.txt) bytes"
fi

build/samples/train "$@"
echo
echo "run-sample: generate --prompt \"And God said\" --tokens 300 (out/kjv/checkpoint.safetensors)"
build/samples/generate --prompt "And God said" --tokens 300
