# Every kernel: vkf_shader(<name> <source> [DEFINE ...]).
# <name> is the op's name (as in backend/cpu and tests/); the C side refers to
# it as VKF_SHADER_<name>. A source compiled with different defines gives
# type or operation variants.
vkf_shader(matmul matmul.comp)
vkf_shader(add elementwise.comp OP_ADD)
vkf_shader(mul elementwise.comp OP_MUL)
vkf_shader(scale elementwise.comp OP_SCALE)
vkf_shader(row_sum reduce.comp)
vkf_shader(softmax softmax.comp)
# ---- norm: normalisation: layernorm, rmsnorm ----
# ---- act: activations: gelu, silu, swiglu ----
# ---- embed: embedding, bias gradient ----
vkf_shader(embedding embed.comp EMBEDDING)
vkf_shader(embedding_backward embed.comp EMBEDDING_BACKWARD)
vkf_shader(embedding_backward_pos embed.comp EMBEDDING_BACKWARD_POS)
vkf_shader(bias_backward embed.comp BIAS_BACKWARD)
vkf_shader(bias_backward_final embed.comp BIAS_BACKWARD_FINAL)
# ---- rope: rotary position embedding ----
vkf_shader(rope rope.comp)
vkf_shader(rope_backward rope.comp BACKWARD)
# ---- attn: attention ----
# ---- xent: loss: softmax cross-entropy ----
vkf_shader(cross_entropy xent.comp XENT_FORWARD)
vkf_shader(cross_entropy_reduce xent.comp XENT_REDUCE)
vkf_shader(cross_entropy_backward xent.comp XENT_BACKWARD)
vkf_shader(cross_entropy_backward_scale xent.comp XENT_SCALE)
# ---- optim: optimiser: adamw, gradient norm and clipping ----
