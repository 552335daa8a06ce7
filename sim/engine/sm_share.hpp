// A collective's share of its GPUs' SMs, and what that share does to compute beside it.
//
// NCCL runs a collective as one kernel of one thread block (CTA) per channel (enqueue.cc,
// ncclLaunchKernel: grid = {plan->channelCount}), each block large enough (512-640 threads, most
// of the shared memory) that it holds a whole SM from launch until the kernel ends, spinning while
// peers arrive. A compute kernel on another stream of the same GPU meanwhile gets the SMs left:
// a GEMM of duration T overlapped for its whole length by a collective of c CTAs on a GPU of S SMs
// takes T S / (S - c). Nothing is fitted: c follows NCCL's rules (collective_ctas), S is gpu.sms.
//
// HBM contention is left out. The compute overlapped in practice (Megatron's weight-gradient GEMM
// beside the input gradient's TP all-reduce) is a large tensor-core GEMM, compute bound (about
// 2000 FLOP per HBM byte at Korthikanti's shapes against A100's ridge of 153): the HBM traffic the
// collective adds (its reads, writes and reductions, about 3x its 150-200 GB/s of NVLink traffic)
// leaves such a GEMM's few hundred GB/s unthrottled on 2 TB/s. Memory-bound kernels beside a
// collective would feel it; they are short next to the GEMMs in the calibration sets.
#pragma once

#include <vector>

#include "tpsim/collective.hpp"
#include "tpsim/spec.hpp"

namespace tpsim::engine {

// CTAs (= SMs) NCCL's kernel for this collective runs with on each GPU of `group` (global GPU
// indices); 0 for one rank, and for all-to-all (grouped send/recv on NCCL's p2p channels, whose
// per-peer count tpsim does not model).
int collective_ctas(const Topology& topology, CollectiveOp op, const CollectiveInstance& instance,
                    const std::vector<int>& group, double bytes);

// The fraction of a GPU's compute those CTAs hold: min(1, ctas / gpu.sms); 0 when sms is unknown.
double collective_sm_share(const Topology& topology, CollectiveOp op, const CollectiveInstance& instance,
                           const std::vector<int>& group, double bytes);

// A collective holding `share` of the GPU's SMs over [start, end).
struct SmHold {
  double start = 0, end = 0, share = 0;
};

// When compute needing `seconds` of the whole GPU, started at `start`, ends while `holds` take
// their shares: it runs at rate max(0, 1 - sum of active shares) (no hold: start + seconds exactly;
// infinity when the holds leave no SM and none of them ends).
double stretched_end(double start, double seconds, const std::vector<SmHold>& holds);

}  // namespace tpsim::engine
