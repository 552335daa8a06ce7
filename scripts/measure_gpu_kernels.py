#!/usr/bin/env python3
"""Measure the GPU kernel times tpsim's compute model is calibrated on, on the GPU this runs on.

Writes into OUTDIR:
  gemm_<gpu>.csv     m,n,k,dtype,time_us,layout,tflops,source   (tpsim's gpu.gemm_table format:
                     the first five columns; layout nn/nt/tn is the transposition the lowering
                     uses: forward X W, data gradient dY W^T, weight gradient X^T dY)
  kernels_<gpu>.csv  kernel,dtype,rows,cols,extra,fwd_us,bwd_us,bytes_fwd,bytes_bwd
  attention_<gpu>.csv batch,seq,heads,kv_heads,head_dim,dtype,fwd_us,bwd_us,fwd_tflops,bwd_tflops
  env_<gpu>.txt      the GPU, driver, torch/cuBLAS versions, clocks before and after

The GEMM shapes are the ones tpsim lowers for every model in models/ (tensor-parallel degrees
1-8, 2048-8192 tokens per micro-batch, forward and both backward GEMMs), decode shapes (1-256
tokens), and a power-of-two grid for fitting the shape model apart from the model rows.

Timing: CUDA events around CUDA-graph replays after warm-up (the launch cost of eager PyTorch,
~9 us, is not kernel time); operands rotate through a pool larger than L2 so small GEMMs read HBM
as they do in a real step. Data is random normal (zeros run faster).
Usage: python3 scripts/measure_gpu_kernels.py OUTDIR [--quick]
"""
import csv
import glob
import math
import os
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

L2_BYTES = 64 << 20          # H100/H200: 50-60 MB; rotate pools of at least 4x this
MIN_TIMED_S = 0.02           # time at least this long per shape (and at least 3 launches)


def read_models(root):
    models = {}
    for path in sorted(glob.glob(os.path.join(root, "models", "*.yaml"))):
        kv = {}
        for line in open(path):
            line = line.split("#", 1)[0].strip()
            if ":" in line:
                key, value = (s.strip() for s in line.split(":", 1))
                kv[key] = value
        models[kv["name"]] = kv
    return models


