#!/usr/bin/python3
"""Training throughput of the PyTorch reference model (scripts/torch_reference.py)
for bench_train: prints one line `tokens_per_s <value>` (median of --reps
timed windows of --steps steps each, after --warmup steps).

  torch_train_bench.py --d-model 128 --layers 4 --heads 4 --seq 128 --batch 8 --vocab 256
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import torch_reference as ref  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--d-model", type=int, required=True)
    ap.add_argument("--layers", type=int, required=True)
    ap.add_argument("--heads", type=int, required=True)
    ap.add_argument("--seq", type=int, required=True)
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--vocab", type=int, default=256)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    C = a.d_model
    cfg = ref.Cfg({"vocab_size": a.vocab, "n_embd": C, "n_layer": a.layers, "n_head": a.heads,
                   "n_positions": a.seq})
    P = {}
    def p(name, *shape, std=0.02, one=False):
        t = torch.ones(*shape) if one else (torch.randn(*shape) * std if len(shape) == 2 else torch.zeros(*shape))
        P[name] = t.requires_grad_(True)
    p("wte.weight", a.vocab, C)
    p("wpe.weight", a.seq, C)
    for l in range(a.layers):
        h = "h.%d." % l
        p(h + "ln_1.weight", C, one=True); p(h + "ln_1.bias", C)
        p(h + "attn.c_attn.weight", C, 3 * C); p(h + "attn.c_attn.bias", 3 * C)
        p(h + "attn.c_proj.weight", C, C); p(h + "attn.c_proj.bias", C)
        p(h + "ln_2.weight", C, one=True); p(h + "ln_2.bias", C)
        p(h + "mlp.c_fc.weight", C, 4 * C); p(h + "mlp.c_fc.bias", 4 * C)
        p(h + "mlp.c_proj.weight", 4 * C, C); p(h + "mlp.c_proj.bias", C)
    p("ln_f.weight", C, one=True); p("ln_f.bias", C)
    opt = torch.optim.AdamW(list(P.values()), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1)
    idx = torch.randint(0, a.vocab, (a.batch, a.seq))
    tgt = torch.randint(0, a.vocab, (a.batch, a.seq))

    def step():
        opt.zero_grad(set_to_none=True)
        logits = ref.forward(cfg, P, idx)
        loss = F.cross_entropy(logits.reshape(-1, a.vocab), tgt.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(P.values()), 1.0)
        opt.step()

    for _ in range(a.warmup):
        step()
    rates = []
    for _ in range(a.reps):
        t0 = time.perf_counter()
        for _ in range(a.steps):
            step()
        rates.append(a.batch * a.seq * a.steps / (time.perf_counter() - t0))
    print("tokens_per_s %.1f" % statistics.median(rates))


if __name__ == "__main__":
    main()
