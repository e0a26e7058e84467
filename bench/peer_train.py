#!/usr/bin/python3
"""The PyTorch side of bench/train_vs_torch.sh: trains the same Llama shape as
`qai train` (RMSNorm, RoPE, causal attention, SwiGLU, untied head, AdamW) in
fp32 on random tokens and prints one JSON line: tokens/s (median over the timed
steps), peak resident memory. With MATMUL bf16 the forward pass runs under
torch.autocast("cpu", dtype=torch.bfloat16) (PyTorch's CPU mixed precision:
matmuls in bf16, fp32 master weights and optimizer), as `qai train --matmul bf16`.

usage: peer_train.py DIM LAYERS HEADS FFN VOCAB SEQ BATCH STEPS THREADS [fp32|bf16]
"""
import json
import math
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

D, L, H, FF, V, T, B, STEPS, THREADS = map(int, sys.argv[1:10])
MATMUL = sys.argv[10] if len(sys.argv) > 10 else "fp32"
if MATMUL not in ("fp32", "bf16"):
    sys.exit("peer_train.py: MATMUL must be fp32 or bf16")
torch.set_num_threads(THREADS)
torch.manual_seed(0)
S = D // H


class RMSNorm(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.w = nn.Parameter(torch.ones(d))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * self.w


freq = 10000.0 ** (-torch.arange(0, S, 2).float() / S)
ang = torch.arange(T)[:, None].float() * freq[None, :]
COS, SIN = torch.cos(ang)[None, :, None, :], torch.sin(ang)[None, :, None, :]


def rope(x):
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack((a * COS - b * SIN, a * SIN + b * COS), dim=-1).flatten(-2)


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.n1, self.n2 = RMSNorm(D), RMSNorm(D)
        self.q, self.k, self.v, self.o = (nn.Linear(D, D, bias=False) for _ in range(4))
        self.w1, self.w3 = nn.Linear(D, FF, bias=False), nn.Linear(D, FF, bias=False)
        self.w2 = nn.Linear(FF, D, bias=False)

    def forward(self, x, mask):
        h = self.n1(x)
        q = rope(self.q(h).view(B, T, H, S)).transpose(1, 2)
        k = rope(self.k(h).view(B, T, H, S)).transpose(1, 2)
        v = self.v(h).view(B, T, H, S).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(S)
        att = att.masked_fill(mask, float("-inf")).softmax(-1)
        x = x + self.o((att @ v).transpose(1, 2).reshape(B, T, D))
        h = self.n2(x)
        return x + self.w2(F.silu(self.w1(h)) * self.w3(h))


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(V, D)
        self.blocks = nn.ModuleList(Block() for _ in range(L))
        self.norm = RMSNorm(D)
        self.out = nn.Linear(D, V, bias=False)

    def forward(self, idx, tgt):
        mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
        x = self.emb(idx)
        for b in self.blocks:
            x = b(x, mask)
        logits = self.out(self.norm(x))
        return F.cross_entropy(logits.reshape(-1, V), tgt.reshape(-1))


m = Model()
opt = torch.optim.AdamW(m.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.1)
times = []
for step in range(STEPS + 2):
    tok = torch.randint(0, V, (B, T + 1))
    t0 = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=MATMUL == "bf16"):
        loss = m(tok[:, :T], tok[:, 1:])
    loss.backward()
    torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
    opt.step()
    if step >= 2:  # two warm-up steps
        times.append(time.perf_counter() - t0)
tok_s = B * T / statistics.median(times)
print(json.dumps({"peer": "pytorch " + torch.__version__, "matmul": MATMUL, "tok_s": round(tok_s, 1),
                  "maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                  "loss": round(loss.item(), 4)}))
