// Collective algorithms, each written once as a Schedule: rounds of point-to-point chunk transfers,
// each a copy or a reduce. The numerics interpreter executes a Schedule on real buffers; the timing
// engine turns the same Schedule into SimGrid communications (one message per transfer at `step`
// fidelity, one flow per edge at `flow` fidelity).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tpsim {

enum class CollectiveOp { all_reduce, all_gather, reduce_scatter, broadcast, reduce, all_to_all, send_recv };
enum class Algorithm { automatic, ring, tree, halving_doubling, direct, nvls, hierarchical };

const char* to_string(CollectiveOp op);
const char* to_string(Algorithm a);
CollectiveOp parse_collective_op(const std::string& s);   // "all_reduce", "allreduce", ... ; throws
Algorithm parse_algorithm(const std::string& s);          // "ring", "auto", ... ; throws

// Every participant owns one buffer of `chunks` equal chunks. A transfer reads chunk `src_chunk`
// of `src` as it was at the start of the round and copies it into, or adds it to, chunk
// `dst_chunk` of `dst`. Participants 0..ranks-1 are the group's ranks in order; an algorithm may
// add helpers (an NVSwitch doing in-switch reduction is participant `ranks`).
struct Transfer {
  int src = 0, dst = 0;
  int src_chunk = 0, dst_chunk = 0;
  bool reduce = false;
  int channel = 0;   // NCCL-style channel (parallel ring / tree) the transfer belongs to
};

// Transfers in one round may run concurrently. A participant starts round r+1 once all of its own
// round-r sends and receives are done (no global barrier), as NCCL's pipelined steps do.
struct Round {
  std::vector<Transfer> transfers;
};

struct Schedule {
  CollectiveOp op = CollectiveOp::all_reduce;
  Algorithm algorithm = Algorithm::ring;
  int ranks = 0;           // group size
  int participants = 0;    // ranks + helper participants (switches)
  int chunks = 0;          // chunks per participant buffer
  std::vector<Round> rounds;
  // Where each rank's input lives before round 0 and its output after the last round, as chunk
  // index lists (all-reduce: all chunks in, all out; all-gather: chunk r in, all out; ...).
  std::vector<std::vector<int>> input_chunks, output_chunks;
};

struct ScheduleRequest {
  CollectiveOp op = CollectiveOp::all_reduce;
  Algorithm algorithm = Algorithm::ring;
  int ranks = 2;
  int channels = 1;        // parallel rings / trees; chunks multiply by this
  int root = 0;            // broadcast / reduce
  int ranks_per_node = 0;  // hierarchical: group is nodes x ranks_per_node, node-major
};

// Builds the schedule or throws std::invalid_argument naming what does not fit (e.g. halving-
// doubling on a non-power-of-two group, NVLS for all-gather).
Schedule make_schedule(const ScheduleRequest& request);

// Bytes each participant sends over the whole schedule for a collective of `bytes` (nccl-tests size).
double chunk_bytes(const Schedule& s, double bytes);

// nccl-tests' bus-bandwidth factor: busbw = algbw * factor (2(p-1)/p all-reduce, (p-1)/p AG/RS, 1 else).
double busbw_factor(CollectiveOp op, int ranks);

}  // namespace tpsim
