// The numerics GEMM on plain row-major fp32 arrays, and the choice of its code path. No Eigen here:
// gemm.cpp is compiled for baseline x86-64 whatever TPSIM_NATIVE says (its micro-kernels name their
// own targets), and Eigen compiled with two different -march in one program could merge mismatched
// copies of its inline code. kernels.hpp has the Mat version the interpreter calls.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tpsim/program.hpp"

namespace tpsim::numerics {

// C (+)= op(A) op(B): op(A) [g.m, g.k], op(B) [g.k, g.n], C [g.m, g.n], each stored row-major with
// the given row stride (A and B as stored, before op); C = 0 first unless g.accumulate. Each
// element is one chain of fused multiply-adds over k in order (gemm.cpp).
void gemm(const GemmInfo& g, const float* a, int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc);

// The GEMM's code path, "avx512", "avx2" or "scalar": the best this CPU runs, unless the
// environment's TPSIM_GEMM_ISA names another (an unknown name, or one this CPU cannot run, throws).
// Every path gives the same bits; only the speed differs.
std::string gemm_isa();
// The paths this CPU runs, best first; set_gemm_isa switches to one of them (tests, benchmarks).
std::vector<std::string> gemm_isas();
void set_gemm_isa(const std::string& name);

}  // namespace tpsim::numerics
