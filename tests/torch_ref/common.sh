#!/usr/bin/env bash
# Shared driver of the PyTorch reference cases (sourced by <case>.sh):
#   <case>.sh REF_DUMP DEVICE WORKDIR
# writes the case's config (CONFIG, a JSON string set by the case) to
# WORKDIR/<case>-<device>/in.json, runs ref_dump with the case's training
# arguments (ARGS), then scripts/torch_reference.py on the dump.
# Exit codes: 0 pass, 1 mismatch or error, 77 skipped (ctest SKIP_RETURN_CODE):
# without python3-torch/numpy the case skips, unless VKF_TEST_REQUIRE_TORCH=1
# (CI), where it fails; ref_dump itself skips a Vulkan case without a device
# unless VKF_TEST_REQUIRE_VULKAN=1.
set -euo pipefail
ref_dump=$1 device=$2 work=$3
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
script="$here/../../scripts/torch_reference.py"
python=${VKF_TEST_PYTHON:-/usr/bin/python3}
if ! "$python" -c 'import torch, numpy' 2>/dev/null; then
  if [ "${VKF_TEST_REQUIRE_TORCH:-}" = 1 ]; then
    echo "FAIL: $python cannot import torch and numpy (python3-torch, python3-numpy)," \
         "and VKF_TEST_REQUIRE_TORCH=1" >&2
    exit 1
  fi
  echo "SKIP: $python cannot import torch and numpy (install python3-torch python3-numpy);" \
       "the PyTorch reference case $CASE did not run" >&2
  exit 77
fi
dir="$work/$CASE-$device"
rm -rf "$dir"
mkdir -p "$dir"
printf '%s\n' "$CONFIG" > "$dir/in.json"
set +e
"$ref_dump" --config "$dir/in.json" --out "$dir" --device "$device" "${ARGS[@]}"
rc=$?
set -e
if [ $rc -ne 0 ]; then
  exit $rc
fi
exec "$python" "$script" --config "$dir/config.json" --weights "$dir/model.safetensors" \
  --dump "$dir/dump.safetensors" --report "$dir/report.txt"
