// Timeline: what the timing engine produces and the reports read. Times in seconds from step start.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tpsim/program.hpp"

namespace tpsim {

// One op's execution on one rank. A compute-stream op that waited for a collective or a peer has
// its wait recorded as a separate span with kind "stall" naming what it waited for.
struct Span {
  int rank = 0;
  Stream stream = Stream::compute;
  int op = -1;                 // op id in the rank's Program, -1 for stalls
  std::string name;
  std::string kind;            // "gemm" | "kernel" | "collective" | "send" | "recv" | "stall" | "bubble"
  double start = 0, end = 0;
  std::string waited_for;      // stalls, bubbles: the op name the compute stream was waiting on
  // Stalls, bubbles: what that op was, so reports say "tp all-gather" or "pipeline receive"
  // without parsing its name.
  OpKind waited_kind = OpKind::kernel;
  Stream waited_stream = Stream::compute;
  CollectiveOp waited_collective = CollectiveOp::all_reduce;
  std::string algorithm;       // collectives: the algorithm the engine ran ("ring", "nvls"), "" unknown
  std::string instance;        // collectives: describe() of the resolved instance the engine timed
  // Copied from the op (stalls: from the op held up), so reports never parse a name.
  OpKind op_kind = OpKind::kernel;
  Pass pass = Pass::forward;
  int layer = -1;
  int micro_batch = 0;
  int stage = 0;
  bool recompute = false;      // a forward op recomputed in the backward pass
  TpMappingId mapping = TpMappingId::none;
  CollectiveOp collective = CollectiveOp::all_reduce;   // collectives only
  int64_t bytes = 0;           // collectives, send, recv: bytes moved (nccl-tests "size"); 0 = unknown
  int peer = -1;               // send / recv: the other GPU; -1 = unknown (traces draw flow arrows from it)
};

// A stretch of time during which a link carried `utilisation` (0..1) of its capacity: the bytes
// in the stretch over (bandwidth x its length).
struct LinkInterval {
  double start = 0, end = 0;
  double utilisation = 0;
};

struct LinkUse {
  std::string link;            // "node0.gpu3.nvlink.up", "node1.nic2.up", "leaf0.spine.up"
  double bytes = 0;
  double busy = 0;             // s the link carried traffic
  double bandwidth = 0;        // B/s capacity
  // Optional utilisation over time (non-overlapping, sorted by start); empty when the engine did
  // not record it. Reports then fall back to bytes / busy (the mean rate while busy). The engine
  // fills it in bins of Timeline::link_bin (see there); gaps are bins with no traffic.
  std::vector<LinkInterval> intervals;
};

struct RankTotals {
  double compute = 0, communication = 0, exposed_communication = 0, bubble = 0, idle = 0;
  double folded_communication = 0;   // collective time inside fused ops (counted in compute above)
};

struct Timeline {
  double makespan = 0;                   // s, the step (or simulated part of it)
  std::vector<Span> spans;
  std::vector<RankTotals> ranks;         // per rank
  std::vector<LinkUse> links;
  // s: when > 0, LinkUse::intervals are equal time bins of this width from t = 0 (the last one cut
  // at the end of the traffic), adjacent bins of equal utilisation merged. A transfer's bytes are
  // spread evenly over its [start, finish], i.e. at its mean rate. 0: the intervals (if any) are
  // exact stretches, not bins.
  double link_bin = 0;
};

}  // namespace tpsim
