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

TEST_CASE("a tile-aligned, wave-aligned GEMM runs at the efficiency ceiling times the k factor") {
  GpuSpec gpu = toy_gpu();
  GemmInfo g{256, 256, 4096};                      // 2x2 = 4 tiles = one full wave on 4 SMs
  KernelCost c = gemm_cost(gpu, g, DType::bf16);
  double k_eff = 4096.0 / (4096.0 + 64.0);
  CHECK(c.efficiency == rel(0.8 * k_eff));
  CHECK(c.compute_bound == rel(2.0 * 256 * 256 * 4096 / (1e15 * 0.8 * k_eff)));
  // On this toy GPU (1 PFLOP/s, 1 TB/s) the GEMM is memory-bound: A, B and C once through HBM,
  // 4.33 us against 0.68 us of math. (An absolute Approx let this check pass as compute-bound.)
  const double bytes = (256.0 * 4096 + 4096.0 * 256 + 256.0 * 256) * 2;
  CHECK(c.memory_bound == rel(bytes / 1e12));
  CHECK(c.seconds == rel(bytes / 1e12 + 5e-6));
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
  CHECK(c.memory_bound == rel(bytes / 1e12));
  CHECK(c.seconds == rel(bytes / 1e12 + 5e-6));
}

TEST_CASE("an elementwise kernel costs its bytes over HBM bandwidth plus launch") {
  GpuSpec gpu = toy_gpu();
  Op op;
  op.kind = OpKind::kernel;
  op.kernel.fn = "gelu";
  op.hbm_bytes = 2e6;
  op.flops = 1e6;
  CHECK(op_cost(gpu, op).seconds == rel(2e-6 + 5e-6));
}
