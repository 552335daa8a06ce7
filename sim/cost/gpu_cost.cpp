// GPU kernel cost: a roofline with GEMM efficiency from tile and wave quantisation.
//
// A GEMM [m, k] x [k, n] is cut into output tiles that the SMs process in waves; a partial last
// wave or a partial edge tile wastes tensor-core time, and a short k cannot hide the tile's load
// latency. The large-GEMM ceiling is the GPU's measured max achievable matmul (MAMF) fraction.
#include <algorithm>
#include <cmath>

#include "tpsim/cost.hpp"

namespace tpsim {
namespace {

// Output tile edge of the cuBLAS-class kernels we model; 128x128 is the common Hopper/Ampere choice.
constexpr double kTile = 128;
// k at which a tile's main loop reaches half its steady-state throughput (prologue/epilogue cost).
constexpr double kHalfK = 64;

double peak_for(const GpuSpec& gpu, DType dtype) {
  auto it = gpu.peak_flops.find(dtype);
  if (it != gpu.peak_flops.end() && it->second > 0) return it->second;
  // fp16 runs on the bf16 tensor-core path; anything else missing falls back to fp32.
  if (dtype == DType::fp16) return peak_for(gpu, DType::bf16);
  auto fp32 = gpu.peak_flops.find(DType::fp32);
  return fp32 != gpu.peak_flops.end() ? fp32->second : 0;
}

}  // namespace

KernelCost gemm_cost(const GpuSpec& gpu, const GemmInfo& g, DType dtype) {
  KernelCost c;
  const double m = double(g.m), n = double(g.n), k = double(g.k);
  if (m <= 0 || n <= 0 || k <= 0) return c;
  const double flops = 2 * m * n * k;
  const double tiles_m = std::ceil(m / kTile), tiles_n = std::ceil(n / kTile);
  const double tile_eff = (m * n) / (tiles_m * kTile * tiles_n * kTile);
  const double tiles = tiles_m * tiles_n;
  const double sms = std::max(1, gpu.sms);
  const double wave_eff = tiles / (std::ceil(tiles / sms) * sms);
  const double k_eff = k / (k + kHalfK);
  c.efficiency = gpu.gemm_efficiency * tile_eff * wave_eff * k_eff;
  const double peak = peak_for(gpu, dtype);
  c.compute_bound = peak > 0 ? flops / (peak * c.efficiency) : 0;
  const double bytes = (m * k + k * n + m * n * (g.accumulate ? 2 : 1)) * dtype_bytes(dtype);
  c.memory_bound = gpu.hbm_bandwidth > 0 ? bytes / gpu.hbm_bandwidth : 0;
  c.seconds = std::max(c.compute_bound, c.memory_bound) + gpu.launch_overhead;
  return c;
}

KernelCost op_cost(const GpuSpec& gpu, const Op& op) {
  if (op.kind == OpKind::gemm) return gemm_cost(gpu, op.gemm, op.dtype);
  KernelCost c;
  if (op.kind != OpKind::kernel) return c;
  // A fused kernel stands for a run of kernels already costed one by one (whole-step lowering
  // coarsens a layer's compute between TP collectives): its duration is their sum.
  if (op.kernel.fn == "fused") {
    auto it = op.kernel.attrs.find("seconds");
    c.seconds = it != op.kernel.attrs.end() ? it->second : 0;
    c.compute_bound = c.seconds;
    return c;
  }
  // Non-GEMM kernels (norms, activations, softmax outside flash attention) are memory-bound; a
  // fused attention kernel carries its FLOPs and reaches the same fraction of peak as a GEMM.
  const double peak = peak_for(gpu, op.dtype);
  c.efficiency = gpu.gemm_efficiency;
  c.compute_bound = peak > 0 ? op.flops / (peak * c.efficiency) : 0;
  c.memory_bound = gpu.hbm_bandwidth > 0 ? op.hbm_bytes / gpu.hbm_bandwidth : 0;
  c.seconds = std::max(c.compute_bound, c.memory_bound) + gpu.launch_overhead;
  return c;
}

}  // namespace tpsim
