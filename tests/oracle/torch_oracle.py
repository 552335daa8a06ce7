#!/usr/bin/env python3
"""An outside oracle for tpsim's numerics kernels.

tpsim's sharded and unsharded runs share every kernel (sim/numerics/kernels.cpp), so a wrong
kernel passes `tpsim verify`. This script takes the unsharded run that `tpsim verify --scope stack
--dump DIR` wrote (inputs, weights, outputs, gradients; manifest.json), rebuilds the same model
with PyTorch in float64 (its library ops and autograd, not tpsim's formulas), and compares every
dumped output and gradient. It prints one line per tensor and exits 1 naming the first mismatch.

The model, as sim/lower/layers.cpp lowers it (weights stored [in, out], Y = X W, no biases on
linears; tokens T = micro_batch * seq rows, sequences one after another):
  x = embedding[tokens]
  per layer:  x = x + proj(attention(qkv(norm1(x))));  x = x + fc2(act(fc1(norm2(x)) [, gate(norm2(x))]))
  logits = output(final_norm(x)); loss_t = logsumexp(logits_t) - logits_t,target_t; L = mean_t loss_t
  norm: layernorm (biased variance, eps inside the sqrt, weight and bias) or rmsnorm (x / sqrt(mean x^2 + eps) w)
  act: gelu in its tanh form, or swiglu = fc1 * silu(gate) (fc1 is "up", gate goes through silu)
  attention: qkv columns [q heads | k heads | v heads], query head h uses kv head h // (H/K),
    causal softmax(q k^T / sqrt(d)) v per sequence. No rotary embedding: tpsim's layer has none.
  The loss gradient seed is dL/dloss_t = 1/T (the kernel's "scale" attribute, checked here too).

--plant KERNEL replaces one kernel on PyTorch's side by a plausible wrong version (forward, or
only its backward: the gradient of a wrong function at the same point); the comparison must then
fail, naming a tensor that kernel writes. tests/test_oracle.cpp runs every plant.
"""
import argparse
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)

# fp32 unit roundoff: tpsim computes and stores every tensor in fp32.
U = 2.0 ** -24

# The plants: name -> what is wrong (a kernel name, or its name + "_backward" for its backward only).
PLANTS = {
    "embedding": "row id+1 of the table is looked up",
    "embedding_backward": "gradient rows scattered to id+1",
    "layernorm": "unbiased variance (divides by c-1)",
    "layernorm_backward": "rstd treated as a constant (the xhat mean(g xhat) term dropped)",
    "rmsnorm": "mean of squares divides by c-1",
    "rmsnorm_backward": "rrms treated as a constant (the xhat mean(g xhat) term dropped)",
    "eps": "norms without their eps (1e-5: moves rstd by eps / (2 var) ~ 1.5e-5 for unit-scale rows)",
    "gelu": "erf form instead of the tanh form",
    "gelu_backward": "derivative of the erf form",
    "swiglu": "gate and up swapped (gate * silu(up))",
    "swiglu_backward": "sigmoid treated as a constant in d/dgate",
    "attention": "causal mask lets each token see the next one",
    "attention_backward": "softmax backward without the rowsum(P dP) term",
    "gqa": "query head h reads kv head h % K instead of h // (H/K) (differs only with GQA)",
    "cross_entropy": "target id+1 scored",
    "cross_entropy_backward": "loss gradient seed 1 (sum over tokens) instead of 1/T (mean)",
}


class Planted(torch.autograd.Function):
    """Forward value of `right`, backward: the gradient of `wrong` at the same inputs."""

    @staticmethod
    def forward(ctx, right, wrong, *inputs):
        ctx.wrong = wrong
        ctx.save_for_backward(*inputs)
        with torch.no_grad():
            return right(*inputs)

    @staticmethod
    def backward(ctx, grad):
        inputs = [t.detach().requires_grad_(t.requires_grad) for t in ctx.saved_tensors]
        with torch.enable_grad():
            y = ctx.wrong(*inputs)
            wanted = [t for t in inputs if t.requires_grad]
            got = iter(torch.autograd.grad(y, wanted, grad, allow_unused=True))
        return (None, None) + tuple(next(got) if t.requires_grad else None for t in inputs)


