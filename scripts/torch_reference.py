#!/usr/bin/python3
"""PyTorch reference for vkformer's GPT training.

Builds the model that a vkformer config.json describes, in plain PyTorch
(no transformers package), from the same initial safetensors weights, runs
the same batches with the same AdamW hyperparameters, and compares with the
dump the `train` sample wrote (--dump):

  logits, loss and every gradient of the first step, then the loss of every
  step and the weights after the last one.

  torch_reference.py --config config.json --weights init.safetensors \
                     --dump dump.safetensors [--report out.txt]

Exits 0 when everything is within tolerance (printed with the worst
errors), 1 otherwise. Needs only Debian's python3-torch (1.13) and numpy.

The model follows Hugging Face's layouts and math: GPT-2 (Conv1D weights
stored [in, out], tanh GELU, learned positions, tied head) or Llama (weights
[out, in], RMSNorm, rotate-half RoPE, SwiGLU, GQA), and the mixes vkformer's
own config keys allow.
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


def compare(report, what, got, want, atol, rtol):
    got = got.detach().double()
    want = want.detach().double()
    if got.shape != want.shape:
        report.append("%-40s SHAPE %s vs %s" % (what, tuple(got.shape), tuple(want.shape)))
        return False
    err = (got - want).abs()
    bound = atol + rtol * want.abs()
    bad = int((err > bound).sum())
    worst = float(err.max()) if err.numel() else 0.0
    rel = float((err.norm() / (want.norm() + 1e-30))) if err.numel() else 0.0
    report.append("%-40s max abs err %.3e  normalised %.3e  %s" %
                  (what, worst, rel, "ok" if bad == 0 else "%d OUT OF BOUNDS" % bad))
    return bad == 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--weights", required=True, help="the initial weights vkformer started from")
    ap.add_argument("--dump", required=True, help="vkformer's dump (train --dump)")
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
    report, ok = [], True
    # Tolerances. fp32 everywhere; vkformer and PyTorch sum in different
    # orders (tiled GEMMs, workgroup reductions), so results differ by a few
    # ulps times the reduction depth; over a few layers that is ~1e-5
    # relative. Logits and loss get 1e-4 relative; gradients, which chain
    # every op backwards, 1e-3 relative with an absolute floor of 1e-5 times
    # the gradient's scale; weights after AdamW steps move by lr per step, and
    # a near-zero second moment can amplify tiny gradient differences, so the
    # bound is 1e-4 absolute (lr 1e-3 gives steps of about 1e-3).
    losses = []
    for s in range(steps):
        opt.zero_grad()
        logits = forward(cfg, P, inputs[s])
        loss = F.cross_entropy(logits.reshape(-1, cfg.V), targets[s].reshape(-1))
        loss.backward()
        losses.append(loss.item())
        if s == 0:
            ok &= compare(report, "logits (step 1)", dump["logits"].reshape(logits.shape), logits,
                          1e-5, 1e-4)
            ok &= compare(report, "loss (step 1)", dump["loss"].reshape(()), loss, 1e-6, 1e-5)
            for name, p in P.items():
                gscale = float(p.grad.abs().max()) + 1e-12
                ok &= compare(report, "grad " + name, dump["grad." + name].reshape(p.shape),
                              p.grad, 1e-5 * gscale, 1e-3)
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(list(P.values()), clip)
        opt.step()
    ok &= compare(report, "losses (%d steps)" % steps, dump["losses"].reshape(-1),
                  torch.tensor(losses), 1e-5, 1e-4)
    for name, p in P.items():
        ok &= compare(report, "weights after %d steps: %s" % (steps, name),
                      dump["final." + name].reshape(p.shape), p, 1e-4, 1e-3)
    text = "\n".join(report) + "\n%s\n" % ("PASS" if ok else "FAIL")
    print(text)
    if a.report:
        with open(a.report, "w") as f:
            f.write(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
