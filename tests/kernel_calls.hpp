// Calling one numerics kernel the way the executor does, for the kernel tests: an op with its fn
// and attributes, run through the registry, or the message it refuses with.
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "numerics/kernels.hpp"

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

}  // namespace tpsim::test
