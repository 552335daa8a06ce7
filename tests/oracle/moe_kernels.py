#!/usr/bin/env python3
"""Expected numbers for tests/test_numerics_moe_kernels.cpp, from PyTorch.

The mixture-of-experts kernels of sim/numerics/kernels_moe.cpp recomputed with PyTorch's library
ops in float64, their gradients by torch.autograd (not by tpsim's closed forms):
  route:    torch.topk of the router logits (ties: see route_reference)
  slots:    flattened choices in walk order (t-major, j-minor), position = one_hot(...).cumsum - 1,
            kept when position < capacity
  dispatch: buf = zeros(E C, h).index_add(0, slot[kept], x[token[kept]])
  expert:   identity (ybuf = buf) or affine (ybuf = buf * scale + bias: bias makes unused slot rows
            non-zero, which the combine must ignore)
  combine:  p = softmax(logits); g = p.gather(experts) (/ g.sum when normalize);
            y = zeros(r, h).index_add(0, token[kept], g[kept] * ybuf[slot[kept]])
  loss:     L = sum(y * dy) for a random dy, so the gradients are the kernels' backward outputs
            for upstream gradient dy: dybuf = dL/dybuf, dlogits = dL/dlogits, dx = dL/dx.
  split/join: buf.reshape(G, El, C, h).permute(1, 0, 2, 3).reshape(El, G C, h)

It prints a C++ header holding the float32 inputs (9 significant digits: exact) and the float64
expected values (17 digits). Regenerate after changing it (PyTorch 1.13 made the committed one):
    /usr/bin/python3 tests/oracle/moe_kernels.py > tests/oracle/moe_kernels_expected.hpp
"""
import torch
import torch.nn.functional as F

from cpp_literals import doubles, floats, ints

torch.set_default_dtype(torch.float64)


def route_reference(logits, k):
    """torch.topk's values; the order among equal logits from a stable descending sort (lower index
    first), since torch.topk breaks ties in no documented order (1.13 on CPU returns [2, 4, 1] for
    the top 3 of [1, 3, 3, 0, 3])."""
    idx = torch.sort(logits, dim=1, descending=True, stable=True).indices[:, :k]
    top = torch.topk(logits, k, dim=1)
    assert torch.equal(top.values, logits.gather(1, idx)), "stable sort and topk disagree on the values"
    return idx, top


def slots(experts, E, C):
    flat = experts.reshape(-1)                         # walk order: t-major, j-minor
    oh = F.one_hot(flat, E)
    pos = ((oh.cumsum(0) - 1) * oh).sum(1)             # earlier choices of the same expert
    return flat * C + pos, pos < C


def uniform(g, shape, lo, hi):
    return (torch.rand(shape, generator=g, dtype=torch.float32) * (hi - lo) + lo)


def chain_case(name, seed, r, h, E, k, C, popular):
    g = torch.Generator().manual_seed(seed)
    x32 = uniform(g, (r, h), -1, 1)
    logits32 = torch.randn((r, E), generator=g, dtype=torch.float32) * 1.5
    logits32[:, 0] += popular                          # expert 0 popular, so its slots overflow
    dy32 = uniform(g, (r, h), -1, 1)
    scale32 = uniform(g, (E * C, h), 0.5, 1.5)
    bias32 = uniform(g, (E * C, h), -0.5, 0.5)

    logits64 = logits32.double()
    experts, top = route_reference(logits64, k)
    assert torch.equal(top.indices, experts), "no ties expected in the chain's logits"
    slot, keep = slots(experts, E, C)
    token = torch.arange(r).repeat_interleave(k)
    kept2d = keep.reshape(r, k)
    dropped = int((~keep).sum())
    # The cases the test is for: drops, a token with one choice kept and one dropped, a dropped
    # first choice, and unused slot rows (where the affine expert's bias must be ignored).
    assert dropped > 0
    assert bool((kept2d.any(1) & ~kept2d.all(1)).any())
    assert bool((~kept2d[:, 0]).any())
    assert int(keep.sum()) < E * C

    results = []
    buf_out = None
    for normalize in (0, 1):
        for affine in (0, 1):
            x = x32.double().requires_grad_()
            logits = logits32.double().requires_grad_()
            buf = torch.zeros(E * C, h).index_add(0, slot[keep], x[token[keep]])
            ybuf = buf * scale32.double() + bias32.double() if affine else buf
            ybuf.retain_grad()
            p = torch.softmax(logits, dim=1)
            gate = p.gather(1, experts)
            if normalize:
                gate = gate / gate.sum(1, keepdim=True)
            gk = gate.reshape(-1)[keep]
            y = torch.zeros(r, h).index_add(0, token[keep], gk[:, None] * ybuf[slot[keep]])
            (y * dy32.double()).sum().backward()
            buf_out = buf.detach()
            results.append(dict(normalize=normalize, affine=affine, y=y.detach(), dybuf=ybuf.grad,
                                dlogits=logits.grad, dx=x.grad))

    lines = [f'    {{.name = "{name}", .r = {r}, .h = {h}, .E = {E}, .k = {k}, .C = {C}, .dropped = {dropped},',
             f"     .x = {floats(x32)},",
             f"     .logits = {floats(logits32)},",
             f"     .dy = {floats(dy32)},",
             f"     .scale = {floats(scale32)},",
             f"     .bias = {floats(bias32)},",
             f"     .experts = {ints(experts)},",
             f"     .buf = {doubles(buf_out)},",
             "     .results = {"]
    for res in results:
        lines += [f"         {{.normalize = {res['normalize']}, .affine = {res['affine']},",
                  f"          .y = {doubles(res['y'])},",
                  f"          .dybuf = {doubles(res['dybuf'])},",
                  f"          .dlogits = {doubles(res['dlogits'])},",
                  f"          .dx = {doubles(res['dx'])}}},"]
    lines.append("     }},")
    return "\n".join(lines)


