// Pricing a planned collective with one protocol: the per-edge rate caps and step latencies both
// backends apply, the latency-only path (for empty collectives) and the static estimate the
// selector compares. The estimate follows the flow backend's rule (collective_plan.hpp) with each
// edge's phase time d = max(max over its route of link load / bandwidth, bytes / cap), per
// (channel, endpoint):
//   start = max(ready[src], ready[dst]); ready[src] = start + d; ready[dst] = start + d + rounds * latency
//   estimate = fixed + max ready
// which is the flow backend's time when every flow is held by one link or its cap.
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <stdexcept>
#include <tuple>

#include "engine/collective_plan.hpp"

namespace tpsim::engine {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Longest chain of step latencies through the schedule's rounds: a transfer starts once both ends
// finished their previous round; its receiver is done `latency` later, its sender at once (the
// same rule the step backend follows).
template <class Latency>
double schedule_path_latency(const Schedule& s, Latency latency) {
  std::vector<double> ready(s.participants, 0.0), next;
  for (const Round& round : s.rounds) {
    next = ready;
    for (const Transfer& t : round.transfers) {
      const double start = std::max(ready[t.src], ready[t.dst]);
      next[t.src] = std::max(next[t.src], start);
      next[t.dst] = std::max(next[t.dst], start + latency(t));
    }
    ready.swap(next);
  }
  return ready.empty() ? 0 : *std::max_element(ready.begin(), ready.end());
}

// The same for a ring where every rank passes one chunk per round to the next: the longest sum of
// `rounds` consecutive hop latencies around the ring.
double ring_path_latency(const std::vector<double>& hop, int rounds) {
  const int p = static_cast<int>(hop.size());
  double total = 0;
  for (double h : hop) total += h;
  const int laps = rounds / p, rest = rounds % p;
  double window = 0;
  for (int i = 0; i < rest; ++i) window += hop[i];
  double best = window;
  for (int i = 0; i < p && rest > 0; ++i) {   // window [i, i+rest) slid around the ring
    window += hop[(i + rest) % p] - hop[i];
    best = std::max(best, window);
  }
  return laps * total + best;
}

// The smallest link bandwidth on the route src -> dst (a cap at or above it can never bind).
double route_bottleneck(const Fabric& f, int src, int dst, std::vector<int>& scratch) {
  scratch.clear();
  f.route(src, dst, scratch);
  double bw = kInf;
  for (int l : scratch) bw = std::min(bw, f.links()[l].bandwidth);
  return bw;
}

}  // namespace

std::vector<ProtocolCost> candidate_protocols(const Topology& t) {
  std::vector<ProtocolCost> out;
  for (const ProtocolSpec& p : t.collectives.protocols) {
    if (!(p.efficiency > 0 && p.efficiency <= 1))
      throw std::invalid_argument("topology '" + t.name + "': collectives protocol '" + p.name + "' efficiency must be in (0, 1]");
    out.push_back({p.name, t.collectives.launch_latency + p.base_latency, p.intra_step_latency, p.inter_step_latency,
                   p.efficiency, p.max_bandwidth, p.min_time});
  }
  if (out.empty()) out.push_back({"ideal", t.collectives.launch_latency, 0, 0, 1, 0, 0});
  return out;
}

