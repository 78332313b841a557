#!/usr/bin/python3
"""PyTorch reference for vkformer's GPT training.

Builds the model that a vkformer config.json describes, in plain PyTorch
(no transformers package), from the same initial safetensors weights, runs
the same batches with the same AdamW hyperparameters (constant learning
rate, decoupled weight decay on 2-D tensors, global-norm clipping), and
compares with the dump tests/ref_dump.c wrote:

  logits, loss and every gradient of the first step, then the loss and the
  gradient norm of every step and the weights after the last one.

  torch_reference.py --config config.json --weights model.safetensors \
                     --dump dump.safetensors [--report out.txt]

Exits 0 when everything is within tolerance, 1 otherwise; prints, per
quantity, the largest error and its ratio to the bound (the headroom), and
the worst of each kind at the end. Needs only Debian's python3-torch (1.13)
and python3-numpy. The tolerances are explained at TOLERANCES below.

The model follows Hugging Face's layouts and math: GPT-2 (Conv1D weights
stored [in, out], tanh GELU, learned positions, tied head) or Llama (weights
[out, in], RMSNorm, rotate-half RoPE, SwiGLU, GQA), and the mixes vkformer's
own config keys allow (sliding-window attention included).
"""
import argparse
import json
import math
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

DTYPES = {"F32": np.float32, "F16": np.float16, "I32": np.int32, "I64": np.int64,
          "F64": np.float64, "U8": np.uint8}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (hlen,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + hlen].decode("utf-8").rstrip(" "))
    meta = header.pop("__metadata__", {})
    base = 8 + hlen
    out = {}
    for name, e in header.items():
        b, en = e["data_offsets"]
        raw = data[base + b:base + en]
        if e["dtype"] == "BF16":
            u16 = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
            arr = u16.view(np.float32)
        else:
            arr = np.frombuffer(raw, dtype=DTYPES[e["dtype"]])
        out[name] = torch.from_numpy(arr.copy().reshape(e["shape"]))
    return out, meta


class Cfg:
    def __init__(self, j):
        llama = "hidden_size" in j
        if llama:
            self.V, self.C = j["vocab_size"], j["hidden_size"]
            self.L, self.H = j["num_hidden_layers"], j["num_attention_heads"]
            self.Hkv = j.get("num_key_value_heads") or self.H
            self.T = j["max_position_embeddings"]
            self.F = j.get("intermediate_size")
            self.eps = j.get("rms_norm_eps", 1e-5)
            self.theta = j.get("rope_theta", 10000.0)
            self.norm, self.mlp, self.pos = "rmsnorm", "swiglu", "rope"
            self.bias = bool(j.get("attention_bias", False))
            self.tied = bool(j.get("tie_word_embeddings", False))
        else:
            self.V, self.C = j["vocab_size"], j["n_embd"]
            self.L, self.H = j["n_layer"], j["n_head"]
            self.Hkv = self.H
            self.T = j.get("n_positions") or j["n_ctx"]
            self.F = j.get("n_inner")
            self.eps = j.get("layer_norm_epsilon", 1e-5)
            self.theta = 10000.0
            self.norm, self.mlp, self.pos = "layernorm", "gelu", "learned"
            self.bias = True
            self.tied = bool(j.get("tie_word_embeddings", True))
        self.norm = j.get("vkformer_norm", self.norm)
        self.mlp = j.get("vkformer_mlp", self.mlp)
        self.pos = j.get("vkformer_positions", self.pos)
        self.bias = bool(j.get("vkformer_bias", self.bias))
        self.attention = j.get("vkformer_attention", "standard")
        self.window = j.get("sliding_window") or 0
        if not self.F:
            self.F = 4 * self.C if self.mlp == "gelu" else (8 * self.C // 3 + 31) // 32 * 32
        self.D = self.C // self.H
        self.gpt2 = (self.norm == "layernorm" and self.mlp == "gelu" and self.pos == "learned"
                     and self.bias and self.tied and self.Hkv == self.H)


def norm(cfg, x, w, b):
    if cfg.norm == "layernorm":
        return F.layer_norm(x, (x.shape[-1],), w, b, cfg.eps)
    r = x * torch.rsqrt((x * x).mean(-1, keepdim=True) + cfg.eps) * w
    return r if b is None else r + b


def rope(cfg, x):
    # x [B, T, H, D], rotate-half pairs (i, i + D/2)
    B, T, H, D = x.shape
    inv = 1.0 / (cfg.theta ** (torch.arange(0, D, 2, dtype=torch.float64) / D))
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]
    cos, sin = ang.cos().float()[None, :, None, :], ang.sin().float()[None, :, None, :]
    x1, x2 = x[..., :D // 2], x[..., D // 2:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


def attention(cfg, q, k, v):
    # q [B, T, H, D], k/v [B, T, Hkv, D]
    B, T, H, D = q.shape
    rep = H // cfg.Hkv
    k = k.repeat_interleave(rep, dim=2)
    v = v.repeat_interleave(rep, dim=2)
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))
    s = (q @ k.transpose(-1, -2)) / math.sqrt(D)
    i = torch.arange(T)[:, None]
    j = torch.arange(T)[None, :]
    visible = j <= i
    if cfg.attention == "sliding":
        visible = visible & (i - j < cfg.window)
    s = s.masked_fill(~visible, float("-inf"))
    y = torch.softmax(s, dim=-1) @ v
    return y.transpose(1, 2).reshape(B, T, H * D)


