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
# _vec4: the same kernel on vec4 loads (rows of a multiple of 4, 16-byte aligned operands)
vkf_shader(layernorm norm.comp LAYERNORM)
vkf_shader(layernorm_vec4 norm.comp LAYERNORM VEC4)
vkf_shader(rmsnorm norm.comp RMSNORM)
vkf_shader(rmsnorm_vec4 norm.comp RMSNORM VEC4)
vkf_shader(layernorm_backward norm_backward.comp LAYERNORM)
vkf_shader(layernorm_backward_vec4 norm_backward.comp LAYERNORM VEC4)
vkf_shader(rmsnorm_backward norm_backward.comp RMSNORM)
vkf_shader(rmsnorm_backward_vec4 norm_backward.comp RMSNORM VEC4)
vkf_shader(norm_backward_reduce norm_reduce.comp)
vkf_shader(norm_backward_reduce_vec4 norm_reduce.comp VEC4)
# ---- act: activations: gelu, silu, swiglu ----
vkf_shader(gelu act.comp GELU)
vkf_shader(gelu_vec4 act.comp GELU VEC4)
vkf_shader(gelu_backward act.comp GELU BACKWARD)
vkf_shader(gelu_backward_vec4 act.comp GELU BACKWARD VEC4)
vkf_shader(silu act.comp SILU)
vkf_shader(silu_vec4 act.comp SILU VEC4)
vkf_shader(silu_backward act.comp SILU BACKWARD)
vkf_shader(silu_backward_vec4 act.comp SILU BACKWARD VEC4)
vkf_shader(swiglu act.comp SWIGLU)
vkf_shader(swiglu_vec4 act.comp SWIGLU VEC4)
vkf_shader(swiglu_backward act.comp SWIGLU BACKWARD)
vkf_shader(swiglu_backward_vec4 act.comp SWIGLU BACKWARD VEC4)
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
vkf_shader(attention_qk attention_qk.comp)
vkf_shader(attention_softmax attention_rows.comp OP_SOFTMAX)
vkf_shader(attention_ds attention_rows.comp OP_DS)
vkf_shader(attention_pv attention_pv.comp)
vkf_shader(attention_dkv attention_dkv.comp)
# linear attention: chunk states, their scans, the chunk rows (MODE: forward, dq, dk, dv),
# the backward's g rows, one decoding step
vkf_shader(attention_linear_state attention_linear_state.comp)
vkf_shader(attention_linear_scan attention_linear_scan.comp)
vkf_shader(attention_linear_chunk attention_linear_chunk.comp)
vkf_shader(attention_linear_g attention_linear_g.comp)
vkf_shader(attention_linear_decode attention_linear_decode.comp)
# ---- xent: loss: softmax cross-entropy ----
vkf_shader(cross_entropy xent.comp XENT_FORWARD)
vkf_shader(cross_entropy_reduce xent.comp XENT_REDUCE)
vkf_shader(cross_entropy_backward xent.comp XENT_BACKWARD)
vkf_shader(cross_entropy_backward_scale xent.comp XENT_SCALE)
# ---- optim: optimiser: adamw, gradient norm and clipping ----
vkf_shader(adamw optim_adamw.comp)
vkf_shader(grad_norm optim_grad_norm.comp)
vkf_shader(grad_norm_final optim_grad_norm.comp FINAL)
vkf_shader(clip_grads optim_clip.comp)
# ---- infer: inference: KV-cache writes ----
vkf_shader(kv_write infer.comp)
# matvec: b stored [K, N] (_nn) or [N, K] (_nt); _vec4 on aligned operands
vkf_shader(matvec_nn matvec.comp NN)
vkf_shader(matvec_nn_vec4 matvec.comp NN VEC4)
vkf_shader(matvec_nt matvec.comp NT)
vkf_shader(matvec_nt_vec4 matvec.comp NT VEC4)
