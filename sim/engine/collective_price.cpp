// Pricing a planned collective with one protocol: the per-edge rate caps and step latencies both
// backends apply, each phase edge's path latency (collective_plan.hpp), the latency-only path (for empty collectives) and the static estimate the selector
// compares. The estimate follows the flow backend's rule (collective_plan.hpp) with each edge's
// phase time d = max(max over its route of link load / bandwidth, bytes / cap), per (channel,
// participant) `posted` (its comms of the previous phase done) and `data` (what it holds is ready):
//   finish = max(posted[src], data[src], posted[dst]) + d
//   posted[src], posted[dst] >= finish; data[dst] >= finish + path latency
//   estimate = fixed + max(posted, data)
// which is the flow backend's time when every flow is held by one link or its cap.
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <stdexcept>
#include <tuple>
#include <unordered_map>
#include <utility>

#include "engine/collective_plan.hpp"

namespace tpsim::engine {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Latency as a data dependency, with transfer times taken as zero, through rounds [first, last) of
// a schedule: every chunk is ready at 0; a participant's sends of a round start at the latest ready
// time of the chunks they read and never before its previous round's sends; a received chunk is
// ready `latency` after its send started. on_receive(transfer, ready) sees every delivery; returns
// the latest ready time. The step backend follows the same rule with real transfer times.
template <class Latency, class OnReceive>
double data_path_latency(const Schedule& s, int first, int last, Latency latency, OnReceive on_receive) {
  int chunks = s.chunks;
  for (int r = first; r < last; ++r)
    for (const Transfer& t : s.rounds[r].transfers) chunks = std::max({chunks, t.src_chunk + 1, t.dst_chunk + 1});
  std::vector<double> ready(size_t(s.participants) * chunks, 0.0), send(s.participants, 0.0);
  std::vector<std::pair<size_t, double>> arrived;
  double end = 0;
  for (int r = first; r < last; ++r) {
    const Round& round = s.rounds[r];
    for (const Transfer& t : round.transfers) send[t.src] = std::max(send[t.src], ready[size_t(t.src) * chunks + t.src_chunk]);
    arrived.clear();
    for (const Transfer& t : round.transfers) {
      const double at = send[t.src] + latency(t);
      arrived.emplace_back(size_t(t.dst) * chunks + t.dst_chunk, at);
      on_receive(t, at);
      end = std::max(end, at);
    }
    for (const auto& [i, at] : arrived) ready[i] = std::max(ready[i], at);
  }
  return end;
}

// The same for a ring where every rank passes on, each round, the chunk it received the round
// before: after `rounds` rounds the data reaching hop i's receiver has crossed the `rounds`
// consecutive hops ending with hop i (hop i: position i -> i+1). window[i] is that sum.
std::vector<double> ring_windows(const std::vector<double>& hop, int rounds) {
  const int p = static_cast<int>(hop.size());
  double total = 0;
  for (double h : hop) total += h;
  const int laps = rounds / p, rest = rounds % p;
  std::vector<double> window(p, laps * total);
  double partial = 0;   // hops (i - rest, i]
  for (int k = 1; k <= rest; ++k) partial += hop[(p - rest + k) % p];   // window ending at hop 0
  for (int i = 0; i < p; ++i) {
    if (i > 0 && rest > 0) partial += hop[i] - hop[(i - rest + p) % p];
    window[i] += partial;
  }
  return window;
}

// The longest window: the latency of a ring phase with nothing to move.
double ring_path_latency(const std::vector<double>& hop, int rounds) {
  const std::vector<double> w = ring_windows(hop, rounds);
  return w.empty() ? 0 : *std::max_element(w.begin(), w.end());
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

std::vector<ProtocolCost> candidate_protocols(const Topology& t, Algorithm algorithm) {
  // One-shot and two-shot are not NCCL: one kernel of the inference engine's own, launched like any
  // other kernel (gpu.launch_overhead; no NCCL launch or protocol latency), each of whose steps
  // first waits for a flag every peer writes over NVLink (one more hop: intra.latency), moving
  // payload only.
  if (algorithm == Algorithm::one_shot || algorithm == Algorithm::two_shot)
    return {{"custom", t.gpu.launch_overhead, t.intra.latency, t.intra.latency, 1, 0, 0}};
  std::vector<ProtocolCost> out;
  for (const ProtocolSpec& p : t.collectives.protocols) {
    if (!(p.efficiency > 0 && p.efficiency <= 1))
      throw std::invalid_argument("topology '" + t.name + "': collectives protocol '" + p.name + "' efficiency must be in (0, 1]");
    out.push_back({p.name, t.collectives.launch_latency + p.base_latency, p.intra_step_latency, p.inter_step_latency,
                   p.efficiency, p.max_bandwidth, p.min_time});
  }
  // NVLS, NVLS-tree and PAT are Simple-only in NCCL (its tuner gives LL and LL128 no bandwidth there).
  const bool simple_only = algorithm == Algorithm::nvls || algorithm == Algorithm::nvls_tree || algorithm == Algorithm::pat;
  if (simple_only && std::any_of(out.begin(), out.end(), [](const ProtocolCost& p) { return p.name == "Simple"; }))
    std::erase_if(out, [](const ProtocolCost& p) { return p.name != "Simple"; });
  if (out.empty()) out.push_back({"ideal", t.collectives.launch_latency, 0, 0, 1, 0, 0});
  return out;
}

double step_latency(const Fabric& f, const ProtocolCost& proto, int src, int dst) {
  return f.inter_node(src, dst) ? f.latency(src, dst) + proto.inter_extra
                                : std::max(f.latency(src, dst) + proto.intra_extra, proto.intra_floor);
}

void price(CollectivePlan& plan, const Fabric& f, const ProtocolCost& protocol) {
  const Topology& topo = f.topology();
  // A ring across nodes still posts every step through the network proxy, so each of its intra-node
  // steps costs at least the host's post overhead (NCCL's tuning model: "Inter-node rings still
  // have to launch nsteps * net overhead"). The ideal protocol stays the exact alpha-beta model.
  ProtocolCost proto = protocol;
  const bool ring_across_nodes = plan.algorithm == Algorithm::ring && proto.name != "ideal" &&
                                 std::any_of(plan.edges.begin(), plan.edges.end(),
                                             [&](const FlowEdge& e) { return f.inter_node(e.src, e.dst); });
  proto.intra_floor = ring_across_nodes ? net_post_overhead(topo.nic.host_cpu, proto.name == "Simple") : 0.0;
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
  // NVLS-tree: each rank feeds its node's switch as NVLS on one node of L = ranks_per_node GPUs
  // does. That measured rate covers S (1 + 1/L) per GPU each way (the switch returns each GPU its
  // reduced 1/L slice, which the GPU then multicasts), but the one-node schedule moves only S; this
  // one moves the 1/L legs explicitly (switch -> head, head -> switch), so its switch edges get the
  // same rate times (1 + 1/L), times collectives.nvls_tree_efficiency (the kernel's warps serve more
  // roles than on one node). The tree's NIC edges are not capped.
  double switch_cap = kInf;
  if (plan.algorithm == Algorithm::nvls_tree && topo.intra.nvls_bandwidth > 0) {
    const int local = plan.instance.ranks_per_node;
    switch_cap = topo.intra.nvls_bandwidth / busbw_factor(plan.op, local) * (1.0 + 1.0 / local) *
                 topo.collectives.nvls_tree_efficiency;
  }
  if (proto.max_bandwidth > 0) rank_cap = std::min(rank_cap, proto.max_bandwidth);
  // The channel ramp-up floor is NCCL shrinking a small collective's channels; it never shrinks
  // NVLS-tree's (enqueue.cc: nc = nvlsChannels), whose chained stages would each pay the floor here.
  // (NVLS on one node keeps it: there it stands in for NVLS's own latency, 25 us in NCCL's tuner,
  // which tpsim's NVLS does not model.)
  if (proto.min_time > 0 && most_sent > 0 && plan.algorithm != Algorithm::nvls_tree)
    rank_cap = std::min(rank_cap, most_sent / proto.min_time);
  // A closed-form all-to-all half of `pairs` transfers takes the caps of those transfers, each of
  // them 1 / (channels (p - 1)) of its sender's rank cap (a rank sends to every other rank).
  const bool ring_form = plan.closed_form && plan.algorithm == Algorithm::ring;
  const bool a2a_form = plan.closed_form && plan.op == CollectiveOp::all_to_all;
  const double a2a_edges = double(plan.channels.size()) * (plan.ranks - 1);
  std::vector<int> scratch;
  // Each edge's route's slowest link, looked up once and only when needed (phase edges share their
  // edge's route).
  std::vector<double> slowest_link(plan.edges.size(), -1.0);
  auto slowest = [&](size_t i) {
    double& b = slowest_link[i];
    return b >= 0 ? b : b = route_bottleneck(f, plan.edges[i].src, plan.edges[i].dst, scratch);
  };
  for (size_t i = 0; i < plan.edges.size(); ++i) {
    FlowEdge& e = plan.edges[i];
    double payload_cap = a2a_form ? rank_cap * e.pairs / a2a_edges : e.src >= f.gpus() ? rank_cap : rank_cap / out_degree[e.src];
    if (e.src >= f.gpus() || e.dst >= f.gpus()) payload_cap = std::min(payload_cap, switch_cap);
    const double wire_cap = payload_cap * plan.wire_scale;
    // A cap at or above the route's slowest link never binds under max-min: drop it, so the flow
    // backend may run the edge without a rate-limited message.
    e.rate_cap = std::isfinite(wire_cap) && wire_cap < slowest(i) ? wire_cap : 0.0;
  }
  // NVLS-tree's NVLink stages (every edge to or from a switch: the scatter into it, the reduce out
  // of it to the head, the head's broadcast into it, the gather out of it; nvls_tree.cpp) are roles
  // of NCCL's kernel, each on warps of its own that NCCL sizes so no role is slower than the
  // pipeline, and each forwards a step only once it holds it whole (Simple). So every NVLink stage
  // takes the pipeline's step time, the slowest edge's bytes per step at its rate, in every round
  // it is active: a chunk crosses the node's four NVLink stages in four such steps, where their
  // rates alone would take about one. The network hops keep their own rate (the NIC moves them).
  double role_step = 0;
  if (plan.algorithm == Algorithm::nvls_tree) {
    const double steps = std::max(plan.instance.pipeline, 1);
    for (size_t i = 0; i < plan.edges.size(); ++i) {
      const FlowEdge& e = plan.edges[i];
      if (e.payload > 0)
        role_step = std::max(role_step, e.payload * plan.wire_scale / steps / (e.rate_cap > 0 ? e.rate_cap : slowest(i)));
    }
  }
  // The plan edge a phase edge is part of (same channel and endpoints).
  auto edge_of = [&](const FlowEdge& e) {
    auto it = std::lower_bound(plan.edges.begin(), plan.edges.end(), std::make_tuple(e.channel, e.src, e.dst),
                               [](const FlowEdge& x, const std::tuple<int, int, int>& k) {
                                 return std::make_tuple(x.channel, x.src, x.dst) < k;
                               });
    return static_cast<size_t>(it - plan.edges.begin());
  };

  // The latency-only path of the whole collective, for one with nothing to move (transfer times
  // zero). Phase edges' path latencies come per phase below, once their phase times are known.
  const int channels = static_cast<int>(plan.channels.size());
  auto hop_latency = [&](int src, int dst) { return src == dst ? 0.0 : step_latency(f, proto, src, dst); };
  double path = 0;
  std::vector<double> hop;
  for (int c = 0; c < channels; ++c) {
    const ChannelPlan& ch = plan.channels[c];
    if (a2a_form) {   // one round: the longest hop
      for (const FlowEdge& e : plan.edges) path = std::max(path, hop_latency(e.src, e.dst));
      continue;
    }
    if (ring_form) {
      const int p = plan.ranks;
      if (p < 2 || plan.phases.empty()) continue;
      hop.assign(p, 0.0);
      for (int i = 0; i < p; ++i) hop[i] = hop_latency(ch.endpoint[i], ch.endpoint[(i + 1) % p]);
      path = std::max(path, ring_path_latency(hop, plan.phases[0].rounds));
      continue;
    }
    const Schedule& s = *ch.schedule;
    auto latency = [&](const Transfer& t) { return hop_latency(ch.endpoint[t.src], ch.endpoint[t.dst]); };
    path = std::max(path, data_path_latency(s, 0, static_cast<int>(s.rounds.size()), latency, [](const Transfer&, double) {}));
  }
  plan.path_latency = path;

  // Phases: caps and latencies per channel edge; flows merged over channels (identical flows on one
  // route get equal max-min shares, so merging changes no time, only the flow count).
  std::vector<double> load(f.links().size(), 0.0);
  int actors = 1;   // ids of the phase edges' ends
  for (const Phase& ph : plan.phases)
    for (const FlowEdge& e : ph.edges) actors = std::max({actors, from_actor(e) + 1, to_actor(e) + 1});
  std::vector<double> posted(size_t(channels) * actors, 0.0), data(posted), next_posted, next_data;
  std::vector<int> touched, route_start, routes, users(f.links().size(), 0);
  // Flow of each phase edge: by (src, dst) while merging (hashed: 8-channel 4096-GPU rings have
  // 32768 edges and the selector prices them once per protocol), then by edge position.
  std::unordered_map<uint64_t, size_t> index;
  std::vector<size_t> flow_of;
  auto flow_key = [](int src, int dst) { return uint64_t(uint32_t(src)) << 32 | uint32_t(dst); };
  for (Phase& ph : plan.phases) {
    ph.flows.clear();
    index.clear();
    index.reserve(ph.edges.size());
    flow_of.resize(ph.edges.size());
    for (FlowEdge& e : ph.edges) {
      const size_t whole = edge_of(e);
      e.rate_cap = plan.edges[whole].rate_cap;
      if (role_step > 0 && e.payload > 0 && (e.src >= f.gpus() || e.dst >= f.gpus())) {
        const double cap = e.payload * plan.wire_scale / (ph.rounds * role_step);
        e.rate_cap = cap < slowest(whole) ? cap : 0.0;
      }
      e.latency = step_latency(f, proto, e.src, e.dst);
      auto [it, fresh] = index.try_emplace(flow_key(e.src, e.dst), ph.flows.size());
      flow_of[&e - ph.edges.data()] = it->second;
      if (fresh) {
        ph.flows.push_back(e);
        ph.flows.back().channel = 0;
        ph.flows.back().path_latency = 0;
      } else {
        FlowEdge& m = ph.flows[it->second];
        m.payload += e.payload;
        m.rate_cap = m.rate_cap > 0 && e.rate_cap > 0 ? m.rate_cap + e.rate_cap : 0;
        m.width += e.width;
        m.pairs += e.pairs;
        m.latency = std::max(m.latency, e.latency);
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
    // Path latencies (collective_plan.hpp): each round of the phase, an edge's message takes its
    // flow's static phase time / rounds and its data is ready a hop latency later; an edge's data
    // is ready at the later of (a) its last message's finish + its hop latency (its sender never
    // waited for data: the bottleneck streams) and (b) the data path where every hop waits for the
    // data of the hop before (message time + hop latency per hop, ring_windows / data_path_latency
    // with that cost). path_latency is that time less the edge's phase time, so the flow backend's
    // finish + path_latency is it when the flow runs at its static rate.
    auto phase_time = [&](const FlowEdge& e) { return d[flow_of[&e - ph.edges.data()]]; };
    for (FlowEdge& e : ph.edges) e.path_latency = 0;
    if (a2a_form)   // one round (data_path_latency's rule): data ready a hop latency after the message
      for (FlowEdge& e : ph.edges) e.path_latency = e.latency + phase_time(e) / ph.rounds;
    for (int c = 0; c < channels && !a2a_form; ++c) {
      const ChannelPlan& ch = plan.channels[c];
      if (ring_form) {
        const int p = plan.ranks;
        if (p < 2) continue;
        hop.assign(p, 0.0);
        for (int i = 0; i < p; ++i) {
          const int src = ch.endpoint[i], dst = ch.endpoint[(i + 1) % p];
          const FlowEdge* e = phase_edge(ph, c, src, dst);
          hop[i] = hop_latency(src, dst) + (e ? phase_time(*e) / ph.rounds : 0.0);
        }
        const std::vector<double> window = ring_windows(hop, ph.rounds);
        for (int i = 0; i < p; ++i)
          if (FlowEdge* e = phase_edge(ph, c, ch.endpoint[i], ch.endpoint[(i + 1) % p]))
            e->path_latency = std::max(e->path_latency, window[i]);
        continue;
      }
      const Schedule& s = *ch.schedule;
      const int last = std::min(ph.first + ph.rounds, static_cast<int>(s.rounds.size()));
      auto cost = [&](const Transfer& t) {
        const FlowEdge* e = phase_edge(ph, c, t.src, t.dst);
        return e ? e->latency + phase_time(*e) / ph.rounds : 0.0;
      };
      data_path_latency(s, ph.first, last, cost, [&](const Transfer& t, double at) {
        if (FlowEdge* e = phase_edge(ph, c, t.src, t.dst)) e->path_latency = std::max(e->path_latency, at);
      });
    }
    for (FlowEdge& e : ph.edges) {
      e.path_latency = std::max(e.latency, e.path_latency - phase_time(e));
      FlowEdge& m = ph.flows[flow_of[&e - ph.edges.data()]];
      m.path_latency = std::max(m.path_latency, e.path_latency);
    }
    // The flow backend's rule: a participant posts its receives once its comms of the previous phase
    // are done, and starts its sends once, too, the data it holds is ready.
    next_posted = posted;
    next_data = data;
    for (const FlowEdge& e : ph.edges) {
      const double dk = phase_time(e);
      const size_t src = size_t(e.channel) * actors + from_actor(e), dst = size_t(e.channel) * actors + to_actor(e);
      const double finish = std::max({posted[src], data[src], posted[dst]}) + dk;
      next_posted[src] = std::max(next_posted[src], finish);
      next_posted[dst] = std::max(next_posted[dst], finish);
      next_data[dst] = std::max(next_data[dst], finish + e.path_latency);
    }
    posted.swap(next_posted);
    data.swap(next_data);
  }
  double critical = 0;
  for (size_t i = 0; i < posted.size(); ++i) critical = std::max({critical, posted[i], data[i]});
  plan.estimate = proto.fixed_latency + (plan.bytes > 0 && !plan.edges.empty() ? critical : path);
}

}  // namespace tpsim::engine