def route_case():
    inf = float("inf")
    rows = [[1, 3, 3, 0, 3],                    # three-way tie for the top
            [2, 2, 2, 2, 2],                    # all equal
            [0.5, -1, 0.5, 0.25, 0.5],          # the tie crosses the top-3 boundary
            [-inf, 1, -inf, -inf, 2],           # masked logits, tied at -inf
            [0.125, -0.75, 1.5, 0.625, -2]]     # no tie
    logits32 = torch.tensor(rows, dtype=torch.float32)
    k = 3
    experts, top = route_reference(logits32.double(), k)
    return (f"    .r = {len(rows)}, .E = {len(rows[0])}, .k = {k},\n"
            f"    .logits = {floats(logits32)},\n"
            f"    .experts = {ints(experts)},\n"
            f"    .topk_experts = {ints(top.indices)},")


def split_case():
    G, El, C, h = 3, 2, 2, 3
    g = torch.Generator().manual_seed(11)
    buf32 = uniform(g, (G * El * C, h), -1, 1)
    parts = buf32.double().reshape(G, El, C, h).permute(1, 0, 2, 3).reshape(El, G * C, h)
    return (f"    .G = {G}, .El = {El}, .C = {C}, .h = {h},\n"
            f"    .buf = {floats(buf32)},\n"
            f"    .parts = {doubles(parts)},")


def main():
    print("// Generated by tests/oracle/moe_kernels.py (PyTorch, float64 reference, autograd gradients); do")
    print("// not edit. Regenerate: /usr/bin/python3 tests/oracle/moe_kernels.py > tests/oracle/moe_kernels_expected.hpp")
    print("// Matrices are row-major and flattened; inputs are float32 values, expected values float64.")
    print("#pragma once")
    print()
    print("#include <cmath>")
    print("#include <vector>")
    print()
    print("namespace moe_oracle {")
    print()
    print("// Gradients for upstream dy of L = sum(y * dy); the expert is ybuf = buf (affine 0) or")
    print("// ybuf = buf * scale + bias elementwise (affine 1).")
    print("struct ChainResult {")
    print("  int normalize = 0, affine = 0;")
    print("  std::vector<double> y, dybuf, dlogits, dx;")
    print("};")
    print("// route (top_k = k) -> dispatch -> expert -> combine, and back, with capacity C small enough to drop.")
    print("struct Chain {")
    print("  const char* name;")
    print("  int r, h, E, k, C, dropped;   // dropped: choices over capacity")
    print("  std::vector<float> x, logits, dy, scale, bias;")
    print("  std::vector<int> experts;     // torch.topk")
    print("  std::vector<double> buf;")
    print("  std::vector<ChainResult> results;")
    print("};")
    print("inline const std::vector<Chain> chains = {")
    print(chain_case("r10 E4 k2 C4", 1, r=10, h=3, E=4, k=2, C=4, popular=1.0))
    print(chain_case("r7 E5 k3 C4", 2, r=7, h=4, E=5, k=3, C=4, popular=1.5))
    print("};")
    print()
    print("// experts: torch.topk's values, ties in stable-sort order; topk_experts: torch.topk's own indices")
    print("// (its order among ties is not the kernel's rule, kept to show that it differs).")
    print("struct Route {")
    print("  int r, E, k;")
    print("  std::vector<float> logits;")
    print("  std::vector<int> experts, topk_experts;")
    print("};")
    print("inline const Route route = {")
    print(route_case())
    print("};")
    print()
    print("// parts: El matrices [G C, h], flattened one after another.")
    print("struct Split {")
    print("  int G, El, C, h;")
    print("  std::vector<float> buf;")
    print("  std::vector<double> parts;")
    print("};")
    print("inline const Split split = {")
    print(split_case())
    print("};")
    print()
    print("}  // namespace moe_oracle")


if __name__ == "__main__":
    main()
