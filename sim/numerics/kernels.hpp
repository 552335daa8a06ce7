// The kernel registry: KernelInfo::fn -> CPU code, and the GEMM. Inputs and outputs are in the op's
// order; outputs arrive sized (zeroed when new, holding the old value when the op accumulates).
#pragma once

#include <string>
#include <vector>

#include "numerics/dense.hpp"
#include "numerics/gemm.hpp"
#include "tpsim/program.hpp"

namespace tpsim::numerics {

using KernelFn = void (*)(const Op& op, const std::vector<const Mat*>& in, const std::vector<Mat*>& out);

// nullptr when no kernel has that name.
KernelFn find_kernel(const std::string& fn);
std::vector<std::string> kernel_names();

// out (+)= op(A) op(B), fp32: each element one chain of fused multiply-adds over k in order, so its
// bits do not depend on the matrix shape, blocking, threads or instruction set (gemm.cpp). Shapes
// are checked here; the path in use is gemm_isa() (gemm.hpp).
void gemm(const GemmInfo& g, const Mat& a, const Mat& b, Mat& out);

}  // namespace tpsim::numerics