def op(kernel, plant, right, wrong_forward=None, wrong_backward=None):
    """The kernel's function, or its planted version."""
    if plant == kernel and wrong_forward is not None:
        return wrong_forward
    if plant == kernel + "_backward" and wrong_backward is not None:
        return lambda *xs: Planted.apply(right, wrong_backward, *xs)
    return right


def load(directory, manifest):
    tensors = {}
    for t in manifest["tensors"]:
        a = np.load(os.path.join(directory, t["file"]))
        assert a.dtype == np.float32 and list(a.shape) == t["shape"], t["name"]
        tensors[t["name"]] = a
    return tensors


def model_forward(m, kernels, data, plant):
    """Builds the model in float64; returns (named tensors, weights, loss L, tokens T)."""
    H, K, d = m["heads"], m["kv_heads"], m["head_dim"]
    eps = 0.0 if plant == "eps" else m["eps"]   # the norm kernels' eps attribute (1e-5), as tpsim lowered them
    T = m["seq"] * m["micro_batch"]
    V = m["vocab"]
    named, weights = {}, {}

    def weight(name):
        if name not in weights:
            weights[name] = torch.tensor(data[name], dtype=torch.float64, requires_grad=True)
        return weights[name]

    def keep(name, t):
        t.retain_grad()
        named[name] = t
        return t

    tokens = torch.tensor(data["tokens"][:, 0]).long()
    targets = torch.tensor(data["targets"][:, 0]).long()

    # Embedding: a table lookup; its backward is autograd's scatter-add.
    embed = op("embedding", plant, lambda tab: F.embedding(tokens, tab),
               wrong_forward=lambda tab: F.embedding((tokens + 1) % V, tab),
               wrong_backward=lambda tab: F.embedding((tokens + 1) % V, tab))

    def norm(name, x):
        w = weight(name)
        c = x.shape[1]
        if m["norm"] == "layernorm":
            b = weight(name + ".bias")
            right = lambda x, w, b: F.layer_norm(x, (c,), w[0], b[0], eps)
            unbiased = lambda x, w, b: (x - x.mean(1, keepdim=True)) / torch.sqrt(x.var(1, unbiased=True, keepdim=True) + eps) * w + b
            const_rstd = lambda x, w, b: (x - x.mean(1, keepdim=True)) / torch.sqrt(x.var(1, unbiased=False, keepdim=True) + eps).detach() * w + b
            f = op("layernorm", plant, right, unbiased, const_rstd)
            return keep(name + ".out", f(x, w, b))
        right = lambda x, w: x * torch.rsqrt(x.pow(2).mean(1, keepdim=True) + eps) * w
        c1 = lambda x, w: x * torch.rsqrt(x.pow(2).sum(1, keepdim=True) / (c - 1) + eps) * w
        const_rrms = lambda x, w: x * torch.rsqrt(x.pow(2).mean(1, keepdim=True) + eps).detach() * w
        f = op("rmsnorm", plant, right, c1, const_rrms)
        return keep(name + ".out", f(x, w))

    def linear(name, x):
        return keep(name + ".out", x @ weight(name))

    def causal_attention(qkv, see_next=False, constant_denominator=False, kv_modulo=False):
        B, s = m["micro_batch"], m["seq"]
        q = qkv[:, : H * d].reshape(B, s, H, d).transpose(1, 2)             # [B, H, s, d]
        k = qkv[:, H * d : (H + K) * d].reshape(B, s, K, d).transpose(1, 2)  # [B, K, s, d]
        v = qkv[:, (H + K) * d :].reshape(B, s, K, d).transpose(1, 2)
        kv_of = [h % K if kv_modulo else h // (H // K) for h in range(H)]     # query head h -> kv head h // (H/K)
        k, v = k[:, kv_of], v[:, kv_of]
        scores = q @ k.transpose(-1, -2) / math.sqrt(d)
        mask = torch.ones(s, s, dtype=torch.bool).tril(1 if see_next else 0)
        scores = scores.masked_fill(~mask, float("-inf"))
        if constant_denominator:   # exp / sum(exp) with the sum held constant: loses the rowsum term
            e = torch.exp(scores - scores.amax(-1, keepdim=True).detach())
            p = e / e.sum(-1, keepdim=True).detach()
        else:
            p = torch.softmax(scores, dim=-1)
        return (p @ v).transpose(1, 2).reshape(B * s, H * d)

    attend = op("attention", plant, causal_attention,
                wrong_forward=lambda qkv: causal_attention(qkv, see_next=True),
                wrong_backward=lambda qkv: causal_attention(qkv, constant_denominator=True))
    if plant == "gqa":
        attend = lambda qkv: causal_attention(qkv, kv_modulo=True)

    gelu = op("gelu", plant, lambda a: F.gelu(a, approximate="tanh"),
              wrong_forward=lambda a: F.gelu(a), wrong_backward=lambda a: F.gelu(a))
    swiglu = op("swiglu", plant, lambda up, gate: up * F.silu(gate),
                wrong_forward=lambda up, gate: gate * F.silu(up),
                wrong_backward=lambda up, gate: up * gate * torch.sigmoid(gate).detach())

    x = keep("embedding.out", embed(weight("embedding")))
    for layer in range(m["layers"]):
        p = f"layer{layer}."
        n1 = norm(p + "norm1", x)
        qkv = linear(p + "attn.qkv", n1)
        core = keep(p + "attn.core.out", attend(qkv))
        proj = linear(p + "attn.proj", core)
        x = keep(p + "attn.residual.out", x + proj)
        n2 = norm(p + "norm2", x)
        fc1 = linear(p + "mlp.fc1", n2)
        if m["activation"] == "swiglu":
            gate = linear(p + "mlp.gate", n2)
            act = keep(p + "mlp.act.out", swiglu(fc1, gate))
        else:
            act = keep(p + "mlp.act.out", gelu(fc1))
        fc2 = linear(p + "mlp.fc2", act)
        x = keep(p + "mlp.residual.out", x + fc2)
    logits = linear("output", norm("final_norm", x))

    # Cross-entropy per token, and the statistics tpsim's vocab-parallel kernels compute on the way.
    named["loss.max"] = logits.detach().amax(1, keepdim=True)
    named["loss.sumexp"] = torch.exp(logits.detach() - named["loss.max"]).sum(1, keepdim=True)
    scored = (targets + 1) % V if plant == "cross_entropy" else targets
    named["loss.target_logit"] = logits.detach().gather(1, scored[:, None])
    loss = keep("loss.out", F.cross_entropy(logits, scored, reduction="none")[:, None])
    seed_scale = 1.0 if plant == "cross_entropy_backward" else 1.0 / T
    L = loss.sum() * seed_scale   # the mean over tokens: dL/dloss_t = 1/T
    return named, weights, L, T



def reduction_length(name, m):
    """k of the longest fp32 sum that produced this tensor (its own op)."""
    h, f, V, s = m["hidden"], m["ffn"], m["vocab"], m["seq"]
    T = s * m["micro_batch"]
    if name.endswith(".grad"):
        # weight gradients sum over the T tokens; activation gradients over the layer's output width
        return max(T, h, f, V)
    if name.startswith("loss."):
        return V
    if ".attn.core" in name:
        return max(s, m["head_dim"])
    if name.endswith("fc2.out"):
        return f
    if name.endswith("proj.out"):
        return m["heads"] * m["head_dim"]
    return h


def compare(manifest, data, named, weights, quiet, prefix=""):
    """Prints one line per compared tensor (only mismatches when quiet); returns (failures, compared)."""
    m = manifest["model"]
    # Tolerance on max|tpsim - torch| / max|torch| per tensor (PyTorch in float64 is exact to ~1e-16
    # here, so the difference is tpsim's fp32 rounding). A sum of k terms in fp32 has a relative error
    # <= lam sqrt(k) u with probability >= 1 - 2 exp(-lam^2 / 2) (Higham & Mary 2019's probabilistic
    # bound; u = 2^-24). The n ops upstream of a tensor each add such an error, independently, so its
    # error is about lam sqrt(sum_i k_i) u, and sum_i k_i <= n k with n the tensor's position in the
    # forward pass and k the longest reduction: the tensor's own op's for forward outputs (hidden for
    # norms and projections into it, ffn for fc2, heads * head_dim for proj, seq for attention, vocab
    # for the loss), the largest dimension for gradients, whose n is the whole forward pass plus the
    # backward (2 x forward). lam = 4: exceeded with probability < 7e-4 per element even before the
    # overcount of sum k_i; the norms and softmax are well conditioned at these scales (unit-scale
    # activations, weights U(-1,1)/sqrt(fan_in)), and the errors measured are 10-50x below the bound.
    # A planted bug moves its tensor by >= 1e-4 relative (GELU's tanh vs erf forms), >= 4x the bound.
    LAM = 4.0
    fwd = [n for n in named if n in data]
    k_max = max(m["hidden"], m["ffn"], m["vocab"], m["seq"] * m["micro_batch"])

    def tolerance(name, kind):
        if kind == "output":
            return LAM * math.sqrt((fwd.index(name) + 1) * reduction_length(name, m)) * U
        return LAM * math.sqrt(2 * len(fwd) * k_max) * U

    failures, compared = [], 0
    for t in manifest["tensors"]:
        name, kind = t["name"], t["kind"]
        if kind in ("input", "weight"):
            continue
        if kind == "output":
            ref = named.get(name)
        else:
            base = name[: -len(".grad")]
            ref = weights[base].grad if base in weights else (named[base].grad if base in named else None)
        if ref is None:
            failures.append(name)
            print(f"{prefix}FAIL {name} has no PyTorch counterpart (the oracle does not know this tensor)")
            continue
        ref = ref.detach().numpy()
        got = data[name].astype(np.float64)
        if ref.shape != got.shape:
            failures.append(name)
            print(f"{prefix}FAIL {name} shape {got.shape} != torch {ref.shape}")
            continue
        scale = np.abs(ref).max()
        err = np.abs(got - ref).max()
        rel = err / scale if scale > 0 else err
        tol = tolerance(name, kind)
        ok = bool(np.isfinite(got).all()) and rel <= tol
        compared += 1
        if not ok:
            failures.append(name)
        if not ok or not quiet:
            print(f"{prefix}{'ok  ' if ok else 'FAIL'} {name:36s} {kind:8s} max rel {rel:.2e} {'<=' if ok else '>'} tol {tol:.2e}")
    return failures, compared


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", help="folder written by tpsim verify --scope stack --dump DIR")
    ap.add_argument("--plant", help="plant a wrong kernel on PyTorch's side; a comma-separated list runs each in turn "
                    "(lines prefixed 'plant NAME: '; exit 1 if any run mismatches): " + ", ".join(sorted(PLANTS)))
    ap.add_argument("--quiet", action="store_true", help="print only mismatches and the verdict")
    args = ap.parse_args()
    plants = args.plant.split(",") if args.plant else [None]
    for p in plants:
        if p is not None and p not in PLANTS:
            ap.error(f"unknown plant {p}; known: {', '.join(sorted(PLANTS))}")

    manifest = json.load(open(os.path.join(args.dir, "manifest.json")))
    m, kernels = manifest["model"], manifest["kernels"]
    if m.get("scope") != "stack":
        sys.exit("torch_oracle: needs a dump of --scope stack (embedding, layers, output head, cross-entropy)")
    data = load(args.dir, manifest)
    for p in plants:
        kernel = {"gqa": "attention", "eps": m["norm"]}.get(p, (p or "").removesuffix("_backward"))
        if p is not None and kernel not in kernels:
            ap.error(f"plant {p}: this model has no {kernel} kernel (it has {', '.join(sorted(kernels))})")

    mismatched = False   # exit 1 on any mismatch, in any of the runs
    for plant in plants:
        prefix = f"plant {plant}: " if len(plants) > 1 else ""
        if plant:
            print(f"{prefix}planted {plant}: {PLANTS[plant]}")
        named, weights, L, T = model_forward(m, kernels, data, plant)
        L.backward()
        # The loss gradient seed tpsim uses must be the mean over tokens.
        failures, compared = compare(manifest, data, named, weights, args.quiet, prefix)
        if abs(m["loss_scale"] * T - 1) > 1e-12:
            print(f"{prefix}FAIL loss seed: tpsim's cross_entropy_backward scale {m['loss_scale']} is not 1/T = 1/{T}")
            failures.append("loss seed")
        if failures:
            print(f"{prefix}verdict: MISMATCH: {len(failures)} of {compared} tensors differ from PyTorch; first: {failures[0]}")
            mismatched = True
        else:
            print(f"{prefix}verdict: PASS: {compared} tensors match PyTorch float64")
    return 1 if mismatched else 0


if __name__ == "__main__":
    sys.exit(main())
