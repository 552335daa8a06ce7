// Planning one resolved collective: per-channel schedules (or the ring's or the all-to-all's closed
// form), endpoints, per-edge totals and the phases flow fidelity runs (see collective_plan.hpp).
#include "engine/collective_plan.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <stdexcept>
#include <tuple>

namespace tpsim::engine {

namespace {

// Ring all-reduce / all-gather / reduce-scatter: every round moves one chunk on every ring edge,
// so the whole schedule is one phase and edge i -> i+1 carries 2(p-1) (or p-1) chunks of S/p.
bool closed_form_ring(CollectiveOp op) {
  return op == CollectiveOp::all_reduce || op == CollectiveOp::all_gather || op == CollectiveOp::reduce_scatter;
}

int ring_rounds(CollectiveOp op, int p) { return op == CollectiveOp::all_reduce ? 2 * (p - 1) : p - 1; }

// Direct all-to-all in closed form (collective_plan.hpp): the edges of one channel carrying
// `chunk` bytes per transfer, as halves through the switches, merged per port and route class.
void all_to_all_halves(const Fabric& f, const std::vector<int>& group, double chunk, int channel,
                       std::vector<FlowEdge>& edges) {
  const int p = static_cast<int>(group.size());
  if (p < 2) return;
  std::vector<int> on_node(f.topology().nodes, 0), on_leaf(f.leaves(), 0);
  std::vector<std::vector<int>> members(f.topology().nodes);
  for (int g : group) {
    ++on_node[f.node_of(g)];
    ++on_leaf[f.leaf_of(f.node_of(g))];
    members[f.node_of(g)].push_back(g);
  }
  auto half = [&](int src, int dst, int pairs) {
    FlowEdge e{src, dst, pairs * chunk, channel, 0};
    e.pairs = pairs;
    edges.push_back(e);
  };
  for (int a : group) {
    const int node = f.node_of(a), leaf = f.leaf_of(node);
    // NVLink: through the node's NVSwitch, or one flow per pair where there is none.
    if (const int local = on_node[node] - 1; local > 0) {
      if (const int sw = f.switch_endpoint(node); sw >= 0) {
        half(a, sw, local);
        half(sw, a, local);
      } else {
        for (int b : members[node])
          if (b != a) half(a, b, 1);
      }
    }
    // Network: peers under the same leaf, and under the other leaves (their halves cross the spine;
    // under a dragonfly's minimal routing they go to the group's gateway, and from gateway to
    // gateway over the global link of each pair of groups).
    if (const int same = on_leaf[leaf] - on_node[node]; same > 0) {
      half(a, f.network_endpoint(leaf), same);
      half(f.network_endpoint(leaf), a, same);
    }
    if (const int other = p - on_leaf[leaf]; other > 0) {
      // A global link per pair of groups: through the group's gateway, the link between gateways
      // after the loop.
      const int elsewhere = f.pair_links() ? f.gateway_endpoint(leaf) : f.network_endpoint((leaf + 1) % f.leaves());
      half(a, elsewhere, other);
      half(elsewhere, a, other);
    }
  }
  if (f.pair_links())
    for (int from = 0; from < f.leaves(); ++from)
      for (int to = 0; to < f.leaves(); ++to)
        if (from != to && on_leaf[from] > 0 && on_leaf[to] > 0)
          half(f.gateway_endpoint(from), f.gateway_endpoint(to), on_leaf[from] * on_leaf[to]);
}

bool rooted(CollectiveOp op) { return op == CollectiveOp::broadcast || op == CollectiveOp::reduce; }

// The NVSwitch of the group's node: the helper participant of in-switch reduction (NVLS).
int helper_endpoint(const Fabric& f, const std::vector<int>& group) {
  const int node = f.node_of(group[0]);
  const int sw = f.switch_endpoint(node);
  const bool one_node = std::all_of(group.begin(), group.end(), [&](int g) { return f.node_of(g) == node; });
  if (sw < 0 || !one_node)
    throw std::invalid_argument("collective: in-switch reduction needs all of the group on one NVSwitch node");
  return sw;
}

// NVLS-tree's switch roles: node n's is the NVSwitch of the node holding channel positions
// n*L .. n*L+L-1 (`endpoint`: the channel's GPUs in its order), which must all sit on that node.
int node_switch(const Fabric& f, const std::vector<int>& endpoint, int per, int n) {
  const int node = f.node_of(endpoint[size_t(n) * per]);
  for (int l = 0; l < per; ++l)
    if (f.node_of(endpoint[size_t(n) * per + l]) != node)
      throw std::invalid_argument("collective: nvls_tree needs the group laid out node by node, " +
                                  std::to_string(per) + " GPUs of one node after another");
  const int sw = f.switch_endpoint(node);
  if (sw < 0) throw std::invalid_argument("collective: nvls_tree needs an NVSwitch in every node");
  return sw;
}

// The algorithms that apply only to some groups say why not, in one line, before anything is built.
void check_group(const Fabric& f, const CollectiveSpec& spec) {
  const Topology& topo = f.topology();
  const Algorithm a = spec.instance.algorithm;
  const std::vector<int>& g = spec.group;
  const std::string name = to_string(a);
  if ((a == Algorithm::nvls || a == Algorithm::nvls_tree) && !(topo.intra.fabric == IntraFabric::nvswitch && topo.intra.nvls))
    throw std::invalid_argument("collective: " + name + " needs an NVSwitch topology with intra.nvls: true ('" +
                                topo.name + "' has none)");
  std::set<int> nodes;
  for (int gpu : g) nodes.insert(f.node_of(gpu));
  if ((a == Algorithm::one_shot || a == Algorithm::two_shot) && nodes.size() > 1)
    throw std::invalid_argument("collective: " + name + " reads peers' buffers through peer memory inside one node; "
                                "this group of " + std::to_string(g.size()) + " GPUs spans " +
                                std::to_string(nodes.size()) + " nodes");
  if (a == Algorithm::pat && nodes.size() != g.size())
    throw std::invalid_argument("collective: pat runs with one GPU per node (NCCL 2.23+); this group of " +
                                std::to_string(g.size()) + " GPUs spans " + std::to_string(nodes.size()) +
                                (nodes.size() == 1 ? " node" : " nodes"));
  if (a == Algorithm::nvls_tree && nodes.size() < 2)
    throw std::invalid_argument("collective: nvls_tree joins nodes by a tree; on one node use nvls");
  if (a == Algorithm::nvls_tree && spec.instance.ranks_per_node < 2)
    throw std::invalid_argument("collective: nvls_tree needs at least 2 GPUs per node (the in-switch reduction)");
}

// Bytes one transfer carries: the schedule's own notion of a chunk of the nccl-tests size.
double chunk_payload(const Schedule& s, double bytes) {
  const std::vector<double> sent = bytes_sent(s, bytes);
  std::vector<int> count(s.participants, 0);
  for (const Round& round : s.rounds)
    for (const Transfer& t : round.transfers)
      if (t.src != t.dst) ++count[t.src];   // as bytes_sent: a local read sends nothing
  for (int i = 0; i < s.participants; ++i)
    if (count[i] > 0) return sent[i] / count[i];
  return 0;
}

void check_orders(const CollectiveInstance& inst, int p) {
  if (inst.channel_orders.empty()) throw std::logic_error("collective plan: instance has no channels");
  for (const std::vector<int>& order : inst.channel_orders) {
    std::vector<char> seen(p, 0);
    bool ok = static_cast<int>(order.size()) == p;
    for (int i = 0; ok && i < p; ++i) ok = order[i] >= 0 && order[i] < p && !seen[order[i]]++;
    if (!ok) throw std::logic_error("collective plan: a channel order is not a permutation of the group's positions");
  }
}

using EdgeKey = std::tuple<int, int, int>;   // (channel, src, dst)

// Cuts the channels' rounds into phases: round r joins the running phase when its (channel, from,
// to) participant edges and their chunk counts equal those of round r-1 (a transfer between
// participants on one endpoint is a local copy: no edge). O(transfers log transfers).
std::vector<Phase> cut_phases(const std::vector<ChannelPlan>& channels, int rounds, double chunk) {
  std::vector<Phase> phases;
  std::vector<EdgeKey> keys;
  std::vector<std::pair<EdgeKey, int>> signature, previous;
  for (int r = 0; r < rounds; ++r) {
    keys.clear();
    for (int c = 0; c < static_cast<int>(channels.size()); ++c) {
      const ChannelPlan& ch = channels[c];
      if (r >= static_cast<int>(ch.schedule->rounds.size())) continue;
      for (const Transfer& t : ch.schedule->rounds[r].transfers)
        if (ch.endpoint[t.src] != ch.endpoint[t.dst]) keys.emplace_back(c, t.src, t.dst);
    }
    std::sort(keys.begin(), keys.end());
    signature.clear();
    for (const EdgeKey& k : keys) {
      if (!signature.empty() && signature.back().first == k) ++signature.back().second;
      else signature.emplace_back(k, 1);
    }
    if (phases.empty() || signature != previous) {
      Phase ph;
      ph.first = r;
      for (const auto& [k, n] : signature) {
        const auto [c, from, to] = k;
        ph.edges.push_back({channels[c].endpoint[from], channels[c].endpoint[to], 0.0, c, 0, 0, n});
        ph.edges.back().from = from;
        ph.edges.back().to = to;
      }
      phases.push_back(std::move(ph));
      previous.swap(signature);
    }
    Phase& ph = phases.back();
    ++ph.rounds;
    for (size_t i = 0; i < ph.edges.size(); ++i) ph.edges[i].payload += previous[i].second * chunk;
  }
  return phases;
}

// Per (channel, src, dst) totals over all phases, sorted.
std::vector<FlowEdge> total_edges(const std::vector<Phase>& phases) {
  std::map<EdgeKey, double> total;
  for (const Phase& ph : phases)
    for (const FlowEdge& e : ph.edges) total[{e.channel, e.src, e.dst}] += e.payload;
  std::vector<FlowEdge> edges;
  edges.reserve(total.size());
  for (const auto& [k, bytes] : total) edges.push_back({std::get<1>(k), std::get<2>(k), bytes, std::get<0>(k), 0});
  return edges;
}

// This process's cap on memory mappings (vm.max_map_count; 0 when unreadable: nothing is refused).
long max_memory_mappings() {
  std::ifstream in("/proc/sys/vm/max_map_count");
  long n = 0;
  return in >> n && n > 0 ? n : 0;
}

// A closed-form plan's single phase: its edges in (channel, src, dst) order, as the built plans'.
void add_only_phase(CollectivePlan& plan, Phase ph) {
  std::sort(ph.edges.begin(), ph.edges.end(), [](const FlowEdge& a, const FlowEdge& b) {
    return std::tie(a.channel, a.src, a.dst) < std::tie(b.channel, b.src, b.dst);
  });
  plan.edges = ph.edges;
  if (!ph.edges.empty()) plan.phases.push_back(std::move(ph));
}

}  // namespace

const FlowEdge* phase_edge(const Phase& ph, int channel, int from, int to) {
  auto it = std::lower_bound(ph.edges.begin(), ph.edges.end(), std::make_tuple(channel, from, to),
                             [](const FlowEdge& x, const std::tuple<int, int, int>& k) {
                               return std::make_tuple(x.channel, from_actor(x), to_actor(x)) < k;
                             });
  return it != ph.edges.end() && it->channel == channel && from_actor(*it) == from && to_actor(*it) == to ? &*it : nullptr;
}

double step_messages_in_flight(const CollectivePlan& plan) {
  constexpr int kWindow = 9;   // a round's sends and the receives of the 8 rounds after it
  double total = 0;
  std::vector<double> per_round;
  for (const ChannelPlan& ch : plan.channels) {
    if (!ch.schedule) continue;
    per_round.clear();
    for (const Round& round : ch.schedule->rounds) {
      double n = 0;
      for (const Transfer& t : round.transfers) n += ch.endpoint[t.src] != ch.endpoint[t.dst];
      per_round.push_back(n);
    }
    double window = 0, most = 0;
    for (size_t r = 0; r < per_round.size(); ++r) {
      window += per_round[r] - (r >= kWindow ? per_round[r - kWindow] : 0);
      most = std::max(most, window);
    }
    total += most;
  }
  return total;
}

void check_step_memory(const CollectivePlan& plan, double memory) {
  const double messages = step_messages_in_flight(plan), need = messages * kStepBytesPerMessage;
  if (memory <= 0 || need <= memory) return;
  constexpr double GiB = 1024.0 * 1024 * 1024;
  char line[400];
  std::snprintf(line, sizeof line,
                "collective: %s over %d GPUs at step fidelity would hold %.0f messages in flight, ~%.1f GiB of "
                "SimGrid state, more than this machine's %.1f GiB of memory; time it at flow fidelity",
                to_string(plan.op), plan.ranks, messages, need / GiB, memory / GiB);
  throw std::invalid_argument(line);
}

long collective_actors(const CollectivePlan& plan, Fidelity fidelity) {
  long actors = 0;
  if (fidelity == Fidelity::step && plan.channels[0].schedule) {
    for (const ChannelPlan& ch : plan.channels) actors += ch.schedule->participants;
    return actors;
  }
  if (plan.phases.size() == 1) {   // the driver, and a sender and a receiver per group of comms
    long comms = 0;
    for (const FlowEdge& e : plan.phases[0].flows) comms += e.width;
    return 1 + 2 * ((comms + kCommsPerSender - 1) / kCommsPerSender);
  }
  std::set<std::pair<int, int>> ends;   // (channel, participant): one flow actor each
  for (const Phase& ph : plan.phases)
    for (const FlowEdge& e : ph.edges) ends.insert({e.channel, from_actor(e)}), ends.insert({e.channel, to_actor(e)});
  return static_cast<long>(ends.size());
}

void check_actor_budget(const CollectivePlan& plan, Fidelity fidelity, long max_mappings) {
  const long actors = collective_actors(plan, fidelity);
  const long allowed = (max_mappings - kMappingsReserved) / kMappingsPerActor;
  if (max_mappings <= 0 || actors <= allowed) return;
  char line[500];
  std::snprintf(line, sizeof line,
                "collective: %s %s over %d GPUs at %s fidelity runs %ld SimGrid actors (one per channel and participant), "
                "more than the ~%ld this machine can map (vm.max_map_count %ld, %ld mappings per actor stack); "
                "use fewer GPUs, another --algo, or raise vm.max_map_count",
                to_string(plan.op), to_string(plan.algorithm), plan.ranks, fidelity == Fidelity::step ? "step" : "flow",
                actors, std::max(0L, allowed), max_mappings, kMappingsPerActor);
  throw std::invalid_argument(line);
}

void check_collective(const Fabric& f, const CollectiveSpec& spec) {
  if (spec.group.empty()) throw std::invalid_argument("collective: empty group");
  std::vector<char> seen(f.gpus(), 0);
  for (int g : spec.group) {
    if (g < 0 || g >= f.gpus())
      throw std::invalid_argument("collective: GPU " + std::to_string(g) + " is not in the topology (it has " +
                                  std::to_string(f.gpus()) + " GPUs)");
    if (seen[g]++) throw std::invalid_argument("collective: GPU " + std::to_string(g) + " appears twice in the group");
  }
  if (!(spec.bytes >= 0) || !std::isfinite(spec.bytes)) throw std::invalid_argument("collective: size must be >= 0 bytes");
  const int p = static_cast<int>(spec.group.size());
  if (rooted(spec.op) && (spec.root < 0 || spec.root >= p))
    throw std::invalid_argument("collective: root " + std::to_string(spec.root) + " is outside the group of " +
                                std::to_string(p));
}

CollectivePlan plan_shape(const Fabric& f, const CollectiveSpec& spec, Fidelity fidelity) {
  check_collective(f, spec);
  const CollectiveInstance& inst = spec.instance;
  if (!inst.resolved()) throw std::logic_error("collective plan: the instance is not resolved (resolve_collective)");
  const int p = static_cast<int>(spec.group.size());
  check_orders(inst, p);
  check_group(f, spec);
  CollectivePlan plan;
  plan.op = spec.op;
  plan.algorithm = inst.algorithm;
  plan.instance = inst;
  plan.ranks = p;
  plan.bytes = spec.bytes;
  const int channels = static_cast<int>(inst.channel_orders.size());
  const double channel_bytes = spec.bytes / channels;
  const bool a2a_form = inst.algorithm == Algorithm::direct && spec.op == CollectiveOp::all_to_all;
  plan.closed_form = ((inst.algorithm == Algorithm::ring && closed_form_ring(spec.op)) || a2a_form) &&
                     fidelity == Fidelity::flow && spec.closed_form;

  if (plan.closed_form && a2a_form) {
    plan.chunk_payload = channel_bytes / p;
    plan.rounds = p > 1 ? 1 : 0;
    Phase ph;
    ph.rounds = plan.rounds;
    for (int c = 0; c < channels; ++c) {
      ChannelPlan ch;
      for (int pos : inst.channel_orders[c]) ch.endpoint.push_back(spec.group[pos]);
      all_to_all_halves(f, spec.group, plan.chunk_payload, c, ph.edges);
      plan.channels.push_back(std::move(ch));
    }
    add_only_phase(plan, std::move(ph));
    return plan;
  }

  if (plan.closed_form) {
    plan.chunk_payload = channel_bytes / p;
    plan.rounds = p > 1 ? ring_rounds(spec.op, p) : 0;
    Phase ph;
    ph.rounds = plan.rounds;
    for (int c = 0; c < channels; ++c) {
      ChannelPlan ch;
      for (int pos : inst.channel_orders[c]) ch.endpoint.push_back(spec.group[pos]);
      if (p > 1)
        for (int i = 0; i < p; ++i)
          ph.edges.push_back({ch.endpoint[i], ch.endpoint[(i + 1) % p], plan.rounds * plan.chunk_payload, c, 0});
      plan.channels.push_back(std::move(ch));
    }
    add_only_phase(plan, std::move(ph));
    return plan;
  }

  // One schedule per distinct root position (rooted ops put the root where the channel has it).
  std::map<int, std::shared_ptr<const Schedule>> by_root;
  for (int c = 0; c < channels; ++c) {
    const std::vector<int>& order = inst.channel_orders[c];
    const ScheduleRequest req = channel_request(spec.op, inst, p, order, spec.root);
    auto [it, fresh] = by_root.try_emplace(req.root, nullptr);
    if (fresh) it->second = std::make_shared<const Schedule>(make_schedule(req));
    ChannelPlan ch;
    ch.schedule = it->second;
    for (int pos : order) ch.endpoint.push_back(spec.group[pos]);
    for (int extra = p; extra < ch.schedule->participants; ++extra) {
      if (inst.algorithm != Algorithm::nvls_tree) {
        ch.endpoint.push_back(helper_endpoint(f, spec.group));
        continue;
      }
      const HelperPlace at = nvls_tree_helper(p, inst.ranks_per_node, extra);
      ch.endpoint.push_back(at.node >= 0 ? node_switch(f, ch.endpoint, inst.ranks_per_node, at.node) : ch.endpoint[at.rank]);
    }
    plan.rounds = std::max(plan.rounds, static_cast<int>(ch.schedule->rounds.size()));
    plan.channels.push_back(std::move(ch));
  }
  // Refuse a step plan that cannot fit before cutting its phases (a map over all its edges).
  if (fidelity == Fidelity::step) check_step_memory(plan, physical_memory());
  plan.chunk_payload = chunk_payload(*plan.channels[0].schedule, channel_bytes);
  plan.phases = cut_phases(plan.channels, plan.rounds, plan.chunk_payload);
  plan.phases.erase(std::remove_if(plan.phases.begin(), plan.phases.end(), [](const Phase& ph) { return ph.edges.empty(); }),
                    plan.phases.end());
  plan.edges = total_edges(plan.phases);
  return plan;
}

CollectivePlan plan_collective(const Fabric& f, const CollectiveSpec& spec, Fidelity fidelity) {
  CollectivePlan plan = plan_shape(f, spec, fidelity);
  for (const ProtocolCost& proto : candidate_protocols(f.topology(), spec.instance.algorithm))
    if (proto.name == spec.instance.protocol || (spec.instance.protocol.empty() && proto.name == "ideal")) {
      price(plan, f, proto);   // sets the rate caps that decide a one-phase plan's actors
      check_actor_budget(plan, fidelity, max_memory_mappings());
      return plan;
    }
  throw std::invalid_argument("collective: protocol '" + spec.instance.protocol + "' is not one topology '" +
                              f.topology().name + "' runs " + to_string(spec.instance.algorithm) + " with");
}

}  // namespace tpsim::engine