void price(CollectivePlan& plan, const Fabric& f, const ProtocolCost& proto) {
  const Topology& topo = f.topology();
  plan.protocol = proto;
  plan.wire_scale = 1.0 / proto.efficiency;
  plan.instance.protocol = proto.name;

  // Per-rank caps (channel ramp-up floor, LL bandwidth, NVLS) are split over the rank's out-edges;
  // an NVSwitch multicasts, each port at the rank rate.
  const int endpoints = f.endpoints();
  std::vector<double> sent(endpoints, 0.0);
  std::vector<int> out_degree(endpoints, 0);
  for (const FlowEdge& e : plan.edges) {
    sent[e.src] += e.payload;
    ++out_degree[e.src];
  }
  double most_sent = 0;
  for (const ChannelPlan& ch : plan.channels)
    for (int i = 0; i < plan.ranks; ++i) most_sent = std::max(most_sent, sent[ch.endpoint[i]]);
  // NVLS: nvls_bandwidth is the bus bandwidth the switch reduction reaches, so each rank's payload
  // rate is capped at nvls_bandwidth / busbw factor.
  double rank_cap = kInf;   // payload B/s per rank
  if (plan.algorithm == Algorithm::nvls && topo.intra.nvls_bandwidth > 0)
    rank_cap = topo.intra.nvls_bandwidth / busbw_factor(plan.op, plan.ranks);
  if (proto.max_bandwidth > 0) rank_cap = std::min(rank_cap, proto.max_bandwidth);
  if (proto.min_time > 0 && most_sent > 0) rank_cap = std::min(rank_cap, most_sent / proto.min_time);
  std::vector<int> scratch;
  for (FlowEdge& e : plan.edges) {
    const double payload_cap = e.src >= f.gpus() ? rank_cap : rank_cap / out_degree[e.src];
    const double wire_cap = payload_cap * plan.wire_scale;
    // A cap at or above the route's slowest link never binds under max-min: drop it, so the flow
    // backend may run the edge without a rate-limited message.
    e.rate_cap = std::isfinite(wire_cap) && wire_cap < route_bottleneck(f, e.src, e.dst, scratch) ? wire_cap : 0.0;
  }
  auto cap_of = [&](const FlowEdge& e) {
    auto it = std::lower_bound(plan.edges.begin(), plan.edges.end(), std::make_tuple(e.channel, e.src, e.dst),
                               [](const FlowEdge& x, const std::tuple<int, int, int>& k) {
                                 return std::make_tuple(x.channel, x.src, x.dst) < k;
                               });
    return it->rate_cap;
  };
  auto step_latency = [&](int src, int dst) {
    return f.latency(src, dst) + (f.inter_node(src, dst) ? proto.inter_extra : proto.intra_extra);
  };

  // Phases: caps and latencies per channel edge; flows merged over channels (identical flows on one
  // route get equal max-min shares, so merging changes no time, only the flow count).
  const int channels = static_cast<int>(plan.channels.size());
  std::vector<double> load(f.links().size(), 0.0), ready(size_t(channels) * endpoints, 0.0), next;
  std::vector<int> touched, route_start, routes, users(f.links().size(), 0);
  std::map<std::pair<int, int>, size_t> index;
  for (Phase& ph : plan.phases) {
    ph.flows.clear();
    index.clear();
    for (FlowEdge& e : ph.edges) {
      e.rate_cap = cap_of(e);
      e.latency = step_latency(e.src, e.dst);
      auto [it, fresh] = index.try_emplace({e.src, e.dst}, ph.flows.size());
      if (fresh) {
        ph.flows.push_back(e);
        ph.flows.back().channel = 0;
      } else {
        FlowEdge& m = ph.flows[it->second];
        m.payload += e.payload;
        m.rate_cap = m.rate_cap > 0 && e.rate_cap > 0 ? m.rate_cap + e.rate_cap : 0;
        m.width += e.width;
      }
    }
    // Static phase time of each flow: its most loaded link, or its cap.
    route_start.clear();
    routes.clear();
    for (const FlowEdge& e : ph.flows) {
      route_start.push_back(static_cast<int>(routes.size()));
      f.route(e.src, e.dst, routes);
      for (size_t i = route_start.back(); i < routes.size(); ++i) {
        if (load[routes[i]] == 0) touched.push_back(routes[i]);
        load[routes[i]] += e.payload * plan.wire_scale;
      }
    }
    route_start.push_back(static_cast<int>(routes.size()));
    std::vector<double> d(ph.flows.size(), 0.0);
    for (size_t k = 0; k < ph.flows.size(); ++k) {
      const FlowEdge& e = ph.flows[k];
      if (e.rate_cap > 0) d[k] = e.payload * plan.wire_scale / e.rate_cap;
      for (int i = route_start[k]; i < route_start[k + 1]; ++i)
        d[k] = std::max(d[k], load[routes[i]] / f.links()[routes[i]].bandwidth);
    }
    // A flow whose every link carries no other flow may run as one comm: its parallel messages
    // would split those links among themselves only (4096-GPU rings: 7 channels per NVLink pair).
    for (size_t k = 0; k < ph.flows.size(); ++k)
      for (int i = route_start[k]; i < route_start[k + 1]; ++i) ++users[routes[i]];
    for (size_t k = 0; k < ph.flows.size(); ++k) {
      bool alone = true;
      for (int i = route_start[k]; i < route_start[k + 1]; ++i) alone = alone && users[routes[i]] == 1;
      if (alone) ph.flows[k].width = 1;
    }
    for (int l : touched) load[l] = 0, users[l] = 0;
    touched.clear();
    next = ready;
    for (const FlowEdge& e : ph.edges) {
      const double dk = d[index[{e.src, e.dst}]];
      const size_t src = size_t(e.channel) * endpoints + e.src, dst = size_t(e.channel) * endpoints + e.dst;
      const double start = std::max(ready[src], ready[dst]);
      next[src] = std::max(next[src], start + dk);
      next[dst] = std::max(next[dst], start + dk + ph.rounds * e.latency);
    }
    ready.swap(next);
  }
  const double critical = ready.empty() ? 0 : *std::max_element(ready.begin(), ready.end());

  // Latency-only chain through the rounds, for a collective with nothing to move.
  double path = 0;
  for (const ChannelPlan& ch : plan.channels) {
    if (plan.closed_form) {
      const int p = plan.ranks;
      if (p < 2) continue;
      std::vector<double> hop(p);
      for (int i = 0; i < p; ++i) hop[i] = step_latency(ch.endpoint[i], ch.endpoint[(i + 1) % p]);
      path = std::max(path, ring_path_latency(hop, plan.rounds));
    } else {
      path = std::max(path, schedule_path_latency(*ch.schedule, [&](const Transfer& t) {
                        return step_latency(ch.endpoint[t.src], ch.endpoint[t.dst]);
                      }));
    }
  }
  plan.path_latency = path;
  plan.estimate = proto.fixed_latency + (plan.bytes > 0 && !plan.edges.empty() ? critical : path);
}

}  // namespace tpsim::engine
