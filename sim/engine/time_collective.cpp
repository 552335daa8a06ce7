// time_collective: one collective alone on the topology, as nccl-tests measures it: resolved by the
// selector, then that instance timed.
#include <stdexcept>

#include "engine/collective_run.hpp"
#include "engine/select.hpp"
#include "tpsim/engine.hpp"

namespace tpsim {

CollectiveTiming time_collective(const Topology& topology, CollectiveOp op, Algorithm algorithm,
                                 const std::vector<int>& group, double bytes, const EngineOptions& options) {
  const engine::Fabric fabric(topology);
  engine::CollectiveSpec spec;
  spec.op = op;
  spec.group = group;
  spec.bytes = bytes;
  spec.instance = engine::resolve(fabric, op, algorithm, group, bytes, spec.root);
  auto plan = std::make_shared<const engine::CollectivePlan>(engine::plan_collective(fabric, spec, options.fidelity));

  engine::SimPlatform platform(fabric);
  engine::RunContext ctx;
  ctx.platform = &platform;
  double finished = -1;
  engine::start_collective(ctx, plan, options.fidelity, [&] { finished = platform.now(); });
  platform.run();
  if (ctx.error) std::rethrow_exception(ctx.error);
  if (finished < 0) throw std::logic_error("time_collective: the collective did not finish (deadlocked schedule)");

  CollectiveTiming timing;
  timing.seconds = finished;
  timing.algorithm = plan->algorithm;
  timing.protocol = plan->protocol.name;
  timing.channels = static_cast<int>(plan->channels.size());
  timing.instance = plan->instance;
  timing.algbw = finished > 0 ? bytes / finished : 0;
  timing.busbw = timing.algbw * busbw_factor(op, static_cast<int>(group.size()));
  return timing;
}

}  // namespace tpsim
