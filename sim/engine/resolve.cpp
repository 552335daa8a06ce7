// The public face of the selector: one collective, or every collective op of a program set
// (memoised, one Fabric for all), resolved before either interpreter runs.
#include <map>
#include <memory>
#include <tuple>

#include "engine/select.hpp"
#include "tpsim/engine.hpp"

namespace tpsim {

CollectiveInstance resolve_collective(const Topology& topology, CollectiveOp op, Algorithm requested,
                                      const std::vector<int>& group, double bytes, int root) {
  const engine::Fabric fabric(topology);
  return engine::resolve(fabric, op, requested, group, bytes, root);
}

NcclSelection nccl_selection(const Topology& topology, CollectiveOp op, const std::vector<int>& group, double bytes) {
  const engine::Fabric fabric(topology);
  return engine::nccl_select(fabric, op, group, bytes, 0);
}

void resolve_collectives(const Topology& topology, ProgramSet& programs) {
  std::unique_ptr<engine::Fabric> fabric;   // built on the first unresolved collective
  using Key = std::tuple<int, int, std::vector<int>, int64_t, int>;
  std::map<Key, CollectiveInstance> memo;
  for (Program& prog : programs.ranks)
    for (Op& op : prog.ops) {
      if (op.kind != OpKind::collective || op.collective.instance.resolved()) continue;
      CollectiveInfo& c = op.collective;
      auto [it, fresh] = memo.try_emplace(Key{int(c.op), int(c.algorithm), c.group, c.bytes, c.root});
      if (fresh) {
        if (!fabric) fabric = std::make_unique<engine::Fabric>(topology);
        it->second = engine::resolve(*fabric, c.op, c.algorithm, c.group, double(c.bytes), c.root);
      }
      c.instance = it->second;
    }
}

}  // namespace tpsim
