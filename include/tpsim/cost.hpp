// GPU kernel cost model: how long one op of a Program runs on the topology's GPU when nothing else
// interferes. Communication time is not here: the timing engine gets it from the network.
#pragma once

#include "tpsim/program.hpp"
#include "tpsim/spec.hpp"

namespace tpsim {

struct KernelCost {
  double seconds = 0;          // predicted duration including launch overhead
  double compute_bound = 0;    // flops / (peak * efficiency)
  double memory_bound = 0;     // hbm bytes / bandwidth
  double efficiency = 0;       // GEMMs: achieved fraction of peak after tile and wave quantisation
};

// Roofline max(flops / (peak_dtype * eff), bytes / (hbm_bw * hbm_efficiency)) + launch overhead.
KernelCost gemm_cost(const GpuSpec& gpu, const GemmInfo& g, DType dtype);
KernelCost op_cost(const GpuSpec& gpu, const Op& op);   // gemm or kernel ops; 0 for communication
// Fused attention ("attention" / "attention_backward" kernels with attrs batch, heads, seq, head_dim).
KernelCost attention_cost(const GpuSpec& gpu, const Op& op);
// A decode step's attention ("decode_attention": one query per sequence against the KV cache it
// reads, op.hbm_bytes) at the realised HBM fraction gpu.hbm_efficiency.
KernelCost decode_attention_cost(const GpuSpec& gpu, const Op& op);

}  // namespace tpsim
