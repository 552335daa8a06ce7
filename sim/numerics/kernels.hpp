// The kernel registry: KernelInfo::fn -> CPU code, and the GEMM. Inputs and outputs are in the op's
// order; outputs arrive sized (zeroed when new, holding the old value when the op accumulates).
#pragma once

#include <string>
#include <vector>

#include "numerics/dense.hpp"
#include "tpsim/program.hpp"

namespace tpsim::numerics {

using KernelFn = void (*)(const Op& op, const std::vector<const Mat*>& in, const std::vector<Mat*>& out);

// nullptr when no kernel has that name.
KernelFn find_kernel(const std::string& fn);
std::vector<std::string> kernel_names();

// out (+)= op(A) op(B), fp32: each element one chain of fused multiply-adds over k in order, so its
// bits do not depend on the matrix shape, blocking or threads (gemm.cpp).
void gemm(const GemmInfo& g, const Mat& a, const Mat& b, Mat& out);

// The GEMM's code path, "avx512", "avx2" or "scalar": the best this CPU runs, unless the
// environment's TPSIM_GEMM_ISA names another (an unknown name, or one this CPU cannot run, throws).
// Every path gives the same bits; only the speed differs.
std::string gemm_isa();
// The paths this CPU runs, best first; set_gemm_isa switches to one of them (tests, benchmarks).
std::vector<std::string> gemm_isas();
void set_gemm_isa(const std::string& name);

}  // namespace tpsim::numerics
