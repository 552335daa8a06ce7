// start_collective: the latency-only case, else the step or flow backend (collective_run.hpp).
#include "engine/collective_run.hpp"

#include "engine/backends.hpp"

namespace tpsim::engine {

namespace sg = simgrid::s4u;

void guarded(RunContext& ctx, const std::function<void()>& body) {
  try {
    body();
  } catch (const std::exception&) {
    if (!ctx.error) ctx.error = std::current_exception();
  }
}

void start_collective(RunContext& ctx, std::shared_ptr<const CollectivePlan> plan, Fidelity fidelity,
                      std::function<void()> done) {
  const std::string prefix = "c" + std::to_string(ctx.next_id++) + ":";
  auto completion = std::make_shared<backend::Completion>();
  completion->done = std::move(done);
  if (!(plan->bytes > 0) || plan->edges.empty()) {   // nothing to move: only the fixed and step latencies
    completion->remaining = 1;
    sg::Actor::create(prefix + "latency", ctx.platform->host(plan->channels[0].endpoint[0]), [&ctx, plan, completion] {
      guarded(ctx, [&] { sg::this_actor::sleep_for(plan->protocol.fixed_latency + plan->path_latency); });
      completion->leave();
    });
    return;
  }
  // A closed-form plan has no per-round schedule to step through.
  if (fidelity == Fidelity::flow || !plan->channels[0].schedule)
    backend::start_flow(ctx, std::move(plan), prefix, std::move(completion));
  else
    backend::start_step(ctx, std::move(plan), prefix, std::move(completion));
}

}  // namespace tpsim::engine
