// GEMM cost: a roofline whose compute side follows the library's tiling (constants: GemmShape).
//
// A GEMM [m, k] x [k, n] is cut into tile x tile output tiles that the SMs process in waves: a
// partial edge tile wastes tensor-core time, and so does a partial last wave unless the library
// spreads it over every SM (gpu.gemm_stream_k). Each tile pays a fixed prologue and epilogue time
// on top of its k loop (gemm_half_k): a shallow k runs at k / (k + half_k) of the steady rate. The
// steady rate is the GPU's ceiling (gpu.gemm_efficiency of its dense peak; FP8 GEMMs their own,
// gpu.gemm_efficiency_fp8, where the GPU's FP8 MAMF is known).
#include <algorithm>
#include <cmath>

#include "cost/peaks.hpp"
#include "tpsim/cost.hpp"
#include "tpsim/memory.hpp"

namespace tpsim {
namespace {

// The measured time of this exact shape (gpu.gemm_measured, sorted at load), or null.
const GemmMeasurement* measured(const GpuSpec& gpu, const GemmInfo& g, DType dtype) {
  const GemmMeasurement want{g.m, g.n, g.k, to_string(dtype), 0};
  auto it = std::lower_bound(gpu.gemm_measured.begin(), gpu.gemm_measured.end(), want,
                             [](const GemmMeasurement& x, const GemmMeasurement& y) { return x.key() < y.key(); });
  return it != gpu.gemm_measured.end() && it->key() == want.key() ? &*it : nullptr;
}

// Bytes per element of an operand as stored in HBM: GemmInfo's a_bytes / b_bytes / c_bytes
// (workload.precision: an FP8 weight under BF16 activations), else the GEMM's dtype.
double operand_bytes(int given, DType dtype) { return double(given > 0 ? given : dtype_bytes(dtype)); }

// Bytes per element of the product C as the GEMM moves it: written once; read too when it
// accumulates; the main gradient read and written when it accumulates into it itself. A training
// GEMM computes in the model's dtype, so `dtype` names the main gradient's (main_grad_bytes).
double product_bytes(const GemmInfo& g, DType dtype) {
  if (g.main_grad == MainGrad::fused) return 2 * main_grad_bytes(dtype);
  return (g.accumulate ? 2 : 1) * operand_bytes(g.c_bytes, dtype);
}

}  // namespace

double gemm_half_k(const GpuSpec& gpu, DType dtype, const GemmShape& shape) {
  const double per_sm = cost_detail::peak_for(gpu, dtype) * gpu.gemm_ceiling(dtype) / std::max(1, gpu.sms);
  return shape.tile_overhead * per_sm / (2 * shape.tile * shape.tile);
}

KernelCost batched_gemm_cost(const GpuSpec& gpu, const GemmInfo& g, double batch, DType dtype, const GemmShape& shape) {
  KernelCost c;
  const double m = double(g.m), n = double(g.n), k = double(g.k);
  if (m <= 0 || n <= 0 || k <= 0 || batch <= 0) return c;
  const double flops = 2 * m * n * k * batch;
  const double tiles_m = std::ceil(m / shape.tile), tiles_n = std::ceil(n / shape.tile);
  const double tile_eff = (m * n) / (tiles_m * shape.tile * tiles_n * shape.tile);
  const double output_tiles = tiles_m * tiles_n * batch;
  const double sms = std::max(1, gpu.sms);
  // Split-K (as cuBLAS picks for few output tiles and a deep k): the k loop is cut into `splits`
  // parts on otherwise idle SMs, each at least min_split_k deep, and the fp32 partials are summed.
  const double splits = std::max(1.0, std::min(std::floor(sms / output_tiles), std::floor(k / shape.min_split_k)));
  const double tiles = output_tiles * splits;
  const double wave_eff = gpu.gemm_stream_k ? 1.0 : tiles / (std::ceil(tiles / sms) * sms);
  const double k_eff = (k / splits) / (k / splits + gemm_half_k(gpu, dtype, shape));
  c.efficiency = gpu.gemm_ceiling(dtype) * tile_eff * wave_eff * k_eff;
  const double peak = cost_detail::peak_for(gpu, dtype);
  c.compute_bound = peak > 0 ? flops / (peak * c.efficiency) : 0;
  // A, B and C once through HBM, each at its stored size. Split-K's fp32 partials stay in L2:
  // splitting needs fewer output tiles than SMs, so the partials are at most SMs x 128 x 128 x 4 B
  // (8.7 MB on 132 SMs), well inside the 40-50 MB L2 of A100/H100/H200; counting them as HBM
  // traffic made decode GEMMs at m = 128-256 up to 2x too slow against the measured H200 kernels.
  const double bytes =
      batch * (m * k * operand_bytes(g.a_bytes, dtype) + k * n * operand_bytes(g.b_bytes, dtype) + m * n * product_bytes(g, dtype));
  // The operands stream at the library's fraction (shape.hbm_efficiency) of the bandwidth the GPU
  // realises (gpu.hbm_efficiency; 1 = the datasheet roofline).
  const double hbm = gpu.hbm_bandwidth * gpu.hbm_efficiency * shape.hbm_efficiency;
  c.memory_bound = hbm > 0 ? bytes / hbm : 0;
  c.seconds = std::max(c.compute_bound, c.memory_bound) + gpu.launch_overhead;
  // A measured time for this exact shape overrides the model (it already includes the launch).
  if (batch == 1)
    if (const GemmMeasurement* row = measured(gpu, g, dtype)) {
      c.seconds = row->seconds;
      c.efficiency = peak > 0 ? flops / (peak * c.seconds) : 0;
    }
  // Megatron-LM 2021 adds each micro-batch's weight gradient into the main gradient with its own
  // kernel: [m, n] read in the GEMM's dtype, the main gradient read and written.
  if (g.main_grad == MainGrad::separate) {
    const double add = gpu.hbm_bandwidth * kernel_hbm_efficiency("add");
    const double add_bytes = batch * m * n * (operand_bytes(g.c_bytes, dtype) + 2 * main_grad_bytes(dtype));
    c.memory_bound += add > 0 ? add_bytes / add : 0;
    c.seconds += (add > 0 ? add_bytes / add : 0) + gpu.launch_overhead;
  }
  return c;
}

KernelCost gemm_cost(const GpuSpec& gpu, const GemmInfo& g, DType dtype, const GemmShape& shape) {
  return batched_gemm_cost(gpu, g, 1, dtype, shape);
}

}  // namespace tpsim
