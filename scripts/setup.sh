#!/usr/bin/env bash
# Installs what vkformer needs to build and test on Debian 12, skipping what
# is already there (idempotent). Needs root or sudo only when something is
# missing.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  glslc glslang-tools            # shaders are compiled to SPIR-V at build time
  libvulkan-dev libvulkan-volk-dev  # Vulkan headers; volk loads Vulkan at run time
  libopenblas-dev                # CPU matmul (CBLAS)
  libcmocka-dev                  # tests
  mesa-vulkan-drivers            # lavapipe: Vulkan on the CPU, for machines without a GPU
  vulkan-validationlayers        # tests run with the Khronos validation layer
  python3-torch python3-numpy    # tests/torch_ref: GPT training checked against PyTorch
  qemu-user                      # tests/cpu_isa.sh: the CPU backend on emulated CPUs without AVX-512/AVX2
  bible-kjv                      # the King James Bible: the main sample's training text
)
if [ "${1:-}" = "--with-tools" ]; then
  packages+=(vulkan-tools)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all packages present"
  exit 0
fi
echo "setup: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
