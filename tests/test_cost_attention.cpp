// Cost-model extensions for whole steps: flash-attention style attention, split-K for GEMMs with
// few output tiles, a measured GEMM table overriding the model, fused kernels.
#include <doctest/doctest.h>

#include "relative.hpp"

#include <cstdio>
#include <fstream>

#include "tpsim/cost.hpp"

using namespace tpsim;

namespace {
GpuSpec toy_gpu() {
  GpuSpec g;
  g.name = "toy";
  g.peak_flops[DType::bf16] = 1e15;
  g.hbm_bandwidth = 1e12;
  g.sms = 4;
  g.launch_overhead = 5e-6;
  g.gemm_efficiency = 0.8;
  return g;
}

Op attention(const char* fn, double batch, double heads, double seq, double head_dim) {
  Op op;
  op.kind = OpKind::kernel;
  op.kernel.fn = fn;
  op.kernel.attrs = {{"batch", batch}, {"heads", heads}, {"seq", seq}, {"head_dim", head_dim}};
  op.flops = 2 * batch * seq * seq * heads * head_dim * (std::string(fn) == "attention" ? 1 : 2.5);
  op.hbm_bytes = 4 * batch * seq * heads * head_dim * 2;
  return op;
}
}  // namespace

TEST_CASE("flash attention runs at the GEMM ceiling times the k factor of its head_dim-deep products") {
  GpuSpec gpu = toy_gpu();
  const Op op = attention("attention", 1, 16, 4096, 128);
  const KernelCost c = op_cost(gpu, op);
  const double eff = 0.8 * 128.0 / (128 + 64);
  CHECK(c.efficiency == rel(eff));
  CHECK(c.seconds == rel(op.flops / (1e15 * eff) + 5e-6));
}

TEST_CASE("unfused attention: batched GEMMs over the whole score matrix, then its traffic through HBM") {
  GpuSpec gpu = toy_gpu();
  gpu.attention_score_bytes = 40;
  const Op fwd = attention("attention", 2, 8, 2048, 64), bwd = attention("attention_backward", 2, 8, 2048, 64);
  const double scores = 2.0 * 8 * 2048 * 2048 / 2;   // causal half
  const double hbm = 1e12 * kernel_hbm_efficiency("add");
  // Forward: S = Q K^T and O = P V over 16 (batch x heads) full 2048 x 2048 score matrices, then
  // softmax and dropout (two kernels) moving 40 B per causal score element.
  const double qk = batched_gemm_cost(gpu, GemmInfo{2048, 2048, 64}, 16, DType::bf16).seconds;
  const double pv = batched_gemm_cost(gpu, GemmInfo{2048, 64, 2048}, 16, DType::bf16).seconds;
  CHECK(op_cost(gpu, fwd).seconds == rel(qk + pv + 40 * scores / hbm + 2 * 5e-6));
  // Backward: dP = dO V^T, and dV, dQ, dK (three [s, s] x [s, d]); 19/13 of the score traffic.
  CHECK(op_cost(gpu, bwd).seconds == rel(qk + 3 * pv + 40 * 19.0 / 13 * scores / hbm + 2 * 5e-6));
}

TEST_CASE("split-K: one output tile with a deep k spreads over idle SMs") {
  GpuSpec gpu = toy_gpu();
  const KernelCost c = gemm_cost(gpu, GemmInfo{128, 128, 4096}, DType::bf16);   // 1 tile, 4 SMs -> 4 splits
  const double half_k = gemm_half_k(gpu, DType::bf16);   // 0.80 us of a 0.2 PFLOP/s SM
  const double k_eff = 1024.0 / (1024 + half_k);
  CHECK(c.efficiency == rel(0.8 * k_eff));
  CHECK(c.compute_bound == rel(2.0 * 128 * 128 * 4096 / (1e15 * 0.8 * k_eff)));
  // A shallow k is not split: 1 tile on 4 SMs runs a quarter wave.
  const KernelCost shallow = gemm_cost(gpu, GemmInfo{128, 128, 256}, DType::bf16);
  CHECK(shallow.efficiency == rel(0.8 * 0.25 * 256.0 / (256 + half_k)));
}

TEST_CASE("a measured GEMM table overrides the model for its exact shapes only") {
  const std::string path = "/tmp/tpsim_test_gemm_table.csv";
  {
    std::ofstream out(path);
    out << "m,n,k,dtype,time_us\n# measured\n256,256,4096,bf16,123.5\n";
  }
  GpuSpec gpu = toy_gpu();
  gpu.gemm_measured = read_gemm_table(path);
  CHECK(gemm_cost(gpu, GemmInfo{256, 256, 4096}, DType::bf16).seconds == rel(123.5e-6));
  const GpuSpec plain = toy_gpu();
  CHECK(gemm_cost(gpu, GemmInfo{256, 512, 4096}, DType::bf16).seconds ==
        rel(gemm_cost(plain, GemmInfo{256, 512, 4096}, DType::bf16).seconds));
  CHECK_THROWS_AS(read_gemm_table("/tmp/tpsim_no_such_table.csv"), InputError);
  std::remove(path.c_str());
}

TEST_CASE("a fused op costs the sum of its parts") {
  Op gemm;
  gemm.kind = OpKind::gemm;
  gemm.gemm = {256, 256, 4096};
  gemm.dtype = DType::bf16;
  Op norm;
  norm.kind = OpKind::kernel;
  norm.kernel.fn = "layernorm";
  norm.hbm_bytes = 1e9;
  Op op;
  op.kind = OpKind::kernel;
  op.kernel.fn = "fused";
  op.flops = 1e20;   // ignored: the parts are costed one by one
  op.parts = std::make_shared<const std::vector<Op>>(std::vector<Op>{gemm, norm, gemm});
  const double want = 2 * op_cost(toy_gpu(), gemm).seconds + op_cost(toy_gpu(), norm).seconds;
  CHECK(op_cost(toy_gpu(), op).seconds == rel(want, 1e-12));
}
