// What every kernel checks before it computes: its attributes, the count and shapes of its
// tensors, each failure one std::invalid_argument naming the op and its fn (the executor adds the
// rank). Shared by the kernel files (kernels.cpp, kernels_moe.cpp, kernels_cp.cpp).
#pragma once

#include <cmath>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "numerics/dense.hpp"
#include "tpsim/program.hpp"

namespace tpsim::numerics::checks {

inline double attr(const Op& op, const char* key, double fallback = 0) {
  auto it = op.kernel.attrs.find(key);
  return it == op.kernel.attrs.end() ? fallback : it->second;
}

inline void need(const Op& op, bool ok, const std::string& what) {
  if (!ok) throw std::invalid_argument("op " + op.name + " (" + op.kernel.fn + "): " + what);
}

inline std::string num(double v) {
  std::ostringstream s;
  s << v;
  return s.str();
}
inline std::string shape(const Mat& m) { return "[" + num(double(m.rows())) + ", " + num(double(m.cols())) + "]"; }

inline void arity(const Op& op, const std::vector<const Mat*>& in, const std::vector<Mat*>& out, size_t n_in,
                  size_t n_out) {
  need(op, in.size() == n_in && out.size() == n_out,
       "takes " + num(double(n_in)) + " inputs and " + num(double(n_out)) + " outputs, got " + num(double(in.size())) +
           " and " + num(double(out.size())));
}

// A positive integer attribute; `fallback` (0: none, the attribute is required) when absent.
inline int64_t count_attr(const Op& op, const char* key, double fallback = 0) {
  const double v = attr(op, key, fallback);
  need(op, v >= 1 && v == std::floor(v) && v < 1e12,
       std::string("attribute ") + key + " must be a positive integer, got " + num(v));
  return int64_t(v);
}

}  // namespace tpsim::numerics::checks
