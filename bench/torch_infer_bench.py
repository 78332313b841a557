#!/usr/bin/python3
"""Inference throughput of a PyTorch GPT-2-style model with a KV cache, the
reference for bench_infer: prefill tokens/s (one forward over the prompt,
filling the cache) and decode tokens/s (greedy, one token per forward, the
cache preallocated and written in place). Prints two lines:
`prefill_tokens_per_s <value>` and `decode_tokens_per_s <value>` (medians of
--reps runs after one warm-up), for the fastest of the --threads settings
tried, plus `threads <n>`.

  torch_infer_bench.py --d-model 384 --layers 6 --heads 6 --vocab 256 \
                       --prompt 256 --new 128 --threads 1,2
"""
import argparse
import math
import statistics
import time

import torch
import torch.nn.functional as F


def build(a):
    torch.manual_seed(0)
    C, V, T = a.d_model, a.vocab, a.prompt + a.new
    P = {"wte": torch.randn(V, C) * 0.02, "wpe": torch.randn(T, C) * 0.02,
         "lnf_w": torch.ones(C), "lnf_b": torch.zeros(C), "layers": []}
    for _ in range(a.layers):
        P["layers"].append({
            "ln1_w": torch.ones(C), "ln1_b": torch.zeros(C),
            "attn_w": torch.randn(C, 3 * C) * 0.02, "attn_b": torch.zeros(3 * C),
            "proj_w": torch.randn(C, C) * 0.02, "proj_b": torch.zeros(C),
            "ln2_w": torch.ones(C), "ln2_b": torch.zeros(C),
            "fc_w": torch.randn(C, 4 * C) * 0.02, "fc_b": torch.zeros(4 * C),
            "fc2_w": torch.randn(4 * C, C) * 0.02, "fc2_b": torch.zeros(C)})
    return P


def forward(P, a, idx, pos0, kc, vc):
    """idx [1, T] at positions pos0..pos0+T-1; kc/vc[l] [1, H, Tmax, D]
    receive the new keys/values; returns the last position's logits."""
    C, H = a.d_model, a.heads
    D = C // H
    T = idx.shape[1]
    x = P["wte"][idx] + P["wpe"][pos0:pos0 + T][None]
    end = pos0 + T
    for l, L in enumerate(P["layers"]):
        h = F.layer_norm(x, (C,), L["ln1_w"], L["ln1_b"], 1e-5)
        qkv = torch.addmm(L["attn_b"], h.view(T, C), L["attn_w"])
        q, k, v = qkv.view(1, T, 3, H, D).permute(2, 0, 3, 1, 4)
        kc[l][:, :, pos0:end] = k
        vc[l][:, :, pos0:end] = v
        K, Vv = kc[l][:, :, :end], vc[l][:, :, :end]
        s = (q @ K.transpose(-1, -2)) * (1.0 / math.sqrt(D))
        if T > 1:
            i = torch.arange(pos0, end)[:, None]
            j = torch.arange(end)[None, :]
            s = s.masked_fill(j > i, float("-inf"))
        y = (torch.softmax(s, dim=-1) @ Vv).transpose(1, 2).reshape(T, C)
        x = x + torch.addmm(L["proj_b"], y, L["proj_w"]).view(1, T, C)
        h = F.layer_norm(x, (C,), L["ln2_w"], L["ln2_b"], 1e-5)
        f = F.gelu(torch.addmm(L["fc_b"], h.view(T, C), L["fc_w"]), approximate="tanh")
        x = x + torch.addmm(L["fc2_b"], f, L["fc2_w"]).view(1, T, C)
    x = F.layer_norm(x[:, -1], (C,), P["lnf_w"], P["lnf_b"], 1e-5)
    return x @ P["wte"].t()


def run(P, a, prompt):
    C, H = a.d_model, a.heads
    Tmax = a.prompt + a.new
    kc = [torch.zeros(1, H, Tmax, C // H) for _ in range(a.layers)]
    vc = [torch.zeros(1, H, Tmax, C // H) for _ in range(a.layers)]
    t0 = time.perf_counter()
    logits = forward(P, a, prompt, 0, kc, vc)
    t1 = time.perf_counter()
    tok = int(logits.argmax())
    for i in range(a.new - 1):
        logits = forward(P, a, torch.tensor([[tok]]), a.prompt + i, kc, vc)
        tok = int(logits.argmax())
    t2 = time.perf_counter()
    return a.prompt / (t1 - t0), (a.new - 1) / (t2 - t1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--d-model", type=int, required=True)
    ap.add_argument("--layers", type=int, required=True)
    ap.add_argument("--heads", type=int, required=True)
    ap.add_argument("--vocab", type=int, default=256)
    ap.add_argument("--prompt", type=int, default=256)
    ap.add_argument("--new", type=int, default=128)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    P = build(a)
    prompt = torch.randint(0, a.vocab, (1, a.prompt))
    best = None
    with torch.no_grad():
        for n in [int(t) for t in a.threads.split(",")]:
            torch.set_num_threads(n)
            run(P, a, prompt)  # warm-up
            r = [run(P, a, prompt) for _ in range(a.reps)]
            pre = statistics.median(x[0] for x in r)
            dec = statistics.median(x[1] for x in r)
            if best is None or dec > best[2]:
                best = (n, pre, dec)
    print("threads %d" % best[0])
    print("prefill_tokens_per_s %.1f" % best[1])
    print("decode_tokens_per_s %.1f" % best[2])


if __name__ == "__main__":
    main()
