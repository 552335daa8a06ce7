// GPU kernel cost model: how long one op of a Program runs on the topology's GPU when nothing else
// interferes. Communication time is not here: the timing engine gets it from the network.
#pragma once

#include <string>

#include "tpsim/program.hpp"
#include "tpsim/spec.hpp"

namespace tpsim {

struct KernelCost {
  double seconds = 0;          // predicted duration including launch overhead
  double compute_bound = 0;    // flops / (peak * efficiency)
  double memory_bound = 0;     // hbm bytes / (bandwidth * the kernel's HBM efficiency)
  double efficiency = 0;       // GEMMs: achieved fraction of peak after tile and wave quantisation
};

// The GEMM model's shape constants: how a cuBLAS-class library tiles a GEMM, the same on every GPU
// (the GPU brings its peak, SM count, ceiling and HBM). Fitted on the measured H200 table
// (data/reference/h200_kernels_2026-11-30/gemm_h200.csv); tests/test_cost_gemm_shape.cpp refits
// them on half its shapes and checks the other half.
struct GemmShape {
  double tile = 128;             // output tile edge (128x128: the common Ampere/Hopper choice)
  // Fixed time per output tile (prologue, pipeline fill, epilogue) on top of its k loop: a tile
  // k deep runs at k / (k + half_k) of the steady rate, half_k = tile_overhead x the SM's steady
  // FLOP rate / (2 tile^2), so a slower SM (A100) pays it in fewer k steps than a faster one.
  double tile_overhead = 0.80e-6;
  double min_split_k = 256;      // shallowest k slice split-K gives one SM
  // Fraction of the bandwidth the GPU realises (hbm_bandwidth x gpu.hbm_efficiency) the operands
  // stream at. Refitted (0.85 -> 0.84, tile_overhead 0.82 -> 0.80 us) when split-K's fp32
  // partials stopped counting as HBM traffic.
  double hbm_efficiency = 0.84;
};

// The k at which a tile of `shape` reaches half its steady rate on `gpu` in `dtype`.
double gemm_half_k(const GpuSpec& gpu, DType dtype, const GemmShape& shape = GemmShape{});

// Roofline max(flops / (peak_dtype * ceiling * tile * wave * k),
//               bytes / (hbm_bw * gpu.hbm_efficiency * shape.hbm_efficiency)) + launch,
// plus the fp32 main-gradient accumulation of a weight gradient (GemmInfo::main_grad).
KernelCost gemm_cost(const GpuSpec& gpu, const GemmInfo& g, DType dtype, const GemmShape& shape = GemmShape{});
// `batch` independent [m, k] x [k, n] products in one launch (batched GEMM: unfused attention).
KernelCost batched_gemm_cost(const GpuSpec& gpu, const GemmInfo& g, double batch, DType dtype,
                             const GemmShape& shape = GemmShape{});
KernelCost op_cost(const GpuSpec& gpu, const Op& op);   // gemm or kernel ops; 0 for communication
// Fused attention ("attention" / "attention_backward" kernels with attrs batch, heads, seq, head_dim).
KernelCost attention_cost(const GpuSpec& gpu, const Op& op);
// Fraction of HBM bandwidth a memory-bound kernel reaches on the bytes the lowering counts for it
// (its inputs and outputs, once), measured per kernel on H200 (kernel_efficiency.cpp).
double kernel_hbm_efficiency(const std::string& fn);
// A decode step's attention ("decode_attention": one query per sequence against the KV cache it
// reads, op.hbm_bytes) at the realised HBM fraction gpu.hbm_efficiency.
KernelCost decode_attention_cost(const GpuSpec& gpu, const Op& op);

}  // namespace tpsim
