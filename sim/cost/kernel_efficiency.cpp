// Memory-bound kernels: the fraction of HBM bandwidth each reaches on the bytes the lowering
// counts for it (inputs and outputs once; ProgramBuilder::kernel). Measured on one H200
// (data/reference/h200_kernels_2026-11-30/kernels_h200.csv, PyTorch's kernels): the median over
// the sizes that run >= 30 us, on half the sizes; tests/test_cost_kernels_h200.cpp refits each on
// its even rows and checks the odd ones. A fraction, not a rate, so it carries to other GPUs.
#include <map>

#include "tpsim/cost.hpp"

namespace tpsim {

double kernel_hbm_efficiency(const std::string& fn) {
  // Streaming elementwise kernels (add, and those not measured: slice, embedding, gradient
  // accumulation, attention-score traffic) reach what an add does.
  constexpr double kStreaming = 0.917;
  static const std::map<std::string, double> measured = {
      {"add", kStreaming},
      {"gelu", 0.77},               // reads a, writes y
      {"gelu_backward", 0.87},      // reads a, dy; writes da
      {"swiglu", 0.52},             // PyTorch: silu and the product as two kernels
      {"swiglu_backward", 0.50},
      // Row reductions: statistics in fp32, a second pass over the row (backward: dw, db reduced
      // over the rows as well).
      {"layernorm", 0.49},
      {"layernorm_backward", 0.318},
      {"rmsnorm", 0.56},
      {"rmsnorm_backward", 0.33},
      // Adam over fp32 master weights, m and v (fused multi-tensor kernel), on tpsim's 30 B/param.
      {"adam", 0.834},
      // Cross-entropy over [T, V] logits, measured as PyTorch's whole loss, forward and backward,
      // on the bytes of the lowering's pieces of it (three passes forward, one backward): fp32
      // softmax statistics and several passes per element make it slow per byte.
      {"row_max", 0.215},
      {"sum_exp", 0.215},
      {"target_logit", 0.215},
      {"cross_entropy", 0.215},
      {"cross_entropy_backward", 0.135},
  };
  auto it = measured.find(fn);
  return it != measured.end() ? it->second : kStreaming;
}

}  // namespace tpsim
