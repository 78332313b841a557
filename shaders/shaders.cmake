# Every kernel: vkf_shader(<name> <source> [DEFINE ...]).
# <name> is the op's name (as in backend/cpu and tests/); the C side refers to
# it as VKF_SHADER_<name>. A source compiled with different defines gives
# type or operation variants.
vkf_shader(matmul matmul.comp)
vkf_shader(matmul_wide matmul.comp VKF_MM_WIDE)
vkf_shader(add elementwise.comp OP_ADD)
vkf_shader(mul elementwise.comp OP_MUL)
vkf_shader(scale elementwise.comp OP_SCALE)
vkf_shader(row_sum reduce.comp)
vkf_shader(softmax softmax.comp)
# ---- norm: normalisation: layernorm, rmsnorm ----
# ---- act: activations: gelu, silu, swiglu ----
# ---- embed: embedding, bias gradient ----
# ---- rope: rotary position embedding ----
# ---- attn: attention ----
# ---- xent: loss: softmax cross-entropy ----
# ---- optim: optimiser: adamw, gradient norm and clipping ----
