// GPU kernel cost: a roofline with GEMM efficiency from tile and wave quantisation.
//
// A GEMM [m, k] x [k, n] is cut into output tiles that the SMs process in waves; a partial last
// wave or a partial edge tile wastes tensor-core time, and a short k cannot hide the tile's load
// latency. The large-GEMM ceiling is the GPU's measured max achievable matmul (MAMF) fraction.
// The memory side streams A, B and C through HBM at the fraction of its bandwidth a streaming
// kernel realises (gpu.hbm_efficiency): a decode-size GEMM (m = a batch of tokens) is bound by
// reading its weights.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <tuple>

#include "tpsim/cost.hpp"

namespace tpsim {
namespace {

// Output tile edge of the cuBLAS-class kernels we model; 128x128 is the common Hopper/Ampere choice.
constexpr double kTile = 128;
// k at which a tile's main loop reaches half its steady-state throughput (prologue/epilogue cost).
constexpr double kHalfK = 64;
// Shallowest k slice a split-K GEMM gives one SM (shorter slices cost more in partial sums than
// they gain in parallelism).
constexpr double kMinSplitK = 256;

double peak_for(const GpuSpec& gpu, DType dtype) {
  auto it = gpu.peak_flops.find(dtype);
  if (it != gpu.peak_flops.end() && it->second > 0) return it->second;
  // fp16 runs on the bf16 tensor-core path; anything else missing falls back to fp32.
  if (dtype == DType::fp16) return peak_for(gpu, DType::bf16);
  auto fp32 = gpu.peak_flops.find(DType::fp32);
  return fp32 != gpu.peak_flops.end() ? fp32->second : 0;
}

// A measured GEMM table: CSV rows "m,n,k,dtype,time_us" (a header line and # comments allowed).
using GemmKey = std::tuple<int64_t, int64_t, int64_t, std::string>;
using GemmTable = std::map<GemmKey, double>;

GemmTable read_gemm_table(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw InputError(path, 0, 0, "gpu.gemm_table", "cannot open the GEMM table '" + path + "'");
  GemmTable table;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (line.empty() || line[0] == '#' || line.rfind("m,", 0) == 0) continue;
    std::stringstream row(line);
    std::string m, n, k, dtype, us;
    if (!std::getline(row, m, ',') || !std::getline(row, n, ',') || !std::getline(row, k, ',') ||
        !std::getline(row, dtype, ',') || !std::getline(row, us, ','))
      throw InputError(path, number, 1, "gpu.gemm_table", "expected 'm,n,k,dtype,time_us', got '" + line + "'");
    try {
      table[{std::stoll(m), std::stoll(n), std::stoll(k), dtype}] = std::stod(us) * 1e-6;
    } catch (const std::exception&) {
      throw InputError(path, number, 1, "gpu.gemm_table", "expected numbers in 'm,n,k,dtype,time_us', got '" + line + "'");
    }
  }
  return table;
}

// Tables are read once per path (simulations cost millions of GEMMs).
const GemmTable& gemm_table(const std::string& path) {
  static std::mutex mutex;
  static std::map<std::string, GemmTable> tables;
  std::lock_guard lock(mutex);
  auto it = tables.find(path);
  if (it == tables.end()) it = tables.emplace(path, read_gemm_table(path)).first;
  return it->second;
}

double attr(const Op& op, const char* key, double fallback) {
  auto it = op.kernel.attrs.find(key);
  return it != op.kernel.attrs.end() ? it->second : fallback;
}

}  // namespace

// Flash-attention style: QK^T and PV are tiled GEMMs whose inner dimension is the head dim, so
// they reach the GEMM ceiling times the k factor of a head_dim-deep product (FLOPs as the lowering
// counts them: 4 b s^2 H d forward, causal half, backward 2.5x). Memory: Q, K, V, O (and their
// gradients) plus, when the stack does not fuse attention, gpu.attention_score_bytes per score
// element b * H * s^2 / 2 (forward; backward twice that).
KernelCost attention_cost(const GpuSpec& gpu, const Op& op) {
  KernelCost c;
  const double head_dim = attr(op, "head_dim", kHalfK);
  const double peak = peak_for(gpu, op.dtype);
  c.efficiency = gpu.gemm_efficiency * head_dim / (head_dim + kHalfK);
  c.compute_bound = peak > 0 ? op.flops / (peak * c.efficiency) : 0;
  const double scores = attr(op, "batch", 1) * attr(op, "heads", 1) * attr(op, "seq", 0) * attr(op, "seq", 0) / 2;
  const double passes = op.kernel.fn == "attention_backward" ? 2 : 1;
  const double bytes = op.hbm_bytes + passes * scores * gpu.attention_score_bytes;
  c.memory_bound = gpu.hbm_bandwidth > 0 ? bytes / gpu.hbm_bandwidth : 0;
  c.seconds = std::max(c.compute_bound, c.memory_bound) + gpu.launch_overhead;
  return c;
}

