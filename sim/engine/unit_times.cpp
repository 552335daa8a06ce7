// Durations of fused ops and of collectives run alone (unit_times.hpp).
#include "engine/unit_times.hpp"

#include <algorithm>

#include "tpsim/cost.hpp"

namespace tpsim::engine {

const UnitTime& UnitTimes::fused(const Op& op) {
  auto it = fused_.find(op.parts.get());
  if (it != fused_.end()) return it->second;
  UnitTime t;
  if (op.parts) {
    // Each part on its stream, in list order, after its deps (indices into the list).
    const std::vector<Op>& parts = *op.parts;
    std::vector<double> end(parts.size(), 0.0);
    std::map<Stream, double> free_at;
    for (size_t i = 0; i < parts.size(); ++i) {
      const Op& part = parts[i];
      double start = free_at[part.stream];
      for (int d : part.deps) start = std::max(start, end.at(size_t(d)));
      double seconds = 0;
      if (part.kind == OpKind::collective) {
        seconds = alone(part.collective);
        t.collectives += seconds;
      } else if (part.parts) {
        const UnitTime& inner = fused(part);
        seconds = inner.seconds;
        t.collectives += inner.collectives;
      } else {
        seconds = op_cost(topology_.gpu, part).seconds;
      }
      end[i] = start + seconds;
      free_at[part.stream] = end[i];
      t.seconds = std::max(t.seconds, end[i]);
    }
  }
  return fused_.emplace(op.parts.get(), t).first->second;
}

double UnitTimes::alone(const CollectiveInfo& c) {
  const auto key = std::make_tuple(int(c.op), int(c.algorithm), c.group, c.bytes, c.root);
  auto it = alone_.find(key);
  if (it != alone_.end()) return it->second;
  const double t = c.group.size() <= 1 ? 0.0
                                       : time_collective(topology_, c.op, c.algorithm, c.group, double(c.bytes), options_).seconds;
  return alone_.emplace(key, t).first->second;
}

}  // namespace tpsim::engine
