#!/usr/bin/env bash
# Sets up, builds and runs the whole test suite through ctest.
#   scripts/test.sh              Release build in build/
#   scripts/test.sh --sanitize   AddressSanitizer + UBSan build in build-asan/
# Vulkan tests run on the default device (lavapipe where there is no GPU)
# with the Khronos validation layer; set VKF_TEST_DEVICE to pick another.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/vkformer-xdg-$(id -u)}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
if [ "${1:-}" = "--sanitize" ]; then
  BUILD_DIR=build-asan BUILD_TYPE=RelWithDebInfo scripts/build.sh -DVKF_SANITIZE=ON
  dir=build-asan
else
  scripts/build.sh
  dir=build
fi
cd "$dir"
ctest --output-on-failure -j"$(nproc)" --timeout 900
