// Context-parallel attention kernels (kernels_cp.cpp): ring attention over causally load-balanced
// sequence chunks, listed in the registry of kernels.cpp under the same names. Each has the
// KernelFn signature; shapes and maths are on the definitions.
#pragma once

#include <vector>

#include "numerics/dense.hpp"
#include "tpsim/program.hpp"

namespace tpsim::numerics {

void attention_kv(const Op& op, const std::vector<const Mat*>& in, const std::vector<Mat*>& out);
void attention_kv_backward(const Op& op, const std::vector<const Mat*>& in, const std::vector<Mat*>& out);
void attention_block(const Op& op, const std::vector<const Mat*>& in, const std::vector<Mat*>& out);
void attention_block_backward(const Op& op, const std::vector<const Mat*>& in, const std::vector<Mat*>& out);
void attention_merge(const Op& op, const std::vector<const Mat*>& in, const std::vector<Mat*>& out);

}  // namespace tpsim::numerics
