#!/usr/bin/env bash
# A mix no Hugging Face family has: layernorm with biases, RoPE, multi-query
# attention (1 key/value head), sliding-window attention (window 3 < seq 8),
# tanh-GELU MLP, biases everywhere, tied head; Llama tensor names. A clip
# of 0.05 is below the gradient norm, so clipping is active every step.
CASE=mixed
CONFIG='{"model_type": "vkformer", "vocab_size": 47, "max_position_embeddings": 16,
 "hidden_size": 24, "num_hidden_layers": 2, "num_attention_heads": 4,
 "num_key_value_heads": 1, "intermediate_size": 40, "rms_norm_eps": 1e-5,
 "rope_theta": 500.0, "attention_bias": true, "tie_word_embeddings": true,
 "sliding_window": 3, "vkformer_norm": "layernorm", "vkformer_mlp": "gelu",
 "vkformer_positions": "rope", "vkformer_bias": true, "vkformer_attention": "sliding"}'
ARGS=(--seed 13 --steps 10 --batch 3 --seq 8 --lr 2e-3 --weight-decay 0.05 --grad-clip 0.05
      --init-scale 5 --perturb 0.1)
source "$(dirname "$0")/common.sh"