def model_gemms(models, tps, tokens_list):
    """(m, n, k, layout, source) for the linears tpsim lowers: column-parallel qkv, fc1 (+gate),
    head; row-parallel proj, fc2. Forward X[T,in] W[in,out]; dX = dY W^T; dW = X^T dY."""
    shapes = {}
    for name, m in models.items():
        h, f = int(m["hidden"]), int(m["ffn"])
        heads, kv = int(m["heads"]), int(m.get("kv_heads", m["heads"]))
        d = h // heads
        vocab = int(m["vocab"])
        for tp in tps:
            if heads % tp or kv % tp or f % tp:
                continue
            linears = [("attn.qkv", h, (heads + 2 * kv) * d // tp), ("attn.proj", heads * d // tp, h),
                       ("mlp.fc1", h, f // tp), ("mlp.fc2", f // tp, h)]
            if vocab % tp == 0:
                linears.append(("head", h, vocab // tp))
            for tokens in tokens_list:
                for lname, fin, fout in linears:
                    src = f"{name} tp{tp} T{tokens} {lname}"
                    shapes.setdefault((tokens, fout, fin, "nn"), src + " fwd")
                    shapes.setdefault((tokens, fin, fout, "nt"), src + " bwd_data")
                    shapes.setdefault((fin, fout, tokens, "tn"), src + " bwd_weight")
    return shapes


def decode_gemms(models, tps, batch_list):
    shapes = {}
    for name, m in models.items():
        h, f = int(m["hidden"]), int(m["ffn"])
        heads, kv = int(m["heads"]), int(m.get("kv_heads", m["heads"]))
        d = h // heads
        for tp in (1, 8):
            if heads % tp or kv % tp or f % tp:
                continue
            for b in batch_list:
                for lname, fin, fout in [("attn.qkv", h, (heads + 2 * kv) * d // tp), ("attn.proj", h // tp, h),
                                         ("mlp.fc1", h, f // tp), ("mlp.fc2", f // tp, h)]:
                    shapes.setdefault((b, fout, fin, "nn"), f"{name} tp{tp} decode b{b} {lname} fwd")
    return shapes


def grid_gemms(sizes):
    return {(m, n, k, "nn"): "grid" for m in sizes for n in sizes for k in sizes}


def time_launches(fn, flops_hint=None):
    """Mean seconds per call of fn() (which launches GPU work), after warm-up."""
    for _ in range(2):
        fn()
    torch.cuda.synchronize()
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn()
    stop.record()
    stop.synchronize()
    one = max(start.elapsed_time(stop) * 1e-3, 1e-6)
    reps = int(min(200, max(3, math.ceil(MIN_TIMED_S / one))))
    start.record()
    for _ in range(reps):
        fn()
    stop.record()
    stop.synchronize()
    return start.elapsed_time(stop) * 1e-3 / reps


def time_graph(fn):
    """Mean seconds per replay of fn captured in a CUDA graph: the GPU's time without the Python and
    autograd launch cost, which is larger than the kernels themselves at small sizes."""
    if not torch.cuda.is_available():
        return time_launches(fn)
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph):
            fn()
    except Exception as e:   # noqa: BLE001 - fall back to plain launches, and say so
        print(f"graph capture failed ({e}); timing launches", flush=True)
        torch.cuda.synchronize()
        return time_launches(fn)
    return time_launches(graph.replay)


def operand_pool(shape, dtype, device, total_bytes):
    """Enough copies of a random operand that cycling through them does not hit L2."""
    one = math.prod(shape) * torch.tensor([], dtype=dtype).element_size()
    count = max(1, min(16, math.ceil(4 * L2_BYTES / max(one, 1))))
    if count * one > total_bytes:
        count = 1
    return [torch.randn(shape, device=device, dtype=torch.float32).to(dtype) for _ in range(count)]


def gemm_seconds(m, n, k, layout, dtype, device):
    """Kernel time of one GEMM: a CUDA graph of several launches cycling through operand pools, so
    neither the Python/ATen launch cost (~9 us, larger than small GEMMs) nor L2 reuse is timed."""
    a_shape = (k, m) if layout == "tn" else (m, k)
    b_shape = (n, k) if layout == "nt" else (k, n)
    pool_a = operand_pool(a_shape, dtype, device, 8 << 30)
    pool_b = operand_pool(b_shape, dtype, device, 8 << 30)
    out = torch.empty((m, n), device=device, dtype=dtype)
    pairs = max(len(pool_a), len(pool_b))

    def one(i):
        a = pool_a[i % len(pool_a)]
        b = pool_b[i % len(pool_b)]
        torch.matmul(a.t() if layout == "tn" else a, b.t() if layout == "nt" else b, out=out)

    if device != "cuda":
        return time_launches(lambda: one(0))
    single = time_launches(lambda: one(0))
    # Enough launches per replay that the replay lasts >= ~200 us (and every pool entry is used).
    count = int(max(pairs, min(64, math.ceil(200e-6 / max(single, 1e-7)))))
    seconds = time_graph(lambda: [one(i) for i in range(count)]) / count
    del pool_a, pool_b, out
    return seconds


def fp8_gemm_seconds(m, n, k, device):
    # torch._scaled_mm wants A row-major [m,k] and B column-major [k,n], e4m3, dims multiple of 16.
    a = torch.randn((m, k), device=device).to(torch.float8_e4m3fn)
    b = torch.randn((n, k), device=device).to(torch.float8_e4m3fn).t()
    one = torch.ones((), device=device)
    mm = lambda: torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=torch.bfloat16)
    count = int(min(64, max(1, math.ceil(200e-6 / max(time_launches(mm), 1e-7)))))
    return time_graph(lambda: [mm() for _ in range(count)]) / count


def elementwise_kernels(device, dtype, rows_list, cols_list):
    """Memory-bound kernels tpsim lowers, forward alone and forward+backward (backward = difference)."""
    out = []
    esz = torch.tensor([], dtype=dtype).element_size()
    for rows in rows_list:
        for cols in cols_list:
            x = torch.randn((rows, cols), device=device, dtype=dtype, requires_grad=True)
            g = torch.randn((rows, cols), device=device, dtype=dtype, requires_grad=True)
            w = torch.randn((cols,), device=device, dtype=dtype, requires_grad=True)
            b = torch.randn((cols,), device=device, dtype=dtype, requires_grad=True)
            dy = torch.randn((rows, cols), device=device, dtype=dtype)
            n = rows * cols
            cases = {
                "layernorm": (lambda: F.layer_norm(x, (cols,), w, b), [x, w, b], 2 * n, 4 * n),
                "gelu": (lambda: F.gelu(x, approximate="tanh"), [x], 2 * n, 3 * n),
                "swiglu": (lambda: x * F.silu(g), [x, g], 3 * n, 5 * n),
                "add": (lambda: x + g, [x, g], 3 * n, 1 * n),
                "softmax": (lambda: torch.softmax(x, dim=-1), [x], 2 * n, 3 * n),
            }
            if hasattr(F, "rms_norm"):
                cases["rmsnorm"] = (lambda: F.rms_norm(x, (cols,), w), [x, w], 2 * n, 4 * n)
            for name, (fwd, inputs, bytes_fwd, bytes_bwd) in cases.items():
                t_fwd = time_graph(lambda: fwd())

                def fwd_bwd():
                    y = fwd()
                    torch.autograd.grad(y, inputs, dy)

                t_both = time_graph(fwd_bwd)
                out.append([name, str(dtype).replace("torch.", ""), rows, cols, "", t_fwd * 1e6,
                            max(t_both - t_fwd, 0) * 1e6, bytes_fwd * esz, bytes_bwd * esz])
            del x, g, w, b, dy
    return out


def copy_bandwidth(device):
    x = torch.empty(1 << 30, dtype=torch.uint8, device=device)
    y = torch.empty_like(x)
    t = time_launches(lambda: y.copy_(x))
    return 2 * x.numel() / t


def adam_kernel(device, numel):
    p = [torch.nn.Parameter(torch.randn(numel, device=device))]
    for q in p:
        q.grad = torch.randn_like(q)
    try:
        opt = torch.optim.AdamW(p, lr=1e-4, fused=True)
        label = "adamw_fused_fp32"
    except (RuntimeError, TypeError):
        opt = torch.optim.AdamW(p, lr=1e-4, foreach=True)
        label = "adamw_foreach_fp32"
    t = time_launches(opt.step)
    # reads param, grad, m, v; writes param, m, v (fp32)
    return [label, "float32", numel, 1, "", t * 1e6, 0, 7 * 4 * numel, 0]


def cross_entropy_kernel(device, dtype, tokens, vocab):
    logits = torch.randn((tokens, vocab), device=device, dtype=dtype, requires_grad=True)
    target = torch.randint(0, vocab, (tokens,), device=device)
    t_fwd = time_graph(lambda: F.cross_entropy(logits.float(), target))

    def both():
        loss = F.cross_entropy(logits.float(), target)
        torch.autograd.grad(loss, [logits])

    t_both = time_graph(both)
    esz = torch.tensor([], dtype=dtype).element_size()
    return ["cross_entropy", str(dtype).replace("torch.", ""), tokens, vocab, "", t_fwd * 1e6,
            max(t_both - t_fwd, 0) * 1e6, tokens * vocab * esz, 2 * tokens * vocab * esz]


def attention_rows(device, dtype, configs):
    rows = []
    for batch, seq, heads, kv_heads, d in configs:
        q = torch.randn((batch, heads, seq, d), device=device, dtype=dtype, requires_grad=True)
        k = torch.randn((batch, kv_heads, seq, d), device=device, dtype=dtype, requires_grad=True)
        v = torch.randn((batch, kv_heads, seq, d), device=device, dtype=dtype, requires_grad=True)
        dout = torch.randn((batch, heads, seq, d), device=device, dtype=dtype)
        kwargs = {"is_causal": True}
        if kv_heads != heads:
            kwargs["enable_gqa"] = True
        fwd = lambda: F.scaled_dot_product_attention(q, k, v, **kwargs)

        def both():
            o = fwd()
            torch.autograd.grad(o, [q, k, v], dout)

        t_fwd = time_launches(fwd)
        t_bwd = max(time_launches(both) - t_fwd, 1e-9)
        flops = 2.0 * batch * seq * seq * heads * d      # causal half of 4 b s^2 H d (tpsim's count)
        rows.append([batch, seq, heads, kv_heads, d, str(dtype).replace("torch.", ""), t_fwd * 1e6, t_bwd * 1e6,
                     flops / t_fwd / 1e12, 2.5 * flops / t_bwd / 1e12])
        del q, k, v, dout
    return rows


def nvidia_smi(query):
    try:
        return subprocess.run(["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20).stdout.strip()
    except Exception as e:   # noqa: BLE001 - environment notes only
        return f"(nvidia-smi failed: {e})"


def main():
    outdir = sys.argv[1]
    quick = "--quick" in sys.argv
    os.makedirs(outdir, exist_ok=True)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" and not quick:
        sys.exit("no GPU: run with --quick for a dry run of the script on the CPU")
    if device == "cpu":
        global time_launches

        def time_launches(fn, flops_hint=None):   # noqa: F811 - CPU dry run of the script's logic
            fn()
            t = time.perf_counter()
            fn()
            return time.perf_counter() - t

    gpu = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"
    tag = gpu.lower().replace("nvidia ", "").replace(" ", "-")
    start_wall = time.time()
    env = [f"gpu: {gpu}", f"torch: {torch.__version__}", f"cuda: {torch.version.cuda}",
           f"smi before: {nvidia_smi('name,driver_version,clocks.sm,clocks.mem,power.limit,temperature.gpu')}"]
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        props = torch.cuda.get_device_properties(0)
        env.append(f"sms: {props.multi_processor_count}, memory: {props.total_memory / 2**30:.1f} GiB")
        # Bring the clocks up before anything is timed.
        a = torch.randn((8192, 8192), device=device, dtype=torch.bfloat16)
        t_end = time.time() + 3
        while time.time() < t_end:
            for _ in range(20):
                a @ a
            torch.cuda.synchronize()
        env.append(f"copy bandwidth (read+write): {copy_bandwidth(device) / 1e12:.3f} TB/s")
        s = gemm_seconds(8192, 8192, 8192, "nn", torch.bfloat16, device)
        env.append(f"bf16 8192^3 (pool, matmul out=): {2 * 8192**3 / s / 1e12:.1f} TFLOP/s")
        b = torch.randn((8192, 8192), device=device, dtype=torch.bfloat16)
        s = time_launches(lambda: torch.mm(a, b))
        env.append(f"bf16 8192^3 (one pair, torch.mm): {2 * 8192**3 / s / 1e12:.1f} TFLOP/s")
        for size in (4096, 6144, 8192, 12288, 16384):
            x = torch.randn((size, size), device=device, dtype=torch.bfloat16)
            y = torch.randn((size, size), device=device, dtype=torch.bfloat16)
            s = min(time_launches(lambda: torch.mm(x, y)) for _ in range(3))
            env.append(f"bf16 {size}^3 best of 3: {2 * size**3 / s / 1e12:.1f} TFLOP/s")

    with open(os.path.join(outdir, f"env_{tag}.txt"), "w") as fh:
        fh.write("\n".join(env) + "\n")
    print("\n".join(env), flush=True)
    models = read_models(root)
    if quick:
        models = {k: v for k, v in models.items() if k == "gpt-1.7b"}
    tokens_list = [256] if quick else [2048, 4096, 8192]
    shapes = model_gemms(models, [1, 2, 4, 8], tokens_list)
    for key, src in decode_gemms(models, [1, 8], [1, 8, 32, 128, 256] if not quick else [1]).items():
        shapes.setdefault(key, src)
    grid = grid_gemms([64, 128] if quick else [128, 256, 512, 1024, 2048, 4096, 8192, 16384])
    for key, src in grid.items():
        shapes.setdefault(key, src)
    print(f"{gpu}: {len(shapes)} GEMM shapes", flush=True)

    # Rows are written as they come, so a run stopped at its time limit keeps what it measured.
    gemm_file = open(os.path.join(outdir, f"gemm_{tag}.csv"), "w", newline="")
    gemm_file.write(f"# GEMM kernel times measured on {gpu} with torch {torch.__version__} (cuBLAS), "
                    f"scripts/measure_gpu_kernels.py, {time.strftime('%Y-%m-%d')}\n")
    gemm_csv = csv.writer(gemm_file)
    gemm_csv.writerow(["m", "n", "k", "dtype", "time_us", "layout", "tflops", "source"])

    class Rows(list):
        def append(self, row):
            gemm_csv.writerow(row)
            gemm_file.flush()

    gemm_rows = Rows()
    for i, ((m, n, k, layout), src) in enumerate(sorted(shapes.items())):
        if quick:
            m, n, k = (min(v, 256) for v in (m, n, k))
        s = gemm_seconds(m, n, k, layout, torch.bfloat16, device)
        gemm_rows.append([m, n, k, "bf16", f"{s * 1e6:.3f}", layout, f"{2 * m * n * k / s / 1e12:.2f}", src])
        if i % 200 == 0:
            print(f"  {i}/{len(shapes)} gemms, {time.time() - start_wall:.0f} s", flush=True)
    # fp32 (no TF32) and fp8 on part of the grid: the dtype ceilings.
    small_grid = [1024, 4096, 8192] if not quick else [64]
    for m in small_grid:
        for n in small_grid:
            for k in small_grid:
                s = gemm_seconds(m, n, k, "nn", torch.float32, device)
                gemm_rows.append([m, n, k, "fp32", f"{s * 1e6:.3f}", "nn", f"{2 * m * n * k / s / 1e12:.2f}", "grid"])
                if device == "cuda" and hasattr(torch, "_scaled_mm"):
                    try:
                        s = fp8_gemm_seconds(m, n, k, device)
                        gemm_rows.append([m, n, k, "fp8", f"{s * 1e6:.3f}", "nt", f"{2 * m * n * k / s / 1e12:.2f}",
                                          "grid e4m3 scaled_mm"])
                    except Exception as e:   # noqa: BLE001 - report, keep measuring
                        env.append(f"fp8 {m}x{n}x{k} failed: {e}")
    gemm_file.close()
    print(f"gemms done, {time.time() - start_wall:.0f} s", flush=True)

    kernel_rows = []
    rows_list = [256] if quick else [2048, 8192, 32768]
    cols_list = [128] if quick else [2048, 4096, 8192, 16384]
    kernel_rows += elementwise_kernels(device, torch.bfloat16, rows_list, cols_list)
    for numel in ([1 << 12] if quick else [1 << 24, 1 << 27, 1 << 29]):
        kernel_rows.append(adam_kernel(device, numel))
    for tokens, vocab in ([(64, 512)] if quick else [(2048, 32000), (8192, 32000), (8192, 128256 // 8), (8192, 51200)]):
        kernel_rows.append(cross_entropy_kernel(device, torch.bfloat16, tokens, vocab))
    with open(os.path.join(outdir, f"kernels_{tag}.csv"), "w", newline="") as fh:
        fh.write(f"# Memory-bound kernel times on {gpu}, torch {torch.__version__}; bwd_us = (fwd+bwd) - fwd; "
                 f"bytes are the minimum HBM traffic. scripts/measure_gpu_kernels.py\n")
        w = csv.writer(fh)
        w.writerow(["kernel", "dtype", "rows", "cols", "extra", "fwd_us", "bwd_us", "bytes_fwd", "bytes_bwd"])
        w.writerows([[r[0], r[1], r[2], r[3], r[4], f"{r[5]:.3f}", f"{r[6]:.3f}", r[7], r[8]] for r in kernel_rows])
    print(f"kernels done, {time.time() - start_wall:.0f} s", flush=True)

    if hasattr(F, "scaled_dot_product_attention"):
        configs = [(1, 128, 2, 2, 64)] if quick else [
            (b, s, h, kv, d)
            for (h, kv, d) in [(96, 96, 128), (12, 12, 128), (32, 32, 128), (4, 4, 128), (64, 8, 128), (8, 1, 128),
                               (24, 24, 96), (3, 3, 96), (48, 48, 128), (64, 64, 128), (16, 16, 128)]
            for (b, s) in [(1, 2048), (4, 2048), (1, 4096), (1, 8192)]]
        att = attention_rows(device, torch.bfloat16, configs)
        with open(os.path.join(outdir, f"attention_{tag}.csv"), "w", newline="") as fh:
            fh.write(f"# Causal flash attention (F.scaled_dot_product_attention) on {gpu}, torch {torch.__version__}; "
                     f"tflops use tpsim's count 2 b s^2 H d forward, 2.5x backward\n")
            w = csv.writer(fh)
            w.writerow(["batch", "seq", "heads", "kv_heads", "head_dim", "dtype", "fwd_us", "bwd_us", "fwd_tflops",
                        "bwd_tflops"])
            w.writerows([r[:6] + [f"{v:.3f}" for v in r[6:8]] + [f"{v:.1f}" for v in r[8:]] for r in att])
    env.append(f"smi after: {nvidia_smi('name,driver_version,clocks.sm,clocks.mem,power.draw,temperature.gpu')}")
    env.append(f"wall: {time.time() - start_wall:.0f} s")
    with open(os.path.join(outdir, f"env_{tag}.txt"), "w") as fh:
        fh.write("\n".join(env) + "\n")
    print("\n".join(env), flush=True)


if __name__ == "__main__":
    main()