// A decode step's attention: one query token per sequence against its whole KV cache. It streams
// the cache (op.hbm_bytes, from the lowering) at the realised HBM fraction; its QK^T and PV are
// head_dim-deep products at the flash-attention compute rate.
KernelCost decode_attention_cost(const GpuSpec& gpu, const Op& op) {
  KernelCost c;
  const double head_dim = attr(op, "head_dim", kHalfK);
  const double peak = peak_for(gpu, op.dtype);
  c.efficiency = gpu.gemm_efficiency * head_dim / (head_dim + kHalfK);
  c.compute_bound = peak > 0 ? op.flops / (peak * c.efficiency) : 0;
  c.memory_bound = gpu.hbm_bandwidth > 0 ? op.hbm_bytes / (gpu.hbm_bandwidth * gpu.hbm_efficiency) : 0;
  c.seconds = std::max(c.compute_bound, c.memory_bound) + gpu.launch_overhead;
  return c;
}

KernelCost gemm_cost(const GpuSpec& gpu, const GemmInfo& g, DType dtype) {
  KernelCost c;
  const double m = double(g.m), n = double(g.n), k = double(g.k);
  if (m <= 0 || n <= 0 || k <= 0) return c;
  const double flops = 2 * m * n * k;
  const double tiles_m = std::ceil(m / kTile), tiles_n = std::ceil(n / kTile);
  const double tile_eff = (m * n) / (tiles_m * kTile * tiles_n * kTile);
  const double output_tiles = tiles_m * tiles_n;
  const double sms = std::max(1, gpu.sms);
  // Split-K (as cuBLAS picks for few output tiles and a deep k): the k loop is cut into `splits`
  // parts on otherwise idle SMs, each at least kMinSplitK deep, and the fp32 partials are summed.
  const double splits = std::max(1.0, std::min(std::floor(sms / output_tiles), std::floor(k / kMinSplitK)));
  const double tiles = output_tiles * splits;
  const double wave_eff = tiles / (std::ceil(tiles / sms) * sms);
  const double k_eff = (k / splits) / (k / splits + kHalfK);
  c.efficiency = gpu.gemm_efficiency * tile_eff * wave_eff * k_eff;
  const double peak = peak_for(gpu, dtype);
  c.compute_bound = peak > 0 ? flops / (peak * c.efficiency) : 0;
  // A, B and C once through HBM. Split-K's fp32 partials stay in L2: splitting needs fewer output
  // tiles than SMs, so the partials are at most SMs x 128 x 128 x 4 B (8.7 MB on 132 SMs), well
  // inside the 40-50 MB L2 of A100/H100/H200; counting them as HBM traffic made decode GEMMs at
  // m = 128-256 up to 2x too slow against the measured H200 kernels (data/reference/h200_kernels_*).
  const auto size = [&](int given) { return double(given > 0 ? given : dtype_bytes(dtype)); };
  const double bytes = m * k * size(g.a_bytes) + k * n * size(g.b_bytes) + m * n * (g.accumulate ? 2 : 1) * size(g.c_bytes);
  c.memory_bound = gpu.hbm_bandwidth > 0 ? bytes / (gpu.hbm_bandwidth * gpu.hbm_efficiency) : 0;
  c.seconds = std::max(c.compute_bound, c.memory_bound) + gpu.launch_overhead;
  // A measured time for this exact shape overrides the model (it already includes the launch).
  if (!gpu.gemm_table.empty()) {
    const GemmTable& table = gemm_table(gpu.gemm_table);
    auto it = table.find({g.m, g.n, g.k, to_string(dtype)});
    if (it != table.end()) {
      c.seconds = it->second;
      c.efficiency = peak > 0 ? flops / (peak * c.seconds) : 0;
    }
  }
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
  if (op.kernel.fn == "attention" || op.kernel.fn == "attention_backward") return attention_cost(gpu, op);
  if (op.kernel.fn == "decode_attention") return decode_attention_cost(gpu, op);
  // Non-GEMM kernels (norms, activations, softmax outside flash attention) are memory-bound.
  const double peak = peak_for(gpu, op.dtype);
  c.efficiency = gpu.gemm_efficiency;
  c.compute_bound = peak > 0 ? op.flops / (peak * c.efficiency) : 0;
  c.memory_bound = gpu.hbm_bandwidth > 0 ? op.hbm_bytes / gpu.hbm_bandwidth : 0;
  c.seconds = std::max(c.compute_bound, c.memory_bound) + gpu.launch_overhead;
  return c;
}

}  // namespace tpsim
