// The step and flow interpreters of a CollectivePlan (see collective_run.hpp).
#include "engine/collective_run.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <tuple>
#include <vector>

namespace tpsim::engine {

namespace sg = simgrid::s4u;

namespace {

int token = 0;        // messages carry no data: their size is declared, the pointer is a placeholder
int* sink = nullptr;  // where received placeholders land (must be a real address)

uint64_t wire_size(double payload, double scale) {
  return static_cast<uint64_t>(std::max(1.0, std::llround(payload * scale) * 1.0));
}

// Shared by a collective's actors: when the last one leaves, `done` runs.
struct Completion {
  int remaining = 0;
  std::function<void()> done;
  void leave() {
    if (--remaining == 0 && done) done();
  }
};

sg::CommPtr start_put(sg::Mailbox* box, uint64_t bytes, double rate) {
  sg::CommPtr c = box->put_init(&token, bytes);
  if (rate > 0) c->set_rate(rate);
  c->start();
  return c;
}

// The cap of the edge (channel, src, dst): edges are sorted by channel, then (src, dst).
double edge_cap(const CollectivePlan& plan, int channel, int src, int dst) {
  auto it = std::lower_bound(plan.edges.begin(), plan.edges.end(), std::make_tuple(channel, src, dst),
                             [](const FlowEdge& e, const std::tuple<int, int, int>& key) {
                               return std::make_tuple(e.channel, e.src, e.dst) < key;
                             });
  return it != plan.edges.end() && it->channel == channel && it->src == src && it->dst == dst ? it->rate_cap : 0;
}

// One participant's part of one channel's schedule at `step` fidelity.
void step_participant(RunContext& ctx, const CollectivePlan& plan, int channel, int me, const std::string& prefix) {
  const Fabric& fabric = ctx.platform->fabric();
  const ChannelPlan& ch = plan.channels[channel];
  const Schedule& s = *ch.schedule;
  const int self = ch.endpoint[me];
  const uint64_t bytes = wire_size(plan.chunk_payload, plan.wire_scale);
  std::map<int, sg::Mailbox*> out_box, in_box;   // by peer endpoint
  std::map<int, double> out_cap;
  auto box = [&](std::map<int, sg::Mailbox*>& boxes, int src, int dst, int peer) {
    auto [it, fresh] = boxes.try_emplace(peer, nullptr);
    if (fresh) it->second = sg::Mailbox::by_name(prefix + std::to_string(src) + ">" + std::to_string(dst));
    return it->second;
  };
  sg::this_actor::sleep_for(plan.protocol.fixed_latency);
  std::vector<sg::CommPtr> sends, recvs;
  std::vector<double> recv_latency;
  std::vector<int> recv_src;
  for (const Round& round : s.rounds) {
    sends.clear();
    recvs.clear();
    recv_latency.clear();
    recv_src.clear();
    for (const Transfer& t : round.transfers) {
      if (t.src != me && t.dst != me) continue;
      const int src = ch.endpoint[t.src], dst = ch.endpoint[t.dst];
      if (src == dst) continue;
      if (t.src == me) {
        auto [cap, fresh] = out_cap.try_emplace(dst, 0.0);
        if (fresh) cap->second = edge_cap(plan, channel, src, dst);
        sends.push_back(start_put(box(out_box, src, dst, dst), bytes, cap->second));
      } else {
        recvs.push_back(box(in_box, src, dst, src)->get_async<int>(&sink));
        recv_src.push_back(src);
        recv_latency.push_back(fabric.latency(src, dst) +
                               (fabric.inter_node(src, dst) ? plan.protocol.inter_extra : plan.protocol.intra_extra));
      }
    }
    if (sends.empty() && recvs.empty()) continue;
    double ready = 0;
    for (auto& c : sends) c->wait();
    for (size_t i = 0; i < recvs.size(); ++i) {
      recvs[i]->wait();
      ready = std::max(ready, recvs[i]->get_finish_time() + recv_latency[i]);
    }
    if (ctx.on_comm)
      for (size_t i = 0; i < recvs.size(); ++i)
        ctx.on_comm({recv_src[i], self, double(bytes), recvs[i]->get_start_time(), recvs[i]->get_finish_time()});
    if (ready > sg::Engine::get_clock()) sg::this_actor::sleep_until(ready);
  }
}

// `flow` fidelity: one actor per endpoint puts its outgoing edges and gets its incoming ones, each
// edge one message with the edge's whole payload (a mailbox per edge: SimGrid only caps the rate
// of mailbox comms). The last endpoint to finish applies the pipeline fill and the latency term.
struct FlowState {
  std::vector<double> finish;   // per edge, platform clock
  double start = 0;
  int remaining = 0;
};

void flow_endpoint(RunContext& ctx, const CollectivePlan& plan, const std::vector<int>& out_edges,
                   const std::vector<int>& in_edges, const std::string& prefix, FlowState& state) {
  sg::this_actor::sleep_for(plan.protocol.fixed_latency);
  std::vector<sg::CommPtr> comms;
  for (int i : out_edges)
    comms.push_back(start_put(sg::Mailbox::by_name(prefix + std::to_string(i)),
                              wire_size(plan.edges[i].payload, plan.wire_scale), plan.edges[i].rate_cap));
  const size_t first_in = comms.size();
  for (int i : in_edges) comms.push_back(sg::Mailbox::by_name(prefix + std::to_string(i))->get_async<int>(&sink));
  for (auto& c : comms) c->wait();
  for (size_t k = 0; k < in_edges.size(); ++k) {
    const int i = in_edges[k];
    state.finish[i] = comms[first_in + k]->get_finish_time();
    if (ctx.on_comm)
      ctx.on_comm({plan.edges[i].src, plan.edges[i].dst, double(wire_size(plan.edges[i].payload, plan.wire_scale)),
                   comms[first_in + k]->get_start_time(), state.finish[i]});
  }
  if (--state.remaining > 0) return;
  // Pipeline fill: an edge busy in only some of the critical rounds moves its bytes in fewer rounds
  // than the chain of rounds takes (NVLS: k chunks in k+1 rounds).
  double end = state.start;
  for (size_t i = 0; i < plan.edges.size(); ++i) {
    const FlowEdge& e = plan.edges[i];
    const double stretch = plan.critical_rounds > 0 ? double(plan.critical_rounds) / e.active_rounds : 1.0;
    end = std::max(end, state.start + (state.finish[i] - state.start) * stretch);
  }
  sg::this_actor::sleep_until(end + plan.path_latency);
}

}  // namespace

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
  auto completion = std::make_shared<Completion>();
  completion->done = std::move(done);
  const bool any_bytes = plan->bytes > 0 && !plan->edges.empty();
  if (!any_bytes) {   // nothing to move: only the fixed and step latencies
    completion->remaining = 1;
    sg::Actor::create(prefix + "latency", ctx.platform->host(plan->channels[0].endpoint[0]), [&ctx, plan, completion] {
      guarded(ctx, [&] { sg::this_actor::sleep_for(plan->protocol.fixed_latency + plan->path_latency); });
      completion->leave();
    });
    return;
  }
  // Flow fidelity runs every edge at once and stretches an edge busy in few rounds over the whole
  // chain (pipeline fill). That models pipelined algorithms; a phased one (hierarchical: intra-node
  // reduce-scatter, then inter-node all-reduce, then intra-node all-gather) runs its phases one
  // after the other, and stretching its inter-node edges over every round made it ~3x too slow.
  // It is never chosen automatically, so it always runs message by message.
  if (plan->algorithm == Algorithm::hierarchical) fidelity = Fidelity::step;
  if (fidelity == Fidelity::flow || !plan->channels[0].schedule) {
    std::map<int, std::pair<std::vector<int>, std::vector<int>>> by_endpoint;   // out, in edges
    for (int i = 0; i < static_cast<int>(plan->edges.size()); ++i) {
      by_endpoint[plan->edges[i].src].first.push_back(i);
      by_endpoint[plan->edges[i].dst].second.push_back(i);
    }
    auto state = std::make_shared<FlowState>();
    state->finish.assign(plan->edges.size(), 0.0);
    state->start = sg::Engine::get_clock() + plan->protocol.fixed_latency;
    state->remaining = static_cast<int>(by_endpoint.size());
    completion->remaining = state->remaining;
    for (auto& [endpoint, lists] : by_endpoint)
      sg::Actor::create(prefix + std::to_string(endpoint), ctx.platform->host(endpoint),
                        [&ctx, plan, completion, state, prefix, out = lists.first, in = lists.second] {
                          guarded(ctx, [&] { flow_endpoint(ctx, *plan, out, in, prefix, *state); });
                          completion->leave();
                        });
    return;
  }
  for (const ChannelPlan& ch : plan->channels) completion->remaining += ch.schedule->participants;
  for (int c = 0; c < static_cast<int>(plan->channels.size()); ++c) {
    const std::string channel_prefix = prefix + std::to_string(c) + ":";
    for (int me = 0; me < plan->channels[c].schedule->participants; ++me)
      sg::Actor::create(channel_prefix + std::to_string(me), ctx.platform->host(plan->channels[c].endpoint[me]),
                        [&ctx, plan, completion, c, me, channel_prefix] {
                          guarded(ctx, [&] { step_participant(ctx, *plan, c, me, channel_prefix); });
                          completion->leave();
                        });
  }
}

}  // namespace tpsim::engine
