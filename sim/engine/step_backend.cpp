// `step` backend: every transfer of every round is one SimGrid message (collective_run.hpp).
#include <algorithm>
#include <map>
#include <tuple>
#include <vector>

#include "engine/backends.hpp"

namespace tpsim::engine::backend {

namespace sg = simgrid::s4u;

namespace {

// The cap of the edge (channel, src, dst): plan.edges is sorted by channel, then (src, dst).
double edge_cap(const CollectivePlan& plan, int channel, int src, int dst) {
  auto it = std::lower_bound(plan.edges.begin(), plan.edges.end(), std::make_tuple(channel, src, dst),
                             [](const FlowEdge& e, const std::tuple<int, int, int>& key) {
                               return std::make_tuple(e.channel, e.src, e.dst) < key;
                             });
  return it != plan.edges.end() && it->channel == channel && it->src == src && it->dst == dst ? it->rate_cap : 0;
}

// One participant's part of one channel's schedule.
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

}  // namespace

void start_step(RunContext& ctx, std::shared_ptr<const CollectivePlan> plan, const std::string& prefix,
                std::shared_ptr<Completion> completion) {
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

}  // namespace tpsim::engine::backend
