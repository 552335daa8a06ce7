// Planning one collective: schedule or closed-form ring edges, endpoints, protocol choice.
#include "engine/collective_plan.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <stdexcept>
#include <tuple>

namespace tpsim::engine {

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kPipelineChunk = 1 << 20;   // bytes per pipeline chunk (NCCL Simple: ~0.5-1 MiB steps)
constexpr int kMaxPipeline = 64;

bool single_node(const Fabric& f, const std::vector<int>& group) {
  return std::all_of(group.begin(), group.end(), [&](int g) { return f.node_of(g) == f.node_of(group[0]); });
}

void check_spec(const Fabric& f, const CollectiveSpec& spec) {
  if (spec.group.empty()) throw std::invalid_argument("collective: empty group");
  std::set<int> seen;
  for (int g : spec.group) {
    if (g < 0 || g >= f.gpus())
      throw std::invalid_argument("collective: GPU " + std::to_string(g) + " is not in the topology (it has " +
                                  std::to_string(f.gpus()) + " GPUs)");
    if (!seen.insert(g).second) throw std::invalid_argument("collective: GPU " + std::to_string(g) + " appears twice in the group");
  }
  if (!(spec.bytes >= 0) || !std::isfinite(spec.bytes)) throw std::invalid_argument("collective: size must be >= 0 bytes");
}

// Ring all-reduce / all-gather / reduce-scatter in closed form: edge i -> i+1 carries every chunk
// that passes it (2(p-1) or p-1 chunks of S/p), one per round.
bool closed_form_ring(CollectiveOp op) {
  return op == CollectiveOp::all_reduce || op == CollectiveOp::all_gather || op == CollectiveOp::reduce_scatter;
}

int ring_rounds(CollectiveOp op, int p) { return op == CollectiveOp::all_reduce ? 2 * (p - 1) : p - 1; }

// Participants an algorithm adds after the ranks: the NVSwitch of the group's node (NVLS).
int helper_endpoint(const Fabric& f, const CollectiveSpec& spec) {
  const int sw = f.switch_endpoint(f.node_of(spec.group[0]));
  if (sw < 0 || !single_node(f, spec.group))
    throw std::invalid_argument("collective: in-switch reduction needs all of the group on one NVSwitch node");
  return sw;
}

int ranks_per_node(const Fabric& f, const std::vector<int>& group) {
  int n = 0;
  while (n < static_cast<int>(group.size()) && f.node_of(group[n]) == f.node_of(group[0])) ++n;
  return n;
}

// Longest chain of step latencies through the schedule's rounds: a transfer starts once both ends
// finished their previous round; its receiver is done `latency` later, its sender at once (the
// same rule the step interpreter follows).
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
  double best = 0, window = 0;
  for (int i = 0; i < rest; ++i) window += hop[i];
  best = window;
  for (int i = 0; i < p && rest > 0; ++i) {   // window [i, i+rest) slid around the ring
    window += hop[(i + rest) % p] - hop[i];
    best = std::max(best, window);
  }
  return laps * total + best;
}

std::vector<ProtocolCost> candidate_protocols(const Topology& t) {
  std::vector<ProtocolCost> out;
  for (const ProtocolSpec& p : t.collectives.protocols) {
    if (!(p.efficiency > 0 && p.efficiency <= 1))
      throw std::invalid_argument("topology '" + t.name + "': collectives protocol '" + p.name + "' efficiency must be in (0, 1]");
    out.push_back({p.name, t.collectives.launch_latency + p.base_latency, p.intra_step_latency, p.inter_step_latency,
                   p.efficiency});
  }
  if (out.empty()) out.push_back({"ideal", t.collectives.launch_latency, 0, 0, 1});
  return out;
}

const ProtocolSpec* protocol_spec(const Topology& t, const std::string& name) {
  for (const ProtocolSpec& p : t.collectives.protocols)
    if (p.name == name) return &p;
  return nullptr;
}

// Bytes one transfer carries: the schedule's own notion of a chunk of the nccl-tests size.
double chunk_payload(const Schedule& s, double bytes) {
  const std::vector<double> sent = bytes_sent(s, bytes);
  std::vector<int> count(s.participants, 0);
  for (const Round& round : s.rounds)
    for (const Transfer& t : round.transfers) ++count[t.src];
  for (int i = 0; i < s.participants; ++i)
    if (count[i] > 0) return sent[i] / count[i];
  return 0;
}

