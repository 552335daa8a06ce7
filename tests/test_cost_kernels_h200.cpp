// Memory-bound kernels against the ones measured on one H200 (kernels_h200.csv: PyTorch's
// layernorm, rmsnorm, gelu, swiglu, add forward and backward at 12 sizes, fused AdamW, and the
// cross-entropy loss). Each kernel's HBM efficiency (tpsim::kernel_hbm_efficiency) is the fit on
// its even sizes (file order) that runs >= 30 us: the value whose median error there is 0, with
// the bytes the lowering counts for the kernel (inputs and outputs once) and this measurement's
// CUDA-graph launch gap (2.7 us, the GEMM fit's). Checked on the odd sizes.
#include <doctest/doctest.h>

#include "h200_tables.hpp"
#include "relative.hpp"

#include <fmt/format.h>

#include <cmath>
#include <map>

#include "tpsim/cost.hpp"

using namespace tpsim;

namespace {

constexpr double kGraphLaunch = 2.7e-6;   // test_cost_gemm_shape.cpp's fit
constexpr double kAdamBytesPerParam = 30;  // step_training.cpp: what the optimizer op counts

struct Case {
  std::string fn;   // tpsim's kernel
  double bytes = 0; // as the lowering counts them
  int launches = 1; // tpsim's kernels standing for the measured one
  double seconds = 0;
};

// The tpsim kernels and bytes for one measured row and pass (none when not measured).
std::vector<Case> cases(const H200Kernel& k) {
  const double r = double(k.rows), c = double(k.cols), rc = r * c;
  std::vector<Case> out;
  auto both = [&](const std::string& fn, double fwd_elems, double bwd_elems) {
    out.push_back({fn, 2 * fwd_elems, 1, k.forward});
    if (k.backward > 1e-6) out.push_back({fn + "_backward", 2 * bwd_elems, 1, k.backward});
  };
  if (k.kernel == "layernorm") both("layernorm", 2 * rc + 2 * c, 3 * rc + 3 * c);   // x, w, b -> y; x, w, dy -> dx, dw, db
  if (k.kernel == "rmsnorm") both("rmsnorm", 2 * rc + c, 3 * rc + 2 * c);
  if (k.kernel == "gelu") both("gelu", 2 * rc, 3 * rc);                              // a -> y; a, dy -> da
  if (k.kernel == "swiglu") both("swiglu", 3 * rc, 5 * rc);                          // a, g -> y; a, g, dy -> da, dg
  if (k.kernel == "add") out.push_back({"add", 2 * 3 * rc, 1, k.forward});
  if (k.kernel == "adamw_fused_fp32") out.push_back({"adam", kAdamBytesPerParam * r, 1, k.forward});
  if (k.kernel == "cross_entropy") {
    // The lowering's loss: row_max, sum_exp, target_logit each read [T, V] (+ the tiny combine),
    // backward one pass reading the logits and writing their gradient.
    out.push_back({"row_max", 2 * 3 * rc, 4, k.forward});
    out.push_back({"cross_entropy_backward", 2 * 2 * rc, 1, k.backward});
  }
  return out;
}

double predicted(const Case& c, double efficiency) {
  return c.launches * kGraphLaunch + c.bytes / (load_topology("hgx-h200").gpu.hbm_bandwidth * efficiency);
}

double median(std::vector<double> v) {
  std::nth_element(v.begin(), v.begin() + std::ptrdiff_t(v.size() / 2), v.end());
  return v[v.size() / 2];
}

}  // namespace

TEST_CASE("each memory-bound kernel's HBM efficiency, fitted on half the measured H200 sizes, predicts the other half") {
  std::map<std::string, std::vector<Case>> by_fn;
  std::map<std::string, int> seen;
  std::map<std::string, std::vector<bool>> even;
  for (const H200Kernel& k : h200_kernels()) {
    const bool is_even = seen[k.kernel]++ % 2 == 0;
    for (const Case& c : cases(k)) {
      by_fn[c.fn].push_back(c);
      even[c.fn].push_back(is_even);
    }
  }
  REQUIRE(by_fn.size() == 12);   // softmax is not a tpsim kernel (unfused attention: score bytes)
  const double bw = load_topology("hgx-h200").gpu.hbm_bandwidth;
  std::string table = "kernel                   fitted  in tpsim   held-out sizes >= 30 us: mean |err|  worst   (all sizes: worst)\n";
  for (const auto& [fn, list] : by_fn) {
    std::vector<double> fit_on;
    for (size_t i = 0; i < list.size(); ++i)
      if (even[fn][i] && list[i].seconds >= 30e-6)
        fit_on.push_back(list[i].bytes / ((list[i].seconds - list[i].launches * kGraphLaunch) * bw));
    REQUIRE(!fit_on.empty());
    const double fitted = median(fit_on);
    const double used = kernel_hbm_efficiency(fn);
    double sum = 0, worst = 0, worst_all = 0;
    int n = 0;
    for (size_t i = 0; i < list.size(); ++i) {
      if (even[fn][i]) continue;
      const double e = predicted(list[i], used) / list[i].seconds - 1;
      worst_all = std::max(worst_all, std::fabs(e));
      if (list[i].seconds < 30e-6) continue;
      sum += std::fabs(e), worst = std::max(worst, std::fabs(e)), ++n;
    }
    CAPTURE(fn);
    CHECK(used == rel(fitted, 0.03));   // tpsim's table is this fit
    REQUIRE(n > 0);
    // Achieved 2026-12-01: at most 7.3% mean |error| on every kernel's held-out sizes but
    // rmsnorm's forward (15.6%: PyTorch's reaches 0.49-0.72 of HBM bandwidth across sizes, with no
    // trend one fraction could follow).
    CHECK(sum / n < (fn == "rmsnorm" ? 0.16 : 0.08));
    table += fmt::format("{:<24} {:>6.3f} {:>9.3f} {:>34.1f}% {:>6.0f}% {:>14.0f}%\n", fn, fitted, used, 100 * sum / n,
                         100 * worst, 100 * worst_all);
  }
  MESSAGE(table);
}
