// Engine-side reuse of identical pieces. A fused op (Op::parts) is lowered once and stamped many
// times; a symmetric DP collective (ProgramSet::dp_symmetry) is the same on every replica. Both are
// timed before the simulation starts by running them alone: the parts of a fused op on their
// streams in order, compute by the cost model, collectives alone on the idle topology with the
// selector's instance (time_collective). The simulation then reuses the durations.
//
// A fused op's collectives that no later part waits for (a norm weight's gradient all-reduce at
// the end of a backward layer) keep the TP stream busy after the op ends, as they would if the
// collectives were ops of their own: the op's duration is its critical part, and the rest carries
// over as a TP-stream tail into the next fused op of the rank.
//
// A compute part that runs while a collective part of the same op is in flight gets the SMs the
// collective's NCCL kernel leaves it (sm_share.hpp), as the simulation gives compute beside a
// collective. Collectives of an earlier op carried over as the tail are not: which collectives the
// tail holds is not kept (a norm weight's gradient all-reduce: small, its few channels short).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "engine/sm_share.hpp"
#include "tpsim/engine.hpp"
#include "tpsim/program.hpp"

namespace tpsim::engine {

// A run of a fused op's consecutive parts whose time counts to one pass (a recomputed forward to the
// backward): the lowering merges a 1F1B backward and the next micro-batch's forward into one op,
// and the timeline shows them apart.
struct PassRun {
  size_t first = 0, count = 0;   // parts [first, first + count)
  double end = 0;                // s after the op's start when the compute stream is through them
  std::string name;              // "layer39.bwd .. embedding.bwd (41 pieces)", or the one part's name
  Pass pass = Pass::forward;     // the parts' pass and recompute flag; backward, not recomputed, where
  bool recompute = false;        // recomputed forwards and backwards mix (they count as backward)
  int layer = -1;                // the parts' layer if they all share one, else -1
};

struct UnitTime {
  double seconds = 0;       // until the compute stream may go on (the critical part)
  double tp_free = 0;       // until the op's collectives are all done (0: none ran, no tail)
  double collectives = 0;   // collective time inside the op (folded TP collectives), summed
  // Where the parts change pass, each run and its end (the last ends at `seconds`); null where
  // they keep one pass, as every folded piece's do: one run needs no split. Shared: the simulation
  // copies a UnitTime for every fused op it runs.
  std::shared_ptr<const std::vector<PassRun>> runs;
};

// The group moved as far toward GPU 0 as the topology's symmetry allows, member order kept: whole
// fat-tree leaves, nodes within their leaves by a common offset, and local GPU indices by a common
// offset where all local GPUs are alike (NVSwitch, a NIC each, no sockets). Members share a node, a
// leaf or a NIC rail after exactly as before, so the collective takes the same time.
std::vector<int> canonical_group(const Topology& t, const std::vector<int>& group);

class UnitTimes {
 public:
  UnitTimes(const Topology& topology, const EngineOptions& options) : topology_(topology), options_(options) {}
  // The fused op started with its TP stream busy for `tail` more seconds. Memoised by (parts list,
  // tail): a step repeats a few tails exactly (GPT-3 on 1024 GPUs: 89 distinct in 3.4 million
  // calls), and the memo stops growing at kMemoLimit entries should a run meet many more.
  UnitTime fused(const Op& op, double tail = 0);
  // One collective alone on the idle topology, memoised by what it asks for.
  double alone(const CollectiveInfo& c) { return alone_with_share(c).first; }
  // And the share of each of its GPUs' SMs it holds meanwhile (collective_sm_share).
  std::pair<double, double> alone_with_share(const CollectiveInfo& c);

 private:
  // Runs `parts` from compute-free 0 and TP-free `tail`; adds to `t`.
  void run(const std::vector<Op>& parts, double tail, UnitTime& t);

  const Topology& topology_;
  EngineOptions options_;
  struct Key {
    const void* parts;
    double tail;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    size_t operator()(const Key& k) const {
      return std::hash<const void*>{}(k.parts) ^ (std::hash<double>{}(k.tail) * 0x9E3779B97F4A7C15ull);
    }
  };
  static constexpr size_t kMemoLimit = 1 << 16;
  std::unordered_map<Key, UnitTime, KeyHash> fused_;
  std::map<std::tuple<int, int, std::vector<int>, int64_t, int>, std::pair<double, double>> alone_;
};

}  // namespace tpsim::engine