def forward(cfg, P, idx):
    B, T = idx.shape
    g = cfg.gpt2
    wte = P["wte.weight" if g else "model.embed_tokens.weight"]
    x = wte[idx]
    if cfg.pos == "learned":
        x = x + P["wpe.weight" if g else "model.embed_positions.weight"][:T][None]
    C, H, Hkv, D = cfg.C, cfg.H, cfg.Hkv, cfg.D
    for l in range(cfg.L):
        if g:
            p = "h.%d." % l
            h = norm(cfg, x, P[p + "ln_1.weight"], P[p + "ln_1.bias"])
            qkv = h @ P[p + "attn.c_attn.weight"] + P[p + "attn.c_attn.bias"]
            q, k, v = qkv.split([H * D, Hkv * D, Hkv * D], dim=-1)
        else:
            p = "model.layers.%d." % l
            h = norm(cfg, x, P[p + "input_layernorm.weight"], P.get(p + "input_layernorm.bias"))
            def lin(name):
                y = h @ P[p + name + ".weight"].t()
                return y + P[p + name + ".bias"] if cfg.bias else y
            q, k, v = lin("self_attn.q_proj"), lin("self_attn.k_proj"), lin("self_attn.v_proj")
        q = q.reshape(B, T, H, D)
        k = k.reshape(B, T, Hkv, D)
        v = v.reshape(B, T, Hkv, D)
        if cfg.pos == "rope":
            q, k = rope(cfg, q), rope(cfg, k)
        a = attention(cfg, q, k, v)
        if g:
            x = x + a @ P[p + "attn.c_proj.weight"] + P[p + "attn.c_proj.bias"]
            h = norm(cfg, x, P[p + "ln_2.weight"], P[p + "ln_2.bias"])
            f = F.gelu(h @ P[p + "mlp.c_fc.weight"] + P[p + "mlp.c_fc.bias"], approximate="tanh")
            x = x + f @ P[p + "mlp.c_proj.weight"] + P[p + "mlp.c_proj.bias"]
        else:
            o = a @ P[p + "self_attn.o_proj.weight"].t()
            x = x + (o + P[p + "self_attn.o_proj.bias"] if cfg.bias else o)
            h = norm(cfg, x, P[p + "post_attention_layernorm.weight"],
                     P.get(p + "post_attention_layernorm.bias"))
            def lin(name, inp):
                y = inp @ P[p + name + ".weight"].t()
                return y + P[p + name + ".bias"] if cfg.bias else y
            if cfg.mlp == "swiglu":
                f = F.silu(lin("mlp.gate_proj", h)) * lin("mlp.up_proj", h)
            else:
                f = F.gelu(lin("mlp.up_proj", h), approximate="tanh")
            x = x + lin("mlp.down_proj", f)
    if g:
        x = norm(cfg, x, P["ln_f.weight"], P["ln_f.bias"])
    else:
        x = norm(cfg, x, P["model.norm.weight"], P.get("model.norm.bias"))
    head = P["lm_head.weight"] if not cfg.tied else wte
    return x @ head.t()


