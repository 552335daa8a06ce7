// The toy GPU the engine tests time kernels on: round numbers, so closed forms stay readable; and
// the four-GPU programs they run on it.
#pragma once

#include <vector>

#include "tpsim/program.hpp"
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

// A ring all-reduce of `bytes` over GPUs 0-3 on the TP stream.
inline tpsim::Op toy_all_reduce(int id, int64_t bytes) {
  tpsim::Op op;
  op.id = id;
  op.kind = tpsim::OpKind::collective;
  op.name = "all_reduce";
  op.stream = tpsim::Stream::tp_comm;
  op.collective.op = tpsim::CollectiveOp::all_reduce;
  op.collective.algorithm = tpsim::Algorithm::ring;
  op.collective.group = {0, 1, 2, 3};
  op.collective.bytes = bytes;
  return op;
}

// Four GPUs each running `ops`.
inline tpsim::ProgramSet same_program_on_four(const std::vector<tpsim::Op>& ops) {
  tpsim::ProgramSet set;
  for (int r = 0; r < 4; ++r) {
    tpsim::Program p;
    p.rank = r;
    p.ops = ops;
    set.ranks.push_back(p);
  }
  return set;
}
