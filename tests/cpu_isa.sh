#!/usr/bin/env bash
# The CPU backend on CPUs without AVX-512, and without AVX2, under QEMU's
# user-mode emulator: `qemu-x86_64 -cpu MODEL` makes CPUID report that
# model's features, so the run-time dispatch (target_clones resolvers,
# vkf_cpu_gemm_pick) picks what such a CPU gets.
#   cpu_isa.sh TESTS_DIR SOURCE_DIR
# 1. Haswell (AVX2 + FMA, no AVX-512): the CPU op-family tests (Vulkan off);
#    ref_dump training a small GPT with the AVX2 packed GEMM gives the same
#    bytes as natively with the AVX2 GEMM (the element loops' x86-64-v3 clones
#    against the host's), and natively the AVX2 and AVX-512 GEMM kernels give
#    the same bytes too.
# 2. qemu64 (baseline x86-64, SSE2): the same tests (portable clones; matmul
#    by OpenBLAS or the portable kernel), and the PyTorch reference cases gpt2
#    and llama with ref_dump emulated (OpenBLAS told to use its SSE3
#    kernels: see below).
# Exit 77 (skipped) without qemu-x86_64 (Debian: qemu-user) or off x86-64;
# without qemu-x86_64 and VKF_TEST_REQUIRE_QEMU=1 (CI), exit 1.
set -euo pipefail
tests=$1 src=$2
if [ "$(uname -m)" = x86_64 ] && ! command -v qemu-x86_64 >/dev/null &&
  [ "${VKF_TEST_REQUIRE_QEMU:-}" = 1 ]; then
  echo "FAIL: no qemu-x86_64 (install qemu-user), and VKF_TEST_REQUIRE_QEMU=1" >&2
  exit 1
fi
if [ "$(uname -m)" != x86_64 ] || ! command -v qemu-x86_64 >/dev/null; then
  echo "SKIP: needs x86-64 and qemu-x86_64 (install qemu-user); the CPU dispatch was not" \
       "checked on emulated CPUs" >&2
  exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# no Vulkan device: the Vulkan halves of the tests skip
export VK_DRIVER_FILES=/nonexistent/icd.json VK_ICD_FILENAMES=/nonexistent/icd.json
unset VKF_TEST_REQUIRE_VULKAN VKF_CPU_GEMM
fail=0
emu() { # emu MODEL PROGRAM ARGS...: QEMU's warnings about host-only features dropped
  local model=$1
  shift
  qemu-x86_64 -cpu "$model" "$@" 2> >(grep -v "TCG doesn't support" >&2)
}

run_tests() {
  local model=$1 t
  for t in test_elementwise test_reduce test_softmax test_act test_norm test_xent test_embed \
           test_optim test_rope test_matmul test_attn; do
    if ! emu "$model" "$tests/$t" >"$work/$t-$model.log" 2>&1; then
      echo "FAIL: $t on -cpu $model:" >&2
      grep -E "FAILED|ERROR|mismatch|Illegal" "$work/$t-$model.log" | head -20 >&2 || true
      fail=1
    else
      echo "ok: $t on -cpu $model"
    fi
  done
}

# A GPT-2 style model with 40 query rows per sequence (the packed attention
# path), d_model 96 (several GEMM panels and a partial one on both kernels).
cat >"$work/cfg.json" <<'EOF'
{"model_type": "gpt2", "vocab_size": 61, "n_positions": 64, "n_embd": 96, "n_layer": 2,
 "n_head": 3, "layer_norm_epsilon": 1e-5}
EOF
dump() { # dump OUTDIR [emulator args...]
  local out=$1
  shift
  mkdir -p "$out"
  "$@" "$tests/ref_dump" --config "$work/cfg.json" --out "$out" --device cpu --seed 11 --steps 3 \
    --batch 2 --seq 40 --lr 1e-3 --weight-decay 0.1 --grad-clip 1.0 --init-scale 5 \
    --perturb 0.1 >/dev/null
}
body() { # body FILE: a safetensors file's tensor bytes (after the 8-byte length and the JSON
  # header, whose metadata names the device and its GEMM path)
  local n
  n=$(od -An -t u8 -N 8 "$1" | tr -d ' ')
  tail -c +$((9 + n)) "$1"
}
same() { # same WHAT DIR_A DIR_B: the same tensor bytes
  if cmp -s <(body "$2/dump.safetensors") <(body "$3/dump.safetensors") &&
    [ "$(body "$2/dump.safetensors" | wc -c)" -gt 0 ]; then
    echo "ok: $1: the same bytes"
  else
    echo "FAIL: $1: the dumps differ" >&2
    fail=1
  fi
}

# 1. AVX2 without AVX-512
run_tests Haswell
if grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo; then
  VKF_CPU_GEMM=avx2 dump "$work/native-avx2"
  VKF_CPU_GEMM=avx2 dump "$work/haswell-avx2" emu Haswell
  same "ref_dump, AVX2 GEMM: native against -cpu Haswell" "$work/native-avx2" "$work/haswell-avx2"
  if grep -qw avx512f /proc/cpuinfo; then
    VKF_CPU_GEMM=avx512 dump "$work/native-avx512"
    same "ref_dump natively: AVX-512 GEMM against AVX2 GEMM" "$work/native-avx512" \
      "$work/native-avx2"
  fi
fi

# 2. baseline x86-64. OpenBLAS 0.3.21 (DYNAMIC_ARCH) takes QEMU's older
# models for Haswell and dies on an AVX2 instruction (its own sgemm, with no
# vkformer code involved): its SSE3 kernels are named instead.
export OPENBLAS_CORETYPE=Prescott
run_tests qemu64
printf '#!/usr/bin/env bash\nexec qemu-x86_64 -cpu qemu64 "%s" "$@" 2> >(grep -v "TCG doesn'"'"'t support" >&2)\n' \
  "$tests/ref_dump" >"$work/ref_dump_qemu64"
chmod +x "$work/ref_dump_qemu64"
for c in gpt2 llama; do
  set +e
  "$src/tests/torch_ref/$c.sh" "$work/ref_dump_qemu64" cpu "$work/torch_ref" >"$work/$c.log" 2>&1
  rc=$?
  set -e
  case $rc in
    0) echo "ok: torch_ref $c on -cpu qemu64" ;;
    77) echo "skipped: torch_ref $c on -cpu qemu64 ($(tail -1 "$work/$c.log"))" ;;
    *)
      echo "FAIL: torch_ref $c on -cpu qemu64:" >&2
      tail -20 "$work/$c.log" >&2
      fail=1
      ;;
  esac
done
exit $fail
