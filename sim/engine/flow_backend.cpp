// `flow` backend: the plan's phases, each as one comm per (src, dst) edge with the edge's bytes of
// the phase (collective_run.hpp, rule in collective_plan.hpp). The data a comm delivers is ready
// `path_latency` after it finished (the hop latencies not hidden behind transfers); a participant
// (a phase edge's from_actor / to_actor: NVLS-tree's roles on one GPU or switch progress apart)
// posts its receives of the next phase once done with its comms of this one, and starts its sends
// once, too, the data it received is ready.
//   one phase (rings): every comm starts at once, sent by a few actors that move from host to host
//     (no actor or mailbox per endpoint: a 131,072-GPU ring is a million comms and ~2,000 actors),
//     and the phase ends at the latest ready data.
//   several phases: one actor per (channel, participant), a mailbox per channel edge (FIFO across
//     phases), so an edge's comm starts when both of its ends are ready, as a step message does,
//     and channels progress independently, as step's per-channel actors do.
#include <algorithm>
#include <deque>
#include <map>
#include <numeric>
#include <utility>
#include <vector>

#include "engine/backends.hpp"

namespace tpsim::engine::backend {

namespace sg = simgrid::s4u;

namespace {

void record(RunContext& ctx, const FlowEdge& e, uint64_t bytes, const sg::CommPtr& c) {
  if (ctx.on_comm) ctx.on_comm({e.src, e.dst, double(bytes), c->get_start_time(), c->get_finish_time()});
}

// A one-phase plan's comms, sent by groups of at most kCommsPerSender. SimGrid keeps an actor's
// activities (and every host-to-host sendto's, all in one list) in a list it scans whole on each
// completion, so one actor starting a million comms costs ~10^12 steps; groups keep each list short.
// SimGrid caps the rate of mailbox comms only, and a mailbox comm runs between the hosts its two
// actors stand on when it starts: each group's receiver is the permanent receiver of the group's
// mailbox (a put starts at once, toward wherever the receiver stands), and before each put the
// sender moves itself to the edge's source and the receiver to its destination; a started comm
// keeps its route. Two actors per group, not one per GPU: an actor costs two memory mappings, and
// vm.max_map_count would stop a per-GPU design at ~30k GPUs.

void send_group(SimPlatform& platform, const CollectivePlan& plan, const std::vector<FlowEdge>& pieces,
                const std::vector<size_t>& mine, std::vector<sg::CommPtr>& comms, sg::Mailbox* box,
                const sg::ActorPtr& receiver) {
  box->set_receiver(receiver);
  for (size_t j : mine) {
    const FlowEdge& e = pieces[j];
    // A move scans the actor's activities: move only when the host changes (`mine` is by source).
    if (receiver->get_host() != platform.host(e.dst)) receiver->set_host(platform.host(e.dst));
    if (sg::this_actor::get_host() != platform.host(e.src)) sg::this_actor::set_host(platform.host(e.src));
    comms[j] = start_put(box, wire_size(e.payload, plan.wire_scale), e.rate_cap);
  }
  for (size_t j : mine) comms[j]->wait();
  box->set_receiver(nullptr);
  box->clear();   // the delivered comms wait there for a get that never comes
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
  std::vector<size_t> by_source(pieces.size());
  std::iota(by_source.begin(), by_source.end(), size_t{0});
  std::stable_sort(by_source.begin(), by_source.end(),
                   [&](size_t a, size_t b) { return pieces[a].src < pieces[b].src; });
  std::vector<std::vector<size_t>> groups;
  for (size_t first = 0; first < by_source.size(); first += kCommsPerSender)
    groups.emplace_back(by_source.begin() + first,
                        by_source.begin() + std::min<size_t>(first + kCommsPerSender, by_source.size()));
  // The actors below finish before this one goes on, so they may borrow what is declared here.
  std::vector<sg::CommPtr> comms(pieces.size());
  sg::SemaphorePtr sent = sg::Semaphore::create(0);
  for (size_t g = 0; g < groups.size(); ++g) {
    sg::SemaphorePtr released = sg::Semaphore::create(0);
    const std::string name = prefix + "g" + std::to_string(g);
    // Each starts where its first comm does: a move scans the actors of the host it leaves, and
    // thousands of actors started on one host would make every first move pay for all of them.
    const FlowEdge& first = pieces[groups[g].front()];
    sg::ActorPtr receiver = sg::Actor::init(name + ":recv", platform.host(first.dst))
                                ->set_stacksize(32 * 1024)
                                ->start([released] { released->acquire(); });
    spawn_small(name, platform.host(first.src), [&ctx, &plan, &platform, &pieces, &comms, &mine = groups[g], name, receiver, released, sent] {
      guarded(ctx, [&] { send_group(platform, plan, pieces, mine, comms, sg::Mailbox::by_name(name), receiver); });
      released->release();
      sent->release();
    });
  }
  for (size_t g = 0; g < groups.size(); ++g) sent->acquire();
  double done = sg::Engine::get_clock();
  for (size_t j = 0; j < pieces.size(); ++j) {
    const sg::CommPtr& c = comms[j];
    if (!c || c->get_state() != sg::Activity::State::FINISHED) continue;   // its group failed: ctx.error says why
    record(ctx, pieces[j], wire_size(pieces[j].payload, plan.wire_scale), c);
    done = std::max(done, c->get_finish_time() + pieces[j].path_latency);
  }
  sleep_until_ready(done);
}

// One participant's phases: (phase, edge index) pairs it sends and receives, in phase order, and
// the fabric endpoint it stands on.
struct ParticipantWork {
  std::vector<std::pair<int, int>> out, in;
  int endpoint = -1;
};

void run_participant(RunContext& ctx, const CollectivePlan& plan, const ParticipantWork& work, const std::string& prefix) {
  sg::this_actor::sleep_for(plan.protocol.fixed_latency);
  auto box = [&](const FlowEdge& e) {
    return sg::Mailbox::by_name(prefix + std::to_string(e.channel) + ":" + std::to_string(from_actor(e)) + ">" +
                                std::to_string(to_actor(e)));
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
  std::map<std::pair<int, int>, ParticipantWork> work;   // (channel, participant)
  for (int k = 0; k < static_cast<int>(plan->phases.size()); ++k)
    for (int j = 0; j < static_cast<int>(plan->phases[k].edges.size()); ++j) {
      const FlowEdge& e = plan->phases[k].edges[j];
      ParticipantWork& sender = work[{e.channel, from_actor(e)}];
      sender.out.emplace_back(k, j);
      sender.endpoint = e.src;
      ParticipantWork& receiver = work[{e.channel, to_actor(e)}];
      receiver.in.emplace_back(k, j);
      receiver.endpoint = e.dst;
    }
  completion->remaining = static_cast<int>(work.size());
  for (auto& [key, w] : work) {
    sg::Host* host = ctx.platform->host(w.endpoint);
    spawn_small(prefix + std::to_string(key.first) + ":" + std::to_string(key.second), host,
                [&ctx, plan, completion, prefix, w = std::move(w)] {
                  guarded(ctx, [&] { run_participant(ctx, *plan, w, prefix); });
                  completion->leave();
                });
  }
}

}  // namespace tpsim::engine::backend