// Flow fidelity: channels that use the same (src, dst) pair (a rotated ring shares most of its
// intra-node hops with the others) become one flow with the summed payload and cap. Max-min gives
// identical flows on one route equal shares, so this changes no time, only the flow count.
void merge_parallel_edges(std::vector<FlowEdge>& edges) {
  std::map<std::pair<int, int>, size_t> first;
  std::vector<FlowEdge> merged;
  for (const FlowEdge& e : edges) {
    auto [it, fresh] = first.try_emplace({e.src, e.dst}, merged.size());
    if (fresh) {
      merged.push_back(e);
      merged.back().channel = 0;
    } else {
      FlowEdge& m = merged[it->second];
      m.payload += e.payload;
      m.rate_cap = m.rate_cap > 0 && e.rate_cap > 0 ? m.rate_cap + e.rate_cap : 0;
      m.active_rounds = std::max(m.active_rounds, e.active_rounds);
    }
  }
  std::sort(merged.begin(), merged.end(), [](const FlowEdge& a, const FlowEdge& b) {
    return std::make_pair(a.src, a.dst) < std::make_pair(b.src, b.dst);
  });
  edges = std::move(merged);
}

}  // namespace

Algorithm choose_algorithm(const Fabric& f, const CollectiveSpec& spec) {
  const Topology& t = f.topology();
  const int p = static_cast<int>(spec.group.size());
  if (spec.op != CollectiveOp::all_reduce) return default_algorithm(spec.op);
  if (p == 1) return Algorithm::ring;
  const bool one_node = single_node(f, spec.group);
  // NCCL uses NVLink SHARP for all-reduce when the switch supports it and more than 4 GPUs of one
  // node take part (datasheets.md: "used at >4 GPUs").
  if (one_node && t.intra.fabric == IntraFabric::nvswitch && t.intra.nvls && p > 4) return Algorithm::nvls;
  if (one_node) return Algorithm::ring;
  // Across nodes NCCL's tuner takes whichever of ring and tree its model predicts faster: the
  // tree's log-depth latency wins for small messages, the ring's bandwidth for large ones.
  CollectiveSpec s = spec;
  s.algorithm = Algorithm::ring;
  const double ring = plan_collective(f, s, Fidelity::flow).estimate;
  s.algorithm = Algorithm::tree;
  try {
    if (plan_collective(f, s, Fidelity::flow).estimate < ring) return Algorithm::tree;
  } catch (const std::invalid_argument&) {
  }
  return Algorithm::ring;
}

namespace {

// NCCL's multi-node rings: one channel per NIC the group uses; channel c rotates every node's
// block of the group by c, so each channel enters and leaves a node through different GPUs and
// NICs. Single-node groups and other algorithms run as one channel.
std::vector<std::vector<int>> channel_orders(const Fabric& f, const CollectiveSpec& spec, Algorithm algorithm) {
  const std::vector<int>& g = spec.group;
  const int p = static_cast<int>(g.size());
  const int per_node = ranks_per_node(f, g);
  bool node_major = per_node > 1 && per_node < p && p % per_node == 0;
  for (int i = 0; node_major && i < p; ++i) {
    const int block = i - i % per_node;
    node_major = f.node_of(g[i]) == f.node_of(g[block]) && (block == 0 || f.node_of(g[block]) != f.node_of(g[block - 1]));
  }
  if (algorithm != Algorithm::ring || !node_major || spec.op == CollectiveOp::all_to_all ||
      spec.op == CollectiveOp::send_recv)
    return {g};
  std::set<int> nics;
  for (int i = 0; i < per_node; ++i) {
    std::vector<int> route;
    const int away = g[(i + per_node) % p];   // a GPU of another node
    f.route(g[i], away, route);
    nics.insert(route.front());
  }
  int channels = static_cast<int>(nics.size());
  if (spec.channels > 0) channels = std::min(spec.channels, per_node);
  std::vector<std::vector<int>> orders;
  for (int c = 0; c < channels; ++c) {
    std::vector<int> order(p);
    for (int i = 0; i < p; ++i) {
      const int block = i - i % per_node;
      order[i] = g[block + (i % per_node + c) % per_node];
    }
    orders.push_back(std::move(order));
  }
  return orders;
}

}  // namespace

