#!/usr/bin/python3
"""Reference sentence embeddings for tests/model/test_bert.c.

Rebuilds the weights qai_bert_init_random writes (the streams are documented
in include/qai/model.h: splitmix64 seeded with seed ^ FNV-1a-64(tensor name))
and runs BERT written out with plain torch ops in float64: embeddings (token +
type 0 + position) and LayerNorm, then per layer q/k/v with biases,
bidirectional softmax attention per head, output projection, residual and
LayerNorm, GELU (erf) feed-forward, residual and LayerNorm; mean pooling over
all tokens ([CLS] and [SEP] included) or the [CLS] state; L2 normalization.
Token ids come from tests/tools/wordpiece_ref.py (Hugging Face's algorithm).

Writes tests/data/bert_ref.json. Run from anywhere with Debian's torch:
    /usr/bin/python3 tests/tools/bert_ref.py
"""
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import wordpiece_ref  # noqa: E402

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data")
M64 = (1 << 64) - 1

CFG = {"dim": 64, "layers": 2, "heads": 4, "ffn": 128, "ctx": 48, "seed": 7, "std": 0.1, "eps": 1e-12}

TEXTS = [
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "café naïve résumé — déjà vu",
    "你好世界 and ΣΑΣ",
    "unaffable tokenization: embeddings of sentences, words and pieces (qai gguf test)",
    "a",
    "x" * 120,
]


def fnv1a64(s):
    h = 0xcbf29ce484222325
    for b in s.encode():
        h = ((h ^ b) * 0x100000001b3) & M64
    return h


def stream(name, count, seed):
    """u in [0, 1) per value, as qai_bert_init_random draws them."""
    s0 = np.uint64((seed ^ fnv1a64(name)) & M64)
    with np.errstate(over="ignore"):
        z = s0 + np.arange(1, count + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(40)).astype(np.float64) / 16777216.0


def tensor(name, rows, cols, kind, seed, a):
    x = 2.0 * stream(name, rows * cols, seed) - 1.0
    if kind == "u":
        v = x * a
    elif kind == "w":
        v = 1.0 + 0.2 * x
    else:
        v = 0.1 * x
    v = v.astype(np.float32).astype(np.float64)  # the float the file holds
    return torch.from_numpy(v.reshape(rows, cols) if rows > 1 else v)


def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def forward(W, ids, cfg):
    D, H = cfg["dim"], cfg["heads"]
    S = D // H
    T = len(ids)
    idx = torch.tensor(ids)
    x = W["token_embd.weight"][idx] + W["token_types.weight"][0] + W["position_embd.weight"][:T]
    x = layer_norm(x, W["token_embd_norm.weight"], W["token_embd_norm.bias"], cfg["eps"])
    for l in range(cfg["layers"]):
        p = lambda n: W[f"blk.{l}.{n}"]  # noqa: E731
        q = x @ p("attn_q.weight").T + p("attn_q.bias")
        k = x @ p("attn_k.weight").T + p("attn_k.bias")
        v = x @ p("attn_v.weight").T + p("attn_v.bias")
        q, k, v = (t.view(T, H, S).transpose(0, 1) for t in (q, k, v))  # (H, T, S)
        att = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(S), dim=-1) @ v
        a = att.transpose(0, 1).reshape(T, D) @ p("attn_output.weight").T + p("attn_output.bias")
        x = layer_norm(x + a, p("attn_output_norm.weight"), p("attn_output_norm.bias"), cfg["eps"])
        h = x @ p("ffn_up.weight").T + p("ffn_up.bias")
        h = 0.5 * h * (1.0 + torch.erf(h / math.sqrt(2.0)))
        f = h @ p("ffn_down.weight").T + p("ffn_down.bias")
        x = layer_norm(x + f, p("layer_output_norm.weight"), p("layer_output_norm.bias"), cfg["eps"])
    return x


def main():
    vocab = [l.rstrip("\n") for l in open(os.path.join(DATA, "bert_vocab.txt"), encoding="utf-8")]
    index = {t: i for i, t in enumerate(vocab)}
    cfg = dict(CFG)
    D, F, C, V = cfg["dim"], cfg["ffn"], cfg["ctx"], len(vocab)
    seed = cfg["seed"]
    a = float(np.float32(cfg["std"])) * math.sqrt(3.0)
    W = {}

    def mk(name, rows, cols, kind):
        W[name] = tensor(name, rows, cols, kind, seed, a)

    mk("token_embd.weight", V, D, "u")
    mk("token_types.weight", 2, D, "u")
    mk("position_embd.weight", C, D, "u")
    mk("token_embd_norm.weight", 1, D, "w")
    mk("token_embd_norm.bias", 1, D, "b")
    for l in range(cfg["layers"]):
        for n, r, c in (("attn_q", D, D), ("attn_k", D, D), ("attn_v", D, D), ("attn_output", D, D)):
            mk(f"blk.{l}.{n}.weight", r, c, "u")
            mk(f"blk.{l}.{n}.bias", 1, r, "u")
        mk(f"blk.{l}.attn_output_norm.weight", 1, D, "w")
        mk(f"blk.{l}.attn_output_norm.bias", 1, D, "b")
        mk(f"blk.{l}.ffn_up.weight", F, D, "u")
        mk(f"blk.{l}.ffn_up.bias", 1, F, "u")
        mk(f"blk.{l}.ffn_down.weight", D, F, "u")
        mk(f"blk.{l}.ffn_down.bias", 1, D, "u")
        mk(f"blk.{l}.layer_output_norm.weight", 1, D, "w")
        mk(f"blk.{l}.layer_output_norm.bias", 1, D, "b")

    out = {"config": cfg, "texts": [], "ids": [], "mean": [], "cls": [], "mean_raw": []}
    for text in TEXTS:
        ids = [index["[CLS]"]] + wordpiece_ref.encode(text, index) + [index["[SEP]"]]
        assert len(ids) <= C, (text, len(ids))
        x = forward(W, ids, cfg)
        mean = x.mean(0)
        cls = x[0]
        out["texts"].append(text)
        out["ids"].append(ids)
        out["mean_raw"].append([round(float(v), 9) for v in mean])
        out["mean"].append([round(float(v), 9) for v in mean / mean.norm()])
        out["cls"].append([round(float(v), 9) for v in cls / cls.norm()])
    with open(os.path.join(DATA, "bert_ref.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=0)
        f.write("\n")
    print(f"{len(TEXTS)} texts, lengths {[len(i) for i in out['ids']]}")


if __name__ == "__main__":
    main()
