// Calling one numerics kernel the way the executor does, for the kernel tests: an op with its fn
// and attributes, run through the registry, or the message it refuses with.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "numerics/kernels.hpp"
#include "relative.hpp"

namespace tpsim::test {

inline Op kernel_op(const std::string& fn, std::map<std::string, double> attrs = {}) {
  Op op;
  op.name = "test." + fn;
  op.kind = OpKind::kernel;
  op.kernel.fn = fn;
  op.kernel.attrs = std::move(attrs);
  return op;
}

// Through the registry, as the executor calls it.
inline void run_kernel(const Op& op, const std::vector<const numerics::Mat*>& in,
                       const std::vector<numerics::Mat*>& out) {
  const numerics::KernelFn fn = numerics::find_kernel(op.kernel.fn);
  const bool found = fn != nullptr;
  REQUIRE(found);
  fn(op, in, out);
}

// The message a kernel call throws, "" when it does not throw.
inline std::string kernel_error(const Op& op, const std::vector<const numerics::Mat*>& in,
                                const std::vector<numerics::Mat*>& out) {
  try {
    run_kernel(op, in, out);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

// The largest |value| of an oracle's expected output.
inline double largest(const std::vector<double>& want) {
  double m = 0;
  for (double w : want) m = std::max(m, std::fabs(w));
  return m;
}

// A kernel's fp32 output against an oracle's float64 values: |got - want| <= 4 n u max|want| per
// element (n roundings of u = 2^-24 on the output's scale), `factor` times that.
inline void expect_close(const std::string& what, const numerics::Mat& got, const std::vector<double>& want, int n,
                         double factor = 1) {
  REQUIRE(size_t(got.size()) == want.size());
  REQUIRE(largest(want) > 0);
  const double bound = factor * 4 * n * 0x1p-24 * largest(want);
  for (Eigen::Index i = 0; i < got.size(); ++i) {
    const double w = want[size_t(i)];
    INFO(what << " [" << i / got.cols() << ", " << i % got.cols() << "], allowed " << bound << " absolute");
    if (w == 0)
      CHECK(std::fabs(got.data()[i]) <= bound);  // zero in the reference: rel() would demand exactly 0
    else
      CHECK(double(got.data()[i]) == rel(w, bound / std::fabs(w)));
  }
}

}  // namespace tpsim::test
