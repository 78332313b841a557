#!/usr/bin/env bash
# The other mix: RMSNorm, SwiGLU with biases (packed gate/up weight and
# bias), learned positions under Llama names (model.embed_positions),
# GQA 6 -> 2 heads, untied head, no gradient clipping.
CASE=swiglu_bias
CONFIG='{"model_type": "vkformer", "vocab_size": 37, "max_position_embeddings": 12,
 "hidden_size": 24, "num_hidden_layers": 1, "num_attention_heads": 6,
 "num_key_value_heads": 2, "intermediate_size": 32, "rms_norm_eps": 1e-6,
 "attention_bias": true, "tie_word_embeddings": false, "vkformer_norm": "rmsnorm",
 "vkformer_mlp": "swiglu", "vkformer_positions": "learned", "vkformer_bias": true}'
ARGS=(--seed 14 --steps 10 --batch 2 --seq 7 --lr 1e-3 --weight-decay 0.1 --grad-clip 0
      --init-scale 5 --perturb 0.1)
source "$(dirname "$0")/common.sh"
