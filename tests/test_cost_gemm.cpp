// GPU cost model: closed-form roofline values on hand-built GPUs.
#include <doctest/doctest.h>

#include "relative.hpp"

#include "tpsim/cost.hpp"

using namespace tpsim;

namespace {
GpuSpec toy_gpu() {
  GpuSpec g;
  g.name = "toy";
  g.peak_flops[DType::bf16] = 1e15;
  g.peak_flops[DType::fp32] = 1e14;
  g.hbm_bandwidth = 1e12;
  g.sms = 4;
  g.launch_overhead = 5e-6;
  g.gemm_efficiency = 0.8;
  return g;
}
}  // namespace

constexpr double kHbm = GemmShape{}.hbm_efficiency;   // operands stream at this fraction of HBM bandwidth

TEST_CASE("a tile-aligned, wave-aligned GEMM runs at the efficiency ceiling times the k factor") {
  GpuSpec gpu = toy_gpu();
  GemmInfo g{256, 256, 4096};                      // 2x2 = 4 tiles = one full wave on 4 SMs
  KernelCost c = gemm_cost(gpu, g, DType::bf16);
  double k_eff = 4096.0 / (4096.0 + gemm_half_k(gpu, DType::bf16));
  CHECK(c.efficiency == rel(0.8 * k_eff));
  CHECK(c.compute_bound == rel(2.0 * 256 * 256 * 4096 / (1e15 * 0.8 * k_eff)));
  // On this toy GPU (1 PFLOP/s, 1 TB/s) the GEMM is memory-bound: A, B and C once through HBM,
  // ~5 us against 0.7 us of math. (An absolute Approx let this check pass as compute-bound.)
  const double bytes = (256.0 * 4096 + 4096.0 * 256 + 256.0 * 256) * 2;
  CHECK(c.memory_bound == rel(bytes / (1e12 * kHbm)));
  CHECK(c.seconds == rel(bytes / (1e12 * kHbm) + 5e-6));
}

TEST_CASE("one tile too many costs a whole extra wave") {
  GpuSpec gpu = toy_gpu();
  KernelCost full = gemm_cost(gpu, GemmInfo{256, 256, 4096}, DType::bf16);    // 4 tiles, 1 wave
  KernelCost spill = gemm_cost(gpu, GemmInfo{256, 384, 4096}, DType::bf16);   // 6 tiles, 2 waves
  CHECK(spill.efficiency == rel(full.efficiency * 6.0 / 8.0));
  // Both waves take the time of a full wave: 1.5x the FLOPs in 2x the compute time.
  CHECK(spill.compute_bound == rel(2 * full.compute_bound));
}

TEST_CASE("a skinny GEMM is memory-bound") {
  GpuSpec gpu = toy_gpu();
  GemmInfo g{1, 8192, 8192};                        // a decode-time matrix-vector product
  KernelCost c = gemm_cost(gpu, g, DType::bf16);
  double bytes = (1.0 * 8192 + 8192.0 * 8192 + 8192) * 2;
  CHECK(c.memory_bound == rel(bytes / (1e12 * kHbm)));
  CHECK(c.seconds == rel(bytes / (1e12 * kHbm) + 5e-6));
}

TEST_CASE("a tile's fixed overhead is worth fewer k steps on a slower SM") {
  GpuSpec gpu = toy_gpu();   // 1 PFLOP/s x 0.8 over 4 SMs: 0.2 PFLOP/s per SM
  CHECK(gemm_half_k(gpu, DType::bf16) == rel(GemmShape{}.tile_overhead * 0.2e15 / (2 * 128.0 * 128)));
  gpu.sms = 8;
  CHECK(gemm_half_k(gpu, DType::bf16) == rel(GemmShape{}.tile_overhead * 0.1e15 / (2 * 128.0 * 128)));
}

TEST_CASE("stream-K: a partial last wave costs nothing when the library spreads it over every SM") {
  GpuSpec gpu = toy_gpu();
  gpu.gemm_stream_k = true;
  KernelCost full = gemm_cost(gpu, GemmInfo{256, 256, 4096}, DType::bf16);
  KernelCost spill = gemm_cost(gpu, GemmInfo{256, 384, 4096}, DType::bf16);
  CHECK(spill.efficiency == rel(full.efficiency));
}

TEST_CASE("a weight gradient's fp32 main-gradient accumulation: fused in the GEMM, or a kernel after it") {
  GpuSpec gpu = toy_gpu();
  gpu.peak_flops[DType::bf16] = 1e18;   // memory-bound, so the product's bytes show
  GemmInfo plain{4096, 4096, 256}, fused = plain, separate = plain;
  fused.main_grad = MainGrad::fused;
  separate.main_grad = MainGrad::separate;
  const double mn = 4096.0 * 4096, operands = 2 * 4096.0 * 256 * 2;
  CHECK(gemm_cost(gpu, plain, DType::bf16).memory_bound == rel((operands + 2 * mn) / (1e12 * kHbm)));
  // The GEMM reads and writes the fp32 main gradient (8 B per element) instead of writing bf16.
  CHECK(gemm_cost(gpu, fused, DType::bf16).memory_bound == rel((operands + 8 * mn) / (1e12 * kHbm)));
  // Megatron-LM 2021: the bf16 product, then an add kernel (bf16 read, fp32 read and written).
  const double add = 10 * mn / (1e12 * kernel_hbm_efficiency("add"));
  CHECK(gemm_cost(gpu, separate, DType::bf16).seconds == rel(gemm_cost(gpu, plain, DType::bf16).seconds + add + 5e-6));
  // An fp16 model's main gradient is fp16 (Megatron-LM with --fp16): the fused GEMM reads and
  // writes 4 B per element, the add kernel moves 2 + 2 + 2.
  gpu.peak_flops[DType::fp16] = 1e18;
  CHECK(gemm_cost(gpu, fused, DType::fp16).memory_bound == rel((operands + 4 * mn) / (1e12 * kHbm)));
  const double add16 = 6 * mn / (1e12 * kernel_hbm_efficiency("add"));
  CHECK(gemm_cost(gpu, separate, DType::fp16).seconds == rel(gemm_cost(gpu, plain, DType::fp16).seconds + add16 + 5e-6));
}

TEST_CASE("an elementwise kernel costs its bytes over HBM bandwidth plus launch") {
  GpuSpec gpu = toy_gpu();
  Op op;
  op.kind = OpKind::kernel;
  op.kernel.fn = "gelu";
  op.hbm_bytes = 2e6;
  op.flops = 1e6;
  CHECK(op_cost(gpu, op).seconds == rel(2e-6 / kernel_hbm_efficiency("gelu") + 5e-6));
  // Each kernel at its own measured efficiency: a layernorm backward reaches less than a gelu.
  op.kernel.fn = "layernorm_backward";
  CHECK(op_cost(gpu, op).seconds == rel(2e-6 / kernel_hbm_efficiency("layernorm_backward") + 5e-6));
  CHECK(kernel_hbm_efficiency("layernorm_backward") < kernel_hbm_efficiency("gelu"));
}
