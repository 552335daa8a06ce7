// Mixture-of-experts kernels (kernels_moe.cpp), listed in the registry of kernels.cpp under the same
// names. Each has the KernelFn signature; shapes and maths are on the definitions.
#pragma once

#include <vector>

#include "numerics/dense.hpp"
#include "tpsim/program.hpp"

namespace tpsim::numerics {

void moe_route(const Op& op, const std::vector<const Mat*>& in, const std::vector<Mat*>& out);
void moe_dispatch(const Op& op, const std::vector<const Mat*>& in, const std::vector<Mat*>& out);
void moe_dispatch_backward(const Op& op, const std::vector<const Mat*>& in, const std::vector<Mat*>& out);
void moe_combine(const Op& op, const std::vector<const Mat*>& in, const std::vector<Mat*>& out);
void moe_combine_backward(const Op& op, const std::vector<const Mat*>& in, const std::vector<Mat*>& out);
void moe_split_experts(const Op& op, const std::vector<const Mat*>& in, const std::vector<Mat*>& out);
void moe_join_experts(const Op& op, const std::vector<const Mat*>& in, const std::vector<Mat*>& out);
void sigmoid_scale(const Op& op, const std::vector<const Mat*>& in, const std::vector<Mat*>& out);
void sigmoid_scale_backward(const Op& op, const std::vector<const Mat*>& in, const std::vector<Mat*>& out);

}  // namespace tpsim::numerics
