#!/usr/bin/python3
"""Writes tests/data/train_ref.json: a PyTorch reference for qai's training step.

The same tiny Llama-shaped model as qai trains (RMSNorm, RoPE on adjacent pairs
(the GGUF "NORM" layout), grouped-query causal attention, SwiGLU, untied output
head, mean cross-entropy) is built here from first principles in float64, with
weights from a formula both sides compute, and trained for 3 AdamW steps on a
fixed batch. The fixture holds the losses of every step, the gradients of step 1
and the weights after step 3. Run with Debian's python3-torch:

    /usr/bin/python3 tests/tools/train_ref.py > tests/data/train_ref.json
"""
import json
import math

import torch

torch.set_default_dtype(torch.float64)
D, L, H, G, F, V, T, B = 16, 2, 4, 2, 24, 32, 8, 2
S = D // H
EPS, THETA = 1e-5, 10000.0
LR, MIN_LR, WARMUP, STEPS = 3e-2, 3e-3, 2, 3
BETAS, ADAM_EPS, WD, CLIP = (0.9, 0.95), 1e-8, 0.1, 0.5


def names():
    out = [("token_embd.weight", (V, D))]
    for l in range(L):
        p = f"blk.{l}."
        out += [(p + "attn_norm.weight", (D,)), (p + "attn_q.weight", (H * S, D)),
                (p + "attn_k.weight", (G * S, D)), (p + "attn_v.weight", (G * S, D)),
                (p + "attn_output.weight", (D, H * S)), (p + "ffn_norm.weight", (D,)),
                (p + "ffn_gate.weight", (F, D)), (p + "ffn_up.weight", (F, D)),
                (p + "ffn_down.weight", (D, F))]
    return out + [("output_norm.weight", (D,)), ("output.weight", (V, D))]


def init_value(ti, j, is_norm):
    # the formula tests/train/test_train_ref.c uses too
    if is_norm:
        return 1.0 + 0.1 * math.sin(0.7 * j + ti)
    return 0.3 * math.sin(0.37 * j + 1.3 * ti) * math.cos(0.11 * j)


params = {}
for ti, (n, shape) in enumerate(names()):
    count = math.prod(shape)
    vals = [init_value(ti, j, len(shape) == 1) for j in range(count)]
    params[n] = torch.tensor(vals).reshape(shape).requires_grad_(True)

tokens = [(i * 7 + 3) % V for i in range(B * (T + 1))]
tok = torch.tensor(tokens).reshape(B, T + 1)
inp, tgt = tok[:, :T], tok[:, 1:]

freq = torch.tensor([THETA ** (-2.0 * i / S) for i in range(S // 2)])
ang = torch.arange(T)[:, None] * freq[None, :]
cos, sin = torch.cos(ang), torch.sin(ang)


def rmsnorm(x, w):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + EPS) * w


def rope(x):  # x: (B, T, nh, S), pairs (2i, 2i+1)
    a, b = x[..., 0::2], x[..., 1::2]
    c, s = cos[None, :, None, :], sin[None, :, None, :]
    out = torch.empty_like(x)
    out[..., 0::2] = a * c - b * s
    out[..., 1::2] = a * s + b * c
    return out


def forward():
    x = params["token_embd.weight"][inp]
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
    for l in range(L):
        p = lambda s: params[f"blk.{l}.{s}.weight"]
        xn = rmsnorm(x, p("attn_norm"))
        q = rope((xn @ p("attn_q").T).reshape(B, T, H, S))
        k = rope((xn @ p("attn_k").T).reshape(B, T, G, S))
        v = (xn @ p("attn_v").T).reshape(B, T, G, S)
        k = k.repeat_interleave(H // G, dim=2)
        v = v.repeat_interleave(H // G, dim=2)
        att = torch.einsum("bihs,bjhs->bhij", q, k) / math.sqrt(S)
        att = att.masked_fill(mask, float("-inf")).softmax(-1)
        o = torch.einsum("bhij,bjhs->bihs", att, v).reshape(B, T, H * S)
        x = x + o @ p("attn_output").T
        xn = rmsnorm(x, p("ffn_norm"))
        h = torch.nn.functional.silu(xn @ p("ffn_gate").T) * (xn @ p("ffn_up").T)
        x = x + h @ p("ffn_down").T
    logits = rmsnorm(x, params["output_norm.weight"]) @ params["output.weight"].T
    return torch.nn.functional.cross_entropy(logits.reshape(-1, V), tgt.reshape(-1))


decay = [t for n, t in params.items() if t.dim() == 2]
no_decay = [t for n, t in params.items() if t.dim() == 1]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": WD}, {"params": no_decay, "weight_decay": 0.0}],
                        lr=LR, betas=BETAS, eps=ADAM_EPS)


def lr_at(s):  # linear warmup, then cosine to MIN_LR (qai_trainer_lr)
    if s < WARMUP:
        return LR * (s + 1) / WARMUP
    progress = min(1.0, (s - WARMUP) / (STEPS - WARMUP))
    return MIN_LR + 0.5 * (LR - MIN_LR) * (1 + math.cos(math.pi * progress))


losses, grads1, norms = [], None, []
for s in range(STEPS):
    opt.zero_grad()
    loss = forward()
    loss.backward()
    losses.append(loss.item())
    if s == 0:
        grads1 = {n: t.grad.reshape(-1).tolist() for n, t in params.items()}
    norm = math.sqrt(sum((t.grad ** 2).sum().item() for t in params.values()))
    norms.append(norm)
    if norm > CLIP:  # qai clips by CLIP/norm (torch's clip_grad_norm_ adds 1e-6 to the norm)
        for t in params.values():
            t.grad.mul_(CLIP / norm)
    for g in opt.param_groups:
        g["lr"] = lr_at(s)
    opt.step()

fmt = lambda xs: [float("%.9g" % x) for x in xs]
print(json.dumps({
    "about": "PyTorch %s float64 reference written by tests/tools/train_ref.py" % torch.__version__,
    "config": {"dim": D, "layers": L, "heads": H, "kv_heads": G, "ffn": F, "vocab": V, "seq": T, "batch": B,
               "lr": LR, "min_lr": MIN_LR, "warmup": WARMUP, "max_steps": STEPS, "beta1": BETAS[0],
               "beta2": BETAS[1], "eps": ADAM_EPS, "weight_decay": WD, "grad_clip": CLIP, "norm_eps": EPS,
               "rope_theta": THETA},
    "tokens": tokens,
    "losses": fmt(losses),
    "grad_norms": fmt(norms),
    "grads_step1": {n: fmt(v) for n, v in grads1.items()},
    "params_after": {n: fmt(t.detach().reshape(-1).tolist()) for n, t in params.items()},
}, indent=None))