# TOLERANCES. Both sides compute in fp32 (unit roundoff u = 6e-8) but sum in
# different orders (vkformer's tiled GEMMs and workgroup reductions, or its
# CPU backend's double accumulators, against PyTorch's MKL/OpenBLAS
# kernels), so neither is "the truth": the bounds are what fp32 rounding
# through this network can explain, with about 5-10x headroom over the
# largest errors measured on the CPU backend and on lavapipe (see the
# report each run prints; the figures in the comments are the worst seen
# over the tests/torch_ref cases on both).
#
# logits: |err| <= 1e-6 * max|logits| + 4e-6 * |ref|. The forward is ~10
#   chained reductions of <= 4*d_model terms; rounding is relative to the
#   magnitudes summed, i.e. to the logits' scale, not to each logit (a logit
#   near 0 comes from cancelling terms). Worst seen: 3.5e-7 * max|logits|.
LOGITS_ATOL_SCALE, LOGITS_RTOL = 1e-6, 4e-6
# loss (and the loss of every later step): relative 1e-6 (~4 ulp of a loss
#   near 3.6; worst seen 2.4e-7, later steps included: they only add the
#   effect of weights that differ by ~1e-6 relative).
LOSS_RTOL = 1e-6
# gradients: |err| <= 1e-6 * G + 4e-6 * |ref|, G = the largest gradient
#   element of the whole model. Backward rounding is relative to the terms
#   summed, which are of the model's gradient scale, not to each result: the
#   key bias gradient is exactly 0 in exact arithmetic (softmax ignores a
#   shift of a score row), so both sides return rounding noise (~1e-11), and
#   a per-tensor relative bound would demand agreement of noise. Worst
#   seen: 4.4e-7 * G.
GRAD_ATOL_SCALE, GRAD_RTOL = 1e-6, 4e-6
# gradient norm (before clipping), every step: relative 1e-6. The norm
#   is dominated by the large gradient elements, which agree to a few 1e-7
#   relative; vkformer sums the squares in f32 per workgroup (Vulkan) or in
#   double (CPU), ~1e-7 relative more. Worst seen: 2.1e-7.
NORM_RTOL = 1e-6
# weights after the AdamW steps: per element
#     |err| <= steps * WEIGHT_RTOL * |w| + WEIGHT_ATOL
#              + lr * sum_t min(2, 2 d_t / (sqrt(v_hat_t) + eps))
#   The first terms are the rounding of the update arithmetic, which
#   accumulates over the steps: PyTorch decays with p *= fl(1 - lr*wd), whose
#   rounding alone is up to u relative per step, and the multiply adds u
#   (vkformer computes p - lr*wd*p, exact to ~1e-11). A weight of 1 has an
#   ulp of 1.2e-7; worst seen 1 ulp, and 5e-7 relative after 10 steps of
#   decay alone. The sum is what AdamW does with
#   gradient errors: a step moves a weight by lr * m_hat / (sqrt(v_hat) + eps),
#   so a gradient error d_t (the gradient bound above, at that step's
#   gradient) changes the move by up to ~2 lr d_t / (sqrt(v_hat_t) + eps),
#   and by no more than 2 lr (Adam's normalised step m_hat / sqrt(v_hat) is
#   about +-1 on either side). The allowance is ~1e-4 lr per step for the
#   median element (90% below 6e-4 lr); it reaches 2 lr only where the
#   gradient is pure rounding noise (the key biases: their update direction
#   is the sign of noise, on either side). Elements whose
#   reference gradient is exactly 0 at every step (position rows past the
#   sequence, tokens absent from every batch of an untied table) get no
#   allowance when vkformer's first gradient is exactly 0 there too: both
#   sides must then apply exactly the decay. Worst seen on elements with a
#   real gradient: 2.4e-4 lr (1 ulp of the weight); on the key biases,
#   whose gradient is noise: 0.59 lr.
WEIGHT_RTOL, WEIGHT_ATOL = 1.5e-7, 1e-8  # WEIGHT_RTOL per step


