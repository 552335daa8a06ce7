// `flow` backend: the plan's phases, each as one comm per (src, dst) edge with the edge's bytes of
// the phase (collective_run.hpp, rule in collective_plan.hpp). The data a comm delivers is ready
// `path_latency` after it finished (the hop latencies not hidden behind transfers); an endpoint
// posts its receives of the next phase once done with its comms of this one, and starts its sends
// once, too, the data it received is ready.
//   one phase (rings): one driver actor starts every comm host to host (no actor or mailbox per
//     endpoint, so a 4096-GPU ring is a few thousand comms) and ends at the latest ready data.
//   several phases: one actor per (channel, endpoint), a mailbox per channel edge (FIFO across
//     phases), so an edge's comm starts when both of its ends are ready, as a step message does,
//     and channels progress independently, as step's per-channel actors do.
// SimGrid caps only mailbox comms, so the driver sends an edge with a binding rate cap through a
// mailbox between two short actors on its ends.
#include <deque>
#include <map>
#include <utility>
#include <vector>

#include "engine/backends.hpp"

namespace tpsim::engine::backend {

namespace sg = simgrid::s4u;

namespace {

// Phases ahead an endpoint posts its receives (step_backend.cpp: rounds, NCCL_STEPS).
constexpr int kRecvWindow = 8;

// Rate-capped edges of the driver still in flight, and when their receivers are done.
struct CappedFlows {
  int left = 0;
  double done = 0;
  sg::MutexPtr mutex = sg::Mutex::create();
  sg::ConditionVariablePtr drained = sg::ConditionVariable::create();
};

void record(RunContext& ctx, const FlowEdge& e, uint64_t bytes, const sg::CommPtr& c) {
  if (ctx.on_comm) ctx.on_comm({e.src, e.dst, double(bytes), c->get_start_time(), c->get_finish_time()});
}

// The rate-capped comms of one endpoint in a one-phase plan: it puts its capped out-flows and gets
// its capped in-flows (one actor per endpoint, not per flow: actor stacks dominate at 4096 GPUs).
struct CappedEnds {
  std::vector<const FlowEdge*> out, in;
};

void run_capped(RunContext& ctx, const CollectivePlan& plan, const CappedEnds& ends, const std::string& prefix,
                CappedFlows& capped) {
  auto box = [&](const FlowEdge& e) {
    return sg::Mailbox::by_name(prefix + std::to_string(e.src) + ">" + std::to_string(e.dst));
  };
  std::vector<sg::CommPtr> sends, recvs;
  for (const FlowEdge* e : ends.out) sends.push_back(start_put(box(*e), wire_size(e->payload, plan.wire_scale), e->rate_cap));
  for (const FlowEdge* e : ends.in) recvs.push_back(box(*e)->get_async<int>(&sink));
  for (auto& c : sends) c->wait();
  double done = 0;
  for (size_t j = 0; j < recvs.size(); ++j) {
    recvs[j]->wait();
    record(ctx, *ends.in[j], wire_size(ends.in[j]->payload, plan.wire_scale), recvs[j]);
    done = std::max(done, recvs[j]->get_finish_time() + ends.in[j]->path_latency);
  }
  sg::MutexPtr m = capped.mutex;
  std::unique_lock lock(*m);
  capped.done = std::max(capped.done, done);
  if (--capped.left == 0) capped.drained->notify_all();
}

// One phase, all endpoints ready at once.
void drive_one_phase(RunContext& ctx, const CollectivePlan& plan, const std::string& prefix) {
  SimPlatform& platform = *ctx.platform;
  sg::this_actor::sleep_for(plan.protocol.fixed_latency);
  const Phase& ph = plan.phases[0];
  std::vector<FlowEdge> pieces;   // a flow of width w runs as w equal comms
  for (const FlowEdge& e : ph.flows) {
    FlowEdge piece = e;
    piece.payload = e.payload / e.width;
    piece.rate_cap = e.rate_cap / e.width;
    piece.width = 1;
    pieces.insert(pieces.end(), e.width, piece);
  }
  std::vector<sg::CommPtr> comms;
  std::vector<const FlowEdge*> sent;
  std::map<int, CappedEnds> capped_ends;
  for (const FlowEdge& e : pieces) {
    if (e.rate_cap > 0) {
      capped_ends[e.src].out.push_back(&e);
      capped_ends[e.dst].in.push_back(&e);
    } else {
      comms.push_back(sg::Comm::sendto_async(platform.host(e.src), platform.host(e.dst), wire_size(e.payload, plan.wire_scale)));
      sent.push_back(&e);
    }
  }
  // The actors below finish before this one returns, so they may borrow `pieces` and `capped`.
  CappedFlows capped;
  capped.left = static_cast<int>(capped_ends.size());
  for (auto& [endpoint, ends] : capped_ends)
    spawn_small(prefix + std::to_string(endpoint), platform.host(endpoint),
                      [&ctx, &plan, &capped, &ends = ends, prefix] {
                        guarded(ctx, [&] { run_capped(ctx, plan, ends, prefix, capped); });
                      });
  double done = sg::Engine::get_clock();
  for (size_t j = 0; j < comms.size(); ++j) {
    comms[j]->wait();
    record(ctx, *sent[j], wire_size(sent[j]->payload, plan.wire_scale), comms[j]);
    done = std::max(done, comms[j]->get_finish_time() + sent[j]->path_latency);
  }
  sg::MutexPtr m = capped.mutex;
  std::unique_lock lock(*m);
  while (capped.left > 0) capped.drained->wait(lock);
  done = std::max(done, capped.done);
  lock.unlock();
  sleep_until_ready(done);
}

// One endpoint's phases: (phase, flow index) pairs it sends and receives, in phase order.
struct EndpointWork {
  std::vector<std::pair<int, int>> out, in;
};

void run_endpoint(RunContext& ctx, const CollectivePlan& plan, const EndpointWork& work, const std::string& prefix) {
  sg::this_actor::sleep_for(plan.protocol.fixed_latency);
  auto box = [&](const FlowEdge& e) {
    return sg::Mailbox::by_name(prefix + std::to_string(e.channel) + ":" + std::to_string(e.src) + ">" +
                                std::to_string(e.dst));
  };
  struct Recv {
    int phase;
    const FlowEdge* edge;
    sg::CommPtr comm;
  };
  std::deque<Recv> recvs;   // posted, in phase order
  double data = sg::Engine::get_clock();   // when the data I hold is ready
  auto receive_before = [&](int phase) {
    while (!recvs.empty() && recvs.front().phase < phase) {
      Recv& r = recvs.front();
      r.comm->wait();
      record(ctx, *r.edge, wire_size(r.edge->payload / r.edge->width, plan.wire_scale), r.comm);
      data = std::max(data, r.comm->get_finish_time() + r.edge->path_latency);
      recvs.pop_front();
    }
  };
  // Receives are posted ahead, up to kRecvWindow of my phases (step: rounds), never waiting for latency.
  size_t i = 0;
  int posted_phases = 0;
  std::deque<int> posted_phase;   // phase index of each posted batch
  auto post_next = [&] {
    const int k = work.in[i].first;
    if (posted_phases >= kRecvWindow) {
      receive_before(posted_phase.front() + 1);
      posted_phase.pop_front();
      --posted_phases;
    }
    for (; i < work.in.size() && work.in[i].first == k; ++i) {
      const FlowEdge& e = plan.phases[k].edges[work.in[i].second];
      for (int w = 0; w < e.width; ++w) recvs.push_back({k, &e, box(e)->get_async<int>(&sink)});
    }
    posted_phase.push_back(k);
    ++posted_phases;
  };
  std::vector<sg::CommPtr> sends;
  for (size_t o = 0; o < work.out.size();) {
    const int k = work.out[o].first;
    while (i < work.in.size() && (work.in[i].first <= k || posted_phases < kRecvWindow)) post_next();
    receive_before(k);
    sleep_until_ready(data);
    sends.clear();
    for (; o < work.out.size() && work.out[o].first == k; ++o) {
      const FlowEdge& e = plan.phases[k].edges[work.out[o].second];
      for (int w = 0; w < e.width; ++w)   // a round's messages on the edge, each 1/width of it
        sends.push_back(start_put(box(e), wire_size(e.payload / e.width, plan.wire_scale), e.rate_cap / e.width));
    }
    for (auto& c : sends) c->wait();   // the next phase's sends start after these finished
  }
  while (i < work.in.size()) post_next();
  receive_before(1 << 30);
  sleep_until_ready(data);
}

}  // namespace

void start_flow(RunContext& ctx, std::shared_ptr<const CollectivePlan> plan, const std::string& prefix,
                std::shared_ptr<Completion> completion) {
  if (plan->phases.size() == 1) {
    completion->remaining = 1;
    sg::Actor::create(prefix + "flow", ctx.platform->host(plan->channels[0].endpoint[0]),
                      [&ctx, plan, completion, prefix] {
                        guarded(ctx, [&] { drive_one_phase(ctx, *plan, prefix); });
                        completion->leave();
                      });
    return;
  }
  std::map<std::pair<int, int>, EndpointWork> work;   // (channel, endpoint)
  for (int k = 0; k < static_cast<int>(plan->phases.size()); ++k)
    for (int j = 0; j < static_cast<int>(plan->phases[k].edges.size()); ++j) {
      const FlowEdge& e = plan->phases[k].edges[j];
      work[{e.channel, e.src}].out.emplace_back(k, j);
      work[{e.channel, e.dst}].in.emplace_back(k, j);
    }
  completion->remaining = static_cast<int>(work.size());
  for (auto& [key, w] : work)
    spawn_small(prefix + std::to_string(key.first) + ":" + std::to_string(key.second), ctx.platform->host(key.second),
                      [&ctx, plan, completion, prefix, w = std::move(w)] {
                        guarded(ctx, [&] { run_endpoint(ctx, *plan, w, prefix); });
                        completion->leave();
                      });
}

}  // namespace tpsim::engine::backend
