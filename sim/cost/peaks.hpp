// The GPU's dense peak for a dtype, as the cost model reads it (cost stage internal).
#pragma once

#include "tpsim/spec.hpp"

namespace tpsim::cost_detail {

inline double peak_for(const GpuSpec& gpu, DType dtype) {
  auto it = gpu.peak_flops.find(dtype);
  if (it != gpu.peak_flops.end() && it->second > 0) return it->second;
  // fp16 runs on the bf16 tensor-core path; anything else missing falls back to fp32.
  if (dtype == DType::fp16) return peak_for(gpu, DType::bf16);
  auto fp32 = gpu.peak_flops.find(DType::fp32);
  return fp32 != gpu.peak_flops.end() ? fp32->second : 0;
}

}  // namespace tpsim::cost_detail
