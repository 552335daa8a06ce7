// Engine-side reuse of identical pieces. A fused op (Op::parts) is lowered once and stamped many
// times; a symmetric DP collective (ProgramSet::dp_symmetry) is the same on every replica. Both are
// timed once, before the simulation starts, by running them alone: the parts of a fused op on their
// streams in order, compute by the cost model, collectives alone on the idle topology with the
// selector's instance (time_collective). The simulation then reuses the durations.
#pragma once

#include <map>
#include <tuple>
#include <vector>

#include "tpsim/engine.hpp"
#include "tpsim/program.hpp"

namespace tpsim::engine {

struct UnitTime {
  double seconds = 0;       // makespan of the unit run alone
  double collectives = 0;   // of which collective time (folded TP collectives), summed
};

class UnitTimes {
 public:
  UnitTimes(const Topology& topology, const EngineOptions& options) : topology_(topology), options_(options) {}
  // Memoised by the parts list: identical pieces are timed once.
  const UnitTime& fused(const Op& op);
  // One collective alone on the idle topology, memoised by what it asks for.
  double alone(const CollectiveInfo& c);

 private:
  const Topology& topology_;
  EngineOptions options_;
  std::map<const void*, UnitTime> fused_;
  std::map<std::tuple<int, int, std::vector<int>, int64_t, int>, double> alone_;
};

}  // namespace tpsim::engine
