// `flow` backend: the plan's phases one after another, each as one comm per (src, dst) edge with
// the edge's bytes of the phase, then the latency term (collective_run.hpp). One driver actor runs
// the phases with host-to-host comms (no actor or mailbox per endpoint, so a 4096-GPU ring is a
// few thousand comms); an edge with a binding rate cap goes through a mailbox between two short
// actors on its ends instead, because SimGrid caps only mailbox comms.
#include <vector>

#include "engine/backends.hpp"

namespace tpsim::engine::backend {

namespace sg = simgrid::s4u;

namespace {

// Capped edges of one phase still in flight; the driver waits until none is.
struct CappedFlows {
  int left = 0;
  sg::MutexPtr mutex = sg::Mutex::create();
  sg::ConditionVariablePtr drained = sg::ConditionVariable::create();
};

// Starts edge `e` of phase `k` as a rate-capped mailbox message between its two ends.
void start_capped(RunContext& ctx, const FlowEdge& e, uint64_t bytes, const std::string& name,
                  const std::shared_ptr<CappedFlows>& capped) {
  SimPlatform& platform = *ctx.platform;
  sg::Actor::create(name + "<", platform.host(e.dst), [&ctx, e, bytes, name, capped] {
    guarded(ctx, [&] {
      sg::CommPtr c = sg::Mailbox::by_name(name)->get_async<int>(&sink);
      c->wait();
      if (ctx.on_comm) ctx.on_comm({e.src, e.dst, double(bytes), c->get_start_time(), c->get_finish_time()});
    });
    sg::MutexPtr m = capped->mutex;
    std::unique_lock lock(*m);
    if (--capped->left == 0) capped->drained->notify_all();
  });
  sg::Actor::create(name + ">", platform.host(e.src), [&ctx, e, bytes, name] {
    guarded(ctx, [&] { start_put(sg::Mailbox::by_name(name), bytes, e.rate_cap)->wait(); });
  });
}

void drive(RunContext& ctx, const CollectivePlan& plan, const std::string& prefix) {
  SimPlatform& platform = *ctx.platform;
  sg::this_actor::sleep_for(plan.protocol.fixed_latency);
  std::vector<sg::CommPtr> comms;
  std::vector<const FlowEdge*> sent;
  for (size_t k = 0; k < plan.phases.size(); ++k) {
    const Phase& ph = plan.phases[k];
    comms.clear();
    sent.clear();
    auto capped = std::make_shared<CappedFlows>();
    for (size_t i = 0; i < ph.flows.size(); ++i) {
      const FlowEdge& e = ph.flows[i];
      const uint64_t bytes = wire_size(e.payload, plan.wire_scale);
      if (e.rate_cap > 0) {
        ++capped->left;
        start_capped(ctx, e, bytes, prefix + std::to_string(k) + ":" + std::to_string(i), capped);
      } else {
        comms.push_back(sg::Comm::sendto_async(platform.host(e.src), platform.host(e.dst), bytes));
        sent.push_back(&e);
      }
    }
    for (size_t j = 0; j < comms.size(); ++j) {
      comms[j]->wait();
      if (ctx.on_comm)
        ctx.on_comm({sent[j]->src, sent[j]->dst, double(wire_size(sent[j]->payload, plan.wire_scale)),
                     comms[j]->get_start_time(), comms[j]->get_finish_time()});
    }
    sg::MutexPtr m = capped->mutex;
    std::unique_lock lock(*m);
    while (capped->left > 0) capped->drained->wait(lock);
  }
  sg::this_actor::sleep_for(plan.path_latency);
}

}  // namespace

void start_flow(RunContext& ctx, std::shared_ptr<const CollectivePlan> plan, const std::string& prefix,
                std::shared_ptr<Completion> completion) {
  completion->remaining = 1;
  sg::Actor::create(prefix + "flow", ctx.platform->host(plan->channels[0].endpoint[0]),
                    [&ctx, plan, completion, prefix] {
                      guarded(ctx, [&] { drive(ctx, *plan, prefix); });
                      completion->leave();
                    });
}

}  // namespace tpsim::engine::backend
