// `step` backend: every transfer of every round is one SimGrid message (collective_run.hpp);
// latency as a data dependency per chunk (collective_plan.hpp).
#include <algorithm>
#include <deque>
#include <map>
#include <tuple>
#include <utility>
#include <vector>

#include "engine/backends.hpp"

namespace tpsim::engine::backend {

namespace sg = simgrid::s4u;

namespace {

// The cap of one message of `round` on the edge (channel, from, to) between two participants: the
// edge's cap shared by the round's messages on it (its phase's width), as the flow backend shares
// it among the edge's parallel comms.
double message_cap(const CollectivePlan& plan, int round, int channel, int from, int to) {
  auto ph = std::upper_bound(plan.phases.begin(), plan.phases.end(), round,
                             [](int r, const Phase& p) { return r < p.first; });
  if (ph == plan.phases.begin() || round >= std::prev(ph)->first + std::prev(ph)->rounds) return 0;
  const FlowEdge* e = phase_edge(*std::prev(ph), channel, from, to);
  return e ? e->rate_cap / std::max(e->width, 1) : 0;
}

// One participant's part of one channel's schedule.
void step_participant(RunContext& ctx, const CollectivePlan& plan, int channel, int me, const std::string& prefix) {
  const Fabric& fabric = ctx.platform->fabric();
  const ChannelPlan& ch = plan.channels[channel];
  const Schedule& s = *ch.schedule;
  const int self = ch.endpoint[me];
  const uint64_t bytes = wire_size(plan.chunk_payload, plan.wire_scale);
  std::map<int, sg::Mailbox*> out_box, in_box;   // by peer participant
  std::map<int, double> out_cap;
  auto box = [&](std::map<int, sg::Mailbox*>& boxes, int src, int dst, int peer) {
    auto [it, fresh] = boxes.try_emplace(peer, nullptr);
    if (fresh) it->second = sg::Mailbox::by_name(prefix + std::to_string(src) + ">" + std::to_string(dst));
    return it->second;
  };
  sg::this_actor::sleep_for(plan.protocol.fixed_latency);
  // When each chunk of my buffer holds its data (collective_plan.hpp): inputs now, received chunks
  // at receive finish + hop latency.
  int chunks = s.chunks;
  for (const Round& round : s.rounds)
    for (const Transfer& t : round.transfers) chunks = std::max({chunks, t.src_chunk + 1, t.dst_chunk + 1});
  std::vector<double> ready(chunks, sg::Engine::get_clock());
  struct Recv {
    int round, src, chunk;
    double latency;
    sg::CommPtr comm;
    bool done = false;
  };
  std::deque<Recv> recvs;   // posted, in round order
  const int rounds = static_cast<int>(s.rounds.size());
  int posted = 0;           // rounds whose receives are posted
  auto settle = [&](Recv& r) {   // wait for one receive; its chunk is ready a hop latency later
    if (r.done) return;
    r.comm->wait();
    ready[r.chunk] = std::max(ready[r.chunk], r.comm->get_finish_time() + r.latency);
    r.done = true;
  };
  auto receive_before = [&](int round) {   // wait for the receives of earlier rounds
    while (!recvs.empty() && recvs.front().round < round) {
      Recv& r = recvs.front();
      settle(r);
      if (ctx.on_comm) ctx.on_comm({r.src, self, double(bytes), r.comm->get_start_time(), r.comm->get_finish_time()});
      recvs.pop_front();
    }
  };
  // Wait for the receives of earlier rounds that write `chunk`, and only those: a round's sends
  // wait for the chunks they read, not for unrelated receives (another tree's, a later hop's).
  auto receive_chunk = [&](int chunk, int round) {
    for (Recv& r : recvs) {
      if (r.round >= round) break;
      if (r.chunk == chunk) settle(r);
    }
  };
  auto post_until = [&](int end) {   // a round's receives take a slot freed by round - window's
    for (; posted < std::min(end, rounds); ++posted) {
      for (const Transfer& t : s.rounds[posted].transfers) {
        if (t.dst != me || ch.endpoint[t.src] == self) continue;
        const int src = ch.endpoint[t.src];
        recvs.push_back({posted, src, t.dst_chunk,
                         step_latency(fabric, plan.protocol, src, self),
                         box(in_box, t.src, me, t.src)->get_async<int>(&sink)});
      }
    }
  };
  std::vector<int> send_dst;
  std::vector<sg::CommPtr> sends;
  for (int r = 0; r < rounds; ++r) {
    post_until(r + kRecvWindow);   // receives never wait for latency, only for buffer slots
    send_dst.clear();
    double send_at = 0;
    for (const Transfer& t : s.rounds[r].transfers) {
      if (t.src != me) continue;
      receive_chunk(t.src_chunk, r);
      const int dst = ch.endpoint[t.dst];
      if (dst == self) ready[t.dst_chunk] = std::max(ready[t.dst_chunk], ready[t.src_chunk]);   // a local copy
      else send_dst.push_back(t.dst), send_at = std::max(send_at, ready[t.src_chunk]);
    }
    if (send_dst.empty()) continue;
    sleep_until_ready(send_at);
    sends.clear();
    out_cap.clear();
    for (int peer : send_dst) {
      auto [cap, fresh] = out_cap.try_emplace(peer, 0.0);
      if (fresh) cap->second = message_cap(plan, r, channel, me, peer);
      sends.push_back(start_put(box(out_box, me, peer, peer), bytes, cap->second));
    }
    for (auto& c : sends) c->wait();   // the next round's sends start after these finished
    while (!recvs.empty() && recvs.front().done) receive_before(recvs.front().round + 1);
  }
  receive_before(rounds);
  // Done when my output chunks hold their data.
  double end = 0;
  if (me < static_cast<int>(s.output_chunks.size()))
    for (int c : s.output_chunks[me]) end = std::max(end, ready[c]);
  sleep_until_ready(end);
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
