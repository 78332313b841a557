#!/usr/bin/env bash
# GPT-2 style: layernorm, tanh GELU, learned positions, biases, fused QKV
# stored [in, out], tied head. seq 8 < n_positions 16: the unused position
# rows must keep a zero gradient and only decay.
CASE=gpt2
CONFIG='{"model_type": "gpt2", "vocab_size": 61, "n_positions": 16, "n_embd": 32,
 "n_layer": 2, "n_head": 4, "layer_norm_epsilon": 1e-5}'
ARGS=(--seed 11 --steps 10 --batch 2 --seq 8 --lr 1e-3 --weight-decay 0.1 --grad-clip 1.0
      --init-scale 5 --perturb 0.1)
source "$(dirname "$0")/common.sh"
