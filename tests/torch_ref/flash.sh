#!/usr/bin/env bash
# Flash attention (tiled, online softmax) in a Llama-style model with GQA
# (4 query heads on 2 key/value heads): a sequence of 70 tokens spans two
# of the CPU kernel's 64-key tiles and several of the Vulkan kernel's, so
# the online softmax's rescaling and the backward's recomputation across
# tiles are what PyTorch's plain softmax attention checks.
CASE=flash
CONFIG='{"model_type": "vkformer", "vocab_size": 41, "max_position_embeddings": 72,
 "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
 "num_key_value_heads": 2, "intermediate_size": 40, "rms_norm_eps": 1e-5,
 "rope_theta": 10000.0, "attention_bias": false, "tie_word_embeddings": true,
 "vkformer_norm": "rmsnorm", "vkformer_mlp": "swiglu", "vkformer_positions": "rope",
 "vkformer_bias": false, "vkformer_attention": "flash"}'
ARGS=(--seed 15 --steps 10 --batch 2 --seq 70 --lr 1e-3 --weight-decay 0.1 --grad-clip 1.0
      --init-scale 5 --perturb 0.1)
source "$(dirname "$0")/common.sh"