class Report:
    def __init__(self):
        self.lines, self.ok, self.worst, self.scaled = [], True, {}, {}

    def check(self, kind, what, got, want, bound):
        got = got.detach().double().reshape(-1)
        want = want.detach().double().reshape(-1)
        bound = bound.detach().double().reshape(-1) if torch.is_tensor(bound) else \
            torch.full_like(want, float(bound))
        if got.shape != want.shape:
            self.lines.append("%-58s SHAPE %s vs %s" % (what, tuple(got.shape), tuple(want.shape)))
            self.ok = False
            return
        err = (got - want).abs()
        bad = ~(err <= bound)  # NaN is bad
        ratio = float((err / bound.clamp_min(1e-300)).max()) if err.numel() else 0.0
        worst = float(err.max()) if err.numel() else 0.0
        status = "ok" if not bool(bad.any()) else "%d OUT OF BOUNDS" % int(bad.sum())
        self.lines.append("%-58s max err %.3e  err/bound %.3f  %s" % (what, worst, ratio, status))
        if bad.any():
            self.ok = False
            for i in bad.nonzero().reshape(-1)[:5].tolist():
                self.lines.append("    [%d] got %.9g want %.9g bound %.3g" %
                                  (i, float(got[i]), float(want[i]), float(bound[i])))
        w = self.worst.get(kind)
        if w is None or ratio > w[0]:
            self.worst[kind] = (ratio, worst, what)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--weights", required=True, help="the initial weights vkformer started from")
    ap.add_argument("--dump", required=True, help="ref_dump's dump.safetensors")
    ap.add_argument("--report", help="also write the report here")
    a = ap.parse_args()
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    with open(a.config) as f:
        cfg = Cfg(json.load(f))
    init, _ = read_safetensors(a.weights)
    dump, meta = read_safetensors(a.dump)
    P = {}
    for name, t in init.items():
        if name.startswith("transformer."):
            name = name[len("transformer."):]
        P[name] = t.float().clone().requires_grad_(True)
    steps = int(meta["steps"])
    lr, b1, b2 = float(meta["lr"]), float(meta["beta1"]), float(meta["beta2"])
    eps, wd, clip = float(meta["eps"]), float(meta["weight_decay"]), float(meta["grad_clip"])
    inputs, targets = dump["inputs"].long(), dump["targets"].long()
    decay = [p for n, p in P.items() if p.dim() == 2]
    no_decay = [p for n, p in P.items() if p.dim() != 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": wd},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=lr, betas=(b1, b2), eps=eps)
    rep = Report()
    rep.lines.append("device %s; %d steps, lr %g, betas (%g, %g), eps %g, weight decay %g, "
                     "clip %g" % (meta.get("device", "?"), steps, lr, b1, b2, eps, wd, clip))
    losses, norms = [], []
    allowance = {n: torch.zeros_like(p, dtype=torch.float64) for n, p in P.items()}
    ever_nonzero = {n: torch.zeros_like(p, dtype=torch.bool) for n, p in P.items()}
    for s in range(steps):
        opt.zero_grad()
        logits = forward(cfg, P, inputs[s])
        loss = F.cross_entropy(logits.reshape(-1, cfg.V), targets[s].reshape(-1))
        loss.backward()
        losses.append(loss.item())
        G = max(float(p.grad.abs().max()) for p in P.values())
        if s == 0:
            scale = float(logits.abs().max())
            got_logits = dump["logits"].reshape(logits.shape)
            rep.check("logits", "logits (step 1)", got_logits, logits,
                      LOGITS_ATOL_SCALE * scale + LOGITS_RTOL * logits.detach().abs())
            rep.scaled["logits: max err / max|logits|"] = float(
                (got_logits.double() - logits.detach().double()).abs().max()) / scale
            rep.check("loss", "loss (step 1)", dump["loss"].reshape(()), loss,
                      LOSS_RTOL * abs(loss.item()))
            rep.lines.append("largest gradient element G = %.4g" % G)
            gerr = 0.0
            for name, p in P.items():
                got_g = dump["grad." + name].reshape(p.shape)
                rep.check("grad", "grad " + name, got_g, p.grad,
                          GRAD_ATOL_SCALE * G + GRAD_RTOL * p.grad.abs())
                gerr = max(gerr, float((got_g.double() - p.grad.double()).abs().max()))
            rep.scaled["gradients: max err / G"] = gerr / G
        norms.append(float(torch.cat([p.grad.reshape(-1) for p in P.values()]).double().norm()))
        factor = 1.0  # the clip factor scales the gradients and their errors alike
        if clip > 0:
            norm = float(torch.nn.utils.clip_grad_norm_(list(P.values()), clip))
            factor = min(1.0, clip / (norm + 1e-6))
        for name, p in P.items():
            ever_nonzero[name] |= p.grad != 0
        opt.step()
        # what the gradient bound can do through this step's AdamW update
        bc2 = 1.0 - b2 ** (s + 1)
        for name, p in P.items():
            d = factor * GRAD_ATOL_SCALE * G + GRAD_RTOL * p.grad.detach().double().abs()
            vhat = opt.state[p]["exp_avg_sq"].double() / bc2
            allowance[name] += lr * torch.clamp(2 * d / (vhat.sqrt() + eps), max=2.0)
    ref_losses = torch.tensor(losses, dtype=torch.float64)
    rep.check("loss", "losses (%d steps)" % steps, dump["losses"].reshape(-1), ref_losses,
              LOSS_RTOL * ref_losses.abs())
    rep.scaled["losses: max relative err"] = float(
        ((dump["losses"].double() - ref_losses).abs() / ref_losses.abs()).max())
    ref_norms = torch.tensor(norms, dtype=torch.float64)
    rep.scaled["gradient norms: max relative err"] = float(
        ((dump["grad_norms"].double() - ref_norms).abs() / ref_norms).max())
    rep.check("norm", "gradient norms (%d steps)" % steps, dump["grad_norms"].reshape(-1),
              ref_norms, NORM_RTOL * ref_norms)
    werr_normal = werr_noise = 0.0
    for name, p in P.items():
        w = p.detach().double()
        # exactly 0 on both sides (PyTorch at every step, vkformer at step 1)
        exact = ~ever_nonzero[name] & (dump["grad." + name].reshape(p.shape) == 0)
        allow = torch.where(exact, torch.zeros_like(w), allowance[name])
        bound = steps * WEIGHT_RTOL * w.abs() + WEIGHT_ATOL + allow
        got_w = dump["final." + name].reshape(p.shape)
        rep.check("weights", "weights after %d steps: %s" % (steps, name), got_w, p, bound)
        err = (got_w.double() - w).abs()
        noise = allow > 0.01 * lr * steps  # the gradient is at rounding-noise level
        if (~noise).any():
            werr_normal = max(werr_normal, float(err[~noise].max()))
        if noise.any():
            werr_noise = max(werr_noise, float(err[noise].max()))
    rep.scaled["weights: max err / lr (elements with a real gradient)"] = werr_normal / lr
    rep.scaled["weights: max err / lr (gradient at noise level)"] = werr_noise / lr
    rep.lines.append("scaled errors:")
    for k, v in rep.scaled.items():
        rep.lines.append("  %-56s %.3e" % (k, v))
    rep.lines.append("worst per kind (err/bound, max err, where):")
    for kind, (ratio, worst, what) in sorted(rep.worst.items()):
        rep.lines.append("  %-8s %.3f  %.3e  %s" % (kind, ratio, worst, what))
    text = "\n".join(rep.lines) + "\n%s\n" % ("PASS" if rep.ok else "FAIL")
    print(text)
    if a.report:
        with open(a.report, "w") as f:
            f.write(text)
    return 0 if rep.ok else 1


if __name__ == "__main__":
    sys.exit(main())
