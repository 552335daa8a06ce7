// GPU kernel cost of one op: GEMMs by their shape (gemm_cost.cpp), attention fused (flash) or
// unfused (batched GEMMs plus the score matrix through HBM), decode attention streaming the KV
// cache at the realised HBM fraction (gpu.hbm_efficiency), other kernels memory-bound at their
// measured HBM efficiency (kernel_efficiency.cpp), fused ops as the sum of their parts.
#include <algorithm>
#include <cmath>

#include "cost/peaks.hpp"
#include "tpsim/cost.hpp"

namespace tpsim {
namespace {

// Flash attention's head_dim-deep products reach head_dim / (head_dim + kFlashHalfK) of the GEMM
// ceiling (its own kernel, not cuBLAS's tiles: kept from before the per-shape GEMM model).
constexpr double kFlashHalfK = 64;

double attr(const Op& op, const char* key, double fallback) {
  auto it = op.kernel.attrs.find(key);
  return it != op.kernel.attrs.end() ? it->second : fallback;
}

// Megatron-LM 2021's unfused attention over b x H local heads of width d, sequence s: batched
// GEMMs over the whole s x s score matrix (the causal mask is applied in the softmax, not skipped)
// and the scores through HBM between them at streaming bandwidth, two kernels each way (softmax,
// dropout): gpu.attention_score_bytes per causal score element forward, and backward 19/13 of it.
// Per element of the whole matrix, forward: scores written, softmax read and written, dropout
// read and written plus its mask, PV reads = 13 B; backward: dP written, dropout's backward reads
// it and the mask and writes, softmax's reads the probabilities and that and writes dS, dV reads
// the probabilities, dQ and dK read dS = 19 B.
//   forward:  S = Q K^T [s, d] x [d, s];  O = P V [s, s] x [s, d]
//   backward: dV = P^T dO, dQ = dS K, dK = dS^T Q  [s, s] x [s, d];  dP = dO V^T [s, d] x [d, s]
KernelCost unfused_attention_cost(const GpuSpec& gpu, const Op& op, bool backward) {
  const double b = attr(op, "batch", 1), heads = attr(op, "heads", 1);
  const int64_t s = int64_t(attr(op, "seq", 0)), d = int64_t(attr(op, "head_dim", 64));
  const GemmInfo scores{s, s, d}, values{s, d, s};
  KernelCost c;
  auto add = [&](const GemmInfo& g, int times) {
    const KernelCost k = batched_gemm_cost(gpu, g, b * heads, op.dtype);
    c.seconds += times * k.seconds;
    c.compute_bound += times * k.compute_bound;
    c.memory_bound += times * k.memory_bound;
  };
  add(scores, 1);
  add(values, backward ? 3 : 1);
  const double passes = backward ? 19.0 / 13.0 : 1;
  const double score_bytes = passes * b * heads * double(s) * double(s) / 2 * gpu.attention_score_bytes;
  const double hbm = gpu.hbm_bandwidth * kernel_hbm_efficiency("add");
  const double traffic = hbm > 0 ? score_bytes / hbm : 0;
  c.memory_bound += traffic;
  c.seconds += traffic + 2 * gpu.launch_overhead;
  const double peak = cost_detail::peak_for(gpu, op.dtype);
  c.efficiency = peak > 0 && c.seconds > 0 ? op.flops / (peak * c.seconds) : 0;
  return c;
}

}  // namespace

// Flash-attention style: QK^T and PV are tiled GEMMs whose inner dimension is the head dim, so
// they reach the GEMM ceiling times the k factor of a head_dim-deep product (FLOPs as the lowering
// counts them: 4 b s^2 H d forward, causal half, backward 2.5x). Memory: Q, K, V, O (and their
// gradients). When the stack does not fuse attention (gpu.attention_score_bytes > 0), the
// unfused kernels above.
KernelCost attention_cost(const GpuSpec& gpu, const Op& op) {
  // Ring attention's blocks are always flash attention (Transformer Engine's context parallelism).
  const bool block = op.kernel.fn == "attention_block" || op.kernel.fn == "attention_block_backward";
  if (gpu.attention_score_bytes > 0 && !block) return unfused_attention_cost(gpu, op, op.kernel.fn == "attention_backward");
  KernelCost c;
  const double head_dim = attr(op, "head_dim", kFlashHalfK);
  const double peak = cost_detail::peak_for(gpu, op.dtype);
  c.efficiency = gpu.gemm_ceiling(op.dtype) * head_dim / (head_dim + kFlashHalfK);
  c.compute_bound = peak > 0 ? op.flops / (peak * c.efficiency) : 0;
  c.memory_bound = gpu.hbm_bandwidth > 0 ? op.hbm_bytes / gpu.hbm_bandwidth : 0;
  c.seconds = std::max(c.compute_bound, c.memory_bound) + gpu.launch_overhead;
  return c;
}

// A decode step's attention: one query token per sequence against its whole KV cache. It streams
// the cache (op.hbm_bytes, from the lowering) at the realised HBM fraction; its QK^T and PV are
// head_dim-deep products at the flash-attention compute rate.
KernelCost decode_attention_cost(const GpuSpec& gpu, const Op& op) {
  KernelCost c;
  const double head_dim = attr(op, "head_dim", kFlashHalfK);
  const double peak = cost_detail::peak_for(gpu, op.dtype);
  c.efficiency = gpu.gemm_ceiling(op.dtype) * head_dim / (head_dim + kFlashHalfK);
  c.compute_bound = peak > 0 ? op.flops / (peak * c.efficiency) : 0;
  c.memory_bound = gpu.hbm_bandwidth > 0 ? op.hbm_bytes / (gpu.hbm_bandwidth * gpu.hbm_efficiency) : 0;
  c.seconds = std::max(c.compute_bound, c.memory_bound) + gpu.launch_overhead;
  return c;
}

KernelCost op_cost(const GpuSpec& gpu, const Op& op) {
  if (op.kind == OpKind::gemm) return gemm_cost(gpu, op.gemm, op.dtype);
  KernelCost c;
  if (op.kind != OpKind::kernel) return c;
  // A fused op stands for its parts (whole-step lowering coarsens a layer's compute between TP
  // collectives): its compute is their sum. Collective parts (folded TP) are the engine's to time.
  if (op.kernel.fn == "fused") {
    if (op.parts)
      for (const Op& part : *op.parts) {
        const KernelCost p = op_cost(gpu, part);
        c.seconds += p.seconds;
        c.compute_bound += p.compute_bound;
        c.memory_bound += p.memory_bound;
      }
    return c;
  }
  // Ring attention's blocks are flash attention over a block of keys (context_parallel.cpp).
  if (op.kernel.fn == "attention" || op.kernel.fn == "attention_backward" || op.kernel.fn == "attention_block" ||
      op.kernel.fn == "attention_block_backward")
    return attention_cost(gpu, op);
  if (op.kernel.fn == "decode_attention") return decode_attention_cost(gpu, op);
  // Non-GEMM kernels (norms, activations, the loss, the optimizer) are memory-bound, each at its
  // measured HBM efficiency.
  const double peak = cost_detail::peak_for(gpu, op.dtype);
  c.efficiency = gpu.gemm_ceiling(op.dtype);
  c.compute_bound = peak > 0 ? op.flops / (peak * c.efficiency) : 0;
  const double hbm = gpu.hbm_bandwidth * kernel_hbm_efficiency(op.kernel.fn);
  c.memory_bound = hbm > 0 ? op.hbm_bytes / hbm : 0;
  c.seconds = std::max(c.compute_bound, c.memory_bound) + gpu.launch_overhead;
  return c;
}

}  // namespace tpsim
