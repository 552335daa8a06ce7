// The toy GPU the engine tests time kernels on: round numbers, so closed forms stay readable.
#pragma once

#include "tpsim/spec.hpp"

inline tpsim::GpuSpec toy_gpu() {
  tpsim::GpuSpec g;
  g.name = "toy";
  g.peak_flops[tpsim::DType::bf16] = 100e12;
  g.hbm_bandwidth = 2e12;
  g.sms = 100;
  g.launch_overhead = 5e-6;
  g.gemm_efficiency = 0.8;
  return g;
}
