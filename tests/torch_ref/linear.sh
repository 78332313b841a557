#!/usr/bin/env bash
# Linear attention (vkformer_attention "linear": elu + 1 feature map, causal)
# in a Llama-style model with GQA (4 query heads on 2 key/value heads), RoPE
# and SwiGLU. seq 80 spans two of the kernels' 64-token chunks, so the
# carried chunk states and the backward's reverse-time states are in play;
# the reference sums over j <= i directly.
CASE=linear
CONFIG='{"model_type": "llama", "vocab_size": 53, "max_position_embeddings": 96,
 "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
 "num_key_value_heads": 2, "intermediate_size": 48, "rms_norm_eps": 1e-5,
 "rope_theta": 10000.0, "attention_bias": false, "tie_word_embeddings": false,
 "vkformer_attention": "linear"}'
ARGS=(--seed 14 --steps 10 --batch 2 --seq 80 --lr 1e-3 --weight-decay 0.1 --grad-clip 1.0
      --init-scale 5 --perturb 0.1)
source "$(dirname "$0")/common.sh"