CollectivePlan plan_collective(const Fabric& f, const CollectiveSpec& spec, Fidelity fidelity) {
  check_spec(f, spec);
  const Topology& topo = f.topology();
  CollectivePlan plan;
  plan.op = spec.op;
  plan.algorithm = spec.algorithm == Algorithm::automatic ? choose_algorithm(f, spec) : spec.algorithm;
  plan.ranks = static_cast<int>(spec.group.size());
  plan.bytes = spec.bytes;
  const int p = plan.ranks;
  if (plan.algorithm == Algorithm::nvls && !(topo.intra.fabric == IntraFabric::nvswitch && topo.intra.nvls))
    throw std::invalid_argument("collective: nvls needs an NVSwitch topology with intra.nvls: true ('" + topo.name +
                                "' has none)");

  const std::vector<std::vector<int>> orders = channel_orders(f, spec, plan.algorithm);
  const int channels = static_cast<int>(orders.size());
  const double channel_bytes = spec.bytes / channels;
  const bool closed = plan.algorithm == Algorithm::ring && closed_form_ring(spec.op) && fidelity == Fidelity::flow;
  std::shared_ptr<const Schedule> schedule;
  if (closed) {
    plan.chunk_payload = channel_bytes / p;
    plan.critical_rounds = p > 1 ? ring_rounds(spec.op, p) : 0;
  } else {
    ScheduleRequest req;
    req.op = spec.op;
    req.algorithm = plan.algorithm;
    req.ranks = p;
    req.root = spec.root;
    // Pipelined algorithms (tree, chain, NVLS) cut the data into chunks of about kPipelineChunk, as
    // NCCL's chunked steps do: a small message is one chunk, so it pays the tree's depth in step
    // latencies once instead of once per chunk.
    req.pipeline = static_cast<int>(std::clamp(std::ceil(channel_bytes / kPipelineChunk), 1.0, double(kMaxPipeline)));
    if (plan.algorithm == Algorithm::hierarchical) req.ranks_per_node = ranks_per_node(f, spec.group);
    schedule = std::make_shared<const Schedule>(make_schedule(req));
    plan.chunk_payload = chunk_payload(*schedule, channel_bytes);
    plan.critical_rounds = critical_rounds(*schedule);
  }

  for (int c = 0; c < channels; ++c) {
    ChannelPlan ch;
    ch.schedule = schedule;
    ch.endpoint = orders[c];
    if (closed) {
      if (p > 1)
        for (int i = 0; i < p; ++i)
          plan.edges.push_back({ch.endpoint[i], ch.endpoint[(i + 1) % p], plan.critical_rounds * plan.chunk_payload,
                                plan.critical_rounds, c, 0});
    } else {
      for (int extra = p; extra < schedule->participants; ++extra) ch.endpoint.push_back(helper_endpoint(f, spec));
      std::map<std::pair<int, int>, FlowEdge> by_pair;
      std::map<std::pair<int, int>, int> last_round;
      for (size_t r = 0; r < schedule->rounds.size(); ++r)
        for (const Transfer& t : schedule->rounds[r].transfers) {
          const int src = ch.endpoint[t.src], dst = ch.endpoint[t.dst];
          if (src == dst) continue;
          FlowEdge& e = by_pair[{src, dst}];
          e.src = src;
          e.dst = dst;
          e.channel = c;
          e.payload += plan.chunk_payload;
          auto [it, fresh] = last_round.try_emplace({src, dst}, static_cast<int>(r));
          if (fresh) {
            e.active_rounds = 1;
          } else if (it->second != static_cast<int>(r)) {
            ++e.active_rounds;
            it->second = static_cast<int>(r);
          }
        }
      for (auto& [key, e] : by_pair) plan.edges.push_back(e);
    }
    plan.channels.push_back(std::move(ch));
  }
  std::sort(plan.edges.begin(), plan.edges.end(), [](const FlowEdge& a, const FlowEdge& b) {
    return std::make_tuple(a.channel, a.src, a.dst) < std::make_tuple(b.channel, b.src, b.dst);
  });

  // Static max-min estimate of each edge's share of its bottleneck link.
  std::map<int, int> flows_on_link;
  std::vector<std::vector<int>> routes(plan.edges.size());
  for (size_t i = 0; i < plan.edges.size(); ++i) {
    f.route(plan.edges[i].src, plan.edges[i].dst, routes[i]);
    for (int l : routes[i]) ++flows_on_link[l];
  }
  std::vector<double> share(plan.edges.size(), kInf);
  for (size_t i = 0; i < plan.edges.size(); ++i)
    for (int l : routes[i]) share[i] = std::min(share[i], f.links()[l].bandwidth / flows_on_link[l]);

  // Per-rank caps (channel ramp-up floor, LL bandwidth, NVLS) are split over the rank's out-edges.
  std::map<int, double> sent;
  std::map<int, int> out_degree;
  for (const FlowEdge& e : plan.edges) {
    sent[e.src] += e.payload;
    ++out_degree[e.src];
  }
  double most_sent = 0;
  for (int g : spec.group) most_sent = std::max(most_sent, sent[g]);
  // NVLS: nvls_bandwidth is the bus bandwidth the switch reduction reaches, so each rank's payload
  // rate is capped at nvls_bandwidth / busbw factor.
  double algorithm_cap = kInf;
  if (plan.algorithm == Algorithm::nvls && topo.intra.nvls_bandwidth > 0)
    algorithm_cap = topo.intra.nvls_bandwidth / busbw_factor(spec.op, p);

  bool first = true;
  for (const ProtocolCost& proto : candidate_protocols(topo)) {
    const ProtocolSpec* ps = protocol_spec(topo, proto.name);
    double rank_cap = algorithm_cap;   // payload B/s per rank
    if (ps && ps->max_bandwidth > 0) rank_cap = std::min(rank_cap, ps->max_bandwidth);
    if (ps && ps->min_time > 0 && most_sent > 0) rank_cap = std::min(rank_cap, most_sent / ps->min_time);
    const double wire_scale = 1.0 / proto.efficiency;
    auto step_latency = [&](int src, int dst) {
      return f.latency(src, dst) + (f.inter_node(src, dst) ? proto.inter_extra : proto.intra_extra);
    };

    double path = 0;
    for (const ChannelPlan& ch : plan.channels) {
      if (closed) {
        std::vector<double> hop(p);
        for (int i = 0; i < p; ++i) hop[i] = step_latency(ch.endpoint[i], ch.endpoint[(i + 1) % p]);
        if (p > 1) path = std::max(path, ring_path_latency(hop, plan.critical_rounds));
      } else {
        path = std::max(path, schedule_path_latency(*ch.schedule, [&](const Transfer& t) {
                          return step_latency(ch.endpoint[t.src], ch.endpoint[t.dst]);
                        }));
      }
    }

    double bandwidth_term = 0;
    std::vector<double> caps(plan.edges.size(), 0.0);
    for (size_t i = 0; i < plan.edges.size(); ++i) {
      const FlowEdge& e = plan.edges[i];
      // A rank's cap is shared by its out-edges; an NVSwitch multicasts, each port at the rank rate.
      const bool helper = std::find(spec.group.begin(), spec.group.end(), e.src) == spec.group.end();
      const double payload_cap = helper ? rank_cap : rank_cap / out_degree[e.src];
      caps[i] = std::isfinite(payload_cap) ? payload_cap * wire_scale : 0;
      const double rate = std::min(share[i], caps[i] > 0 ? caps[i] : kInf);
      const double stretch = plan.critical_rounds > 0 ? double(plan.critical_rounds) / e.active_rounds : 1.0;
      bandwidth_term = std::max(bandwidth_term, e.payload * wire_scale / rate * stretch);
    }
    const double estimate = proto.fixed_latency + path + bandwidth_term;
    if (first || estimate < plan.estimate) {
      plan.protocol = proto;
      plan.path_latency = path;
      plan.wire_scale = wire_scale;
      plan.estimate = estimate;
      for (size_t i = 0; i < plan.edges.size(); ++i) plan.edges[i].rate_cap = caps[i];
      first = false;
    }
  }
  if (fidelity == Fidelity::flow) merge_parallel_edges(plan.edges);
  return plan;
}

}  // namespace tpsim::engine
