#!/usr/bin/env bash
# Llama style: RMSNorm, SwiGLU (gate/up packed), rotate-half RoPE, GQA
# (4 query heads on 2 key/value heads), no biases, untied head.
CASE=llama
CONFIG='{"model_type": "llama", "vocab_size": 53, "max_position_embeddings": 16,
 "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
 "num_key_value_heads": 2, "intermediate_size": 48, "rms_norm_eps": 1e-5,
 "rope_theta": 10000.0, "attention_bias": false, "tie_word_embeddings": false}'
ARGS=(--seed 12 --steps 10 --batch 2 --seq 8 --lr 1e-3 --weight-decay 0.1 --grad-clip 1.0
      --init-scale 5 --perturb 0.1)
source "$(dirname "$0")/common.sh"
