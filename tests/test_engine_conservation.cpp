// Conservation: bytes are neither created nor lost between senders and receivers.
//   Schedules, for every algorithm x operation x group size 2, 3, 8, 16 (1 and 2 channels, rooted
//   operations at both ends): per round and in total the bytes sent equal the bytes received;
//   bytes_sent's accounting and flow_view's closed-form edges agree with a count made from the
//   transfers, on the sending and on the receiving side; every output chunk a rank did not start
//   with arrives.
//   The engine, one collective at a time on an NVSwitch node with NVLS, a PCIe box with two
//   switches and a fat tree across leaves, at both fidelities: the bytes the Timeline puts on the
//   links leaving GPUs equal the bytes on the links arriving at GPUs (a NIC egress for every NIC
//   ingress, a leaf's spine uplink for every downlink, a PCIe switch's uplink for every downlink),
//   and both equal the schedules' bytes times the protocol's wire factor.
#include <doctest/doctest.h>

#include "relative.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <regex>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "tpsim/collective.hpp"
#include "tpsim/engine.hpp"
#include "tpsim/spec.hpp"

#include "all_collectives.hpp"

using namespace tpsim;

namespace {


// The nccl-tests size in chunks, as collective.hpp defines it: the largest input or output list.
int size_chunks(const Schedule& s) {
  size_t n = 0;
  for (int r = 0; r < s.ranks; ++r) n = std::max({n, s.input_chunks[size_t(r)].size(), s.output_chunks[size_t(r)].size()});
  return int(n);
}

// The schedule checks for one request; false when the request is not a supported combination.
bool check_schedule(const ScheduleRequest& req) {
  Schedule s;
  try {
    s = make_schedule(req);
  } catch (const std::invalid_argument&) {
    return false;
  }
  INFO(to_string(req.op) << "/" << to_string(req.algorithm) << " p=" << req.ranks << " channels=" << req.channels
                         << " root=" << req.root << " per_node=" << req.ranks_per_node);
  REQUIRE(s.ranks == req.ranks);
  REQUIRE(s.participants >= s.ranks);
  const int n = size_chunks(s);
  REQUIRE(n > 0);
  const double S = 3.0 * 5 * 7 * (1 << 20);   // bytes; any size: the sums below scale with it
  const double chunk = S / n;

  std::vector<double> sent(size_t(s.participants), 0), received(size_t(s.participants), 0);
  size_t transfers = 0;
  for (size_t r = 0; r < s.rounds.size(); ++r) {
    std::vector<double> round_sent(size_t(s.participants), 0), round_received(size_t(s.participants), 0);
    size_t round_transfers = 0;
    for (const Transfer& t : s.rounds[r].transfers) {
      REQUIRE(t.src >= 0);
      REQUIRE(t.src < s.participants);
      REQUIRE(t.dst >= 0);
      REQUIRE(t.dst < s.participants);
      REQUIRE(t.src_chunk >= 0);
      REQUIRE(t.src_chunk < s.chunks);
      REQUIRE(t.dst_chunk >= 0);
      REQUIRE(t.dst_chunk < s.chunks);
      if (t.src == t.dst) continue;   // a local read (one-shot's own buffer in its sum): nothing moves
      round_sent[size_t(t.src)] += chunk;
      round_received[size_t(t.dst)] += chunk;
      ++transfers, ++round_transfers;
    }
    CAPTURE(r);
    const double out = std::accumulate(round_sent.begin(), round_sent.end(), 0.0);
    const double in = std::accumulate(round_received.begin(), round_received.end(), 0.0);
    CHECK(out == rel(in, 1e-12));
    CHECK(out == rel(double(round_transfers) * chunk, 1e-12));
    for (size_t q = 0; q < sent.size(); ++q) sent[q] += round_sent[q], received[q] += round_received[q];
  }
  REQUIRE(transfers > 0);   // every supported combination with p >= 2 moves data
  const double total_sent = std::accumulate(sent.begin(), sent.end(), 0.0);
  CHECK(total_sent == rel(std::accumulate(received.begin(), received.end(), 0.0), 1e-12));

  // The library's per-sender accounting against the count from the transfers.
  const std::vector<double> lib = bytes_sent(s, S);
  REQUIRE(lib.size() == sent.size());
  for (size_t q = 0; q < sent.size(); ++q) CHECK(lib[q] == rel(sent[q], 1e-12));
  CHECK(chunk_bytes(s, S) == rel(*std::max_element(sent.begin(), sent.end()), 1e-12));

  // flow_view (a closed form for rings, trees and hierarchical): the same chunks leave each
  // participant and arrive at each participant; edges sum to the transfers.
  const FlowView f = flow_view(req);
  REQUIRE(f.participants == s.participants);
  CHECK(f.size_chunks == n);
  std::vector<double> f_out(size_t(s.participants), 0), f_in(size_t(s.participants), 0);
  double f_total = 0;
  for (const Edge& e : f.edges) {
    f_out[size_t(e.src)] += e.chunks * chunk;
    f_in[size_t(e.dst)] += e.chunks * chunk;
    f_total += e.chunks;
  }
  CHECK(f_total == double(transfers));
  for (size_t q = 0; q < sent.size(); ++q) {
    CHECK(f_out[q] == rel(sent[q], 1e-12));
    CHECK(f_in[q] == rel(received[q], 1e-12));
  }

  // Every output chunk a rank did not hold as input is written into it by some transfer, so it
  // receives at least those bytes.
  std::vector<std::set<int>> written(size_t(s.participants));
  for (const Round& round : s.rounds)
    for (const Transfer& t : round.transfers) written[size_t(t.dst)].insert(t.dst_chunk);
  for (int r = 0; r < s.ranks; ++r) {
    const auto& in = s.input_chunks[size_t(r)];
    int missing = 0;
    for (int c : s.output_chunks[size_t(r)])
      if (std::find(in.begin(), in.end(), c) == in.end()) {
        CAPTURE(r);
        CAPTURE(c);
        CHECK(written[size_t(r)].count(c) == 1);
        ++missing;
      }
    CHECK(received[size_t(r)] >= missing * chunk * (1 - 1e-12));
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Engine side.

// One collective on `group`, every member of it running the op; nobody else does anything.
ProgramSet one_collective(const Topology& t, CollectiveOp op, const std::vector<int>& group, int64_t bytes,
                          const CollectiveInstance& instance, int root) {
  ProgramSet ps;
  ps.ranks.resize(size_t(t.total_gpus()));
  for (int r = 0; r < t.total_gpus(); ++r) ps.ranks[size_t(r)].rank = r;
  for (int g : group) {
    Op o;
    o.kind = OpKind::collective;
    o.name = "conserved";
    o.stream = Stream::tp_comm;
    o.collective.op = op;
    o.collective.algorithm = instance.algorithm;
    o.collective.group = group;
    o.collective.bytes = bytes;
    o.collective.root = root;
    o.collective.instance = instance;
    ps.ranks[size_t(g)].ops.push_back(o);
  }
  return ps;
}

// Bytes on the links of a Timeline, by kind and direction.
struct LinkTotals {
  double gpu_up = 0, gpu_down = 0;       // a GPU's port into / out of its node's fabric (NVLink, PCIe)
  double nic_up = 0, nic_down = 0;       // node -> network / network -> node
  double spine_up = 0, spine_down = 0;   // leaf -> spine / spine -> leaf
  double global_up = 0, global_down = 0; // a dragonfly group's global links out / in (adaptive)
  double global_pair = 0;                // on the global links between two groups (minimal)
  double pcie_up = 0, pcie_down = 0;     // PCIe switch -> CPU / CPU -> PCIe switch
  int unknown = 0;
};
LinkTotals link_totals(const Timeline& tl) {
  static const std::regex gpu(R"(node\d+\.gpu\d+\.(nvlink|pcie)\.(up|down))"), nic(R"(node\d+\.nic\d+\.(up|down))"),
      spine(R"(leaf\d+\.spine\.(up|down))"), pcie(R"(node\d+\.pcie\d+\.(up|down))"),
      global(R"(group\d+\.global\.(up|down))"), pair(R"(group\d+to\d+\.global)");
  LinkTotals t;
  for (const LinkUse& l : tl.links) {
    const bool up = l.link.size() >= 3 && l.link.substr(l.link.size() - 3) == ".up";
    if (std::regex_match(l.link, gpu)) (up ? t.gpu_up : t.gpu_down) += l.bytes;
    else if (std::regex_match(l.link, nic)) (up ? t.nic_up : t.nic_down) += l.bytes;
    else if (std::regex_match(l.link, spine)) (up ? t.spine_up : t.spine_down) += l.bytes;
    else if (std::regex_match(l.link, pcie)) (up ? t.pcie_up : t.pcie_down) += l.bytes;
    else if (std::regex_match(l.link, global)) (up ? t.global_up : t.global_down) += l.bytes;
    else if (std::regex_match(l.link, pair)) t.global_pair += l.bytes;
    else ++t.unknown;
  }
  return t;
}

// What the schedules of the instance move, in payload bytes: out of GPUs into their node's fabric
// (to a GPU of the same node or to the node's NVSwitch), from the fabric into GPUs, from node to
// node; and the smallest transfer (its payload), for the rounding bound.
struct Expected {
  double gpu_out = 0, gpu_in = 0, inter_node = 0, smallest = 0;
  double to_switch = 0, from_switch = 0;   // NVLS: GPU -> NVSwitch, NVSwitch -> GPU
};
Expected expected_bytes(const Topology& t, CollectiveOp op, const std::vector<int>& group, double bytes,
                        const CollectiveInstance& inst, int root) {
  Expected e;
  e.smallest = bytes;
  const int p = int(group.size()), channels = int(inst.channel_orders.size());
  const auto node = [&](int gpu) { return gpu / t.gpus_per_node; };
  for (const std::vector<int>& order : inst.channel_orders) {
    const ScheduleRequest req = channel_request(op, inst, p, order, root);
    const Schedule s = make_schedule(req);
    const double chunk = bytes / channels / size_chunks(s);
    e.smallest = std::min(e.smallest, chunk);
    // Participant -> GPU; helpers (participant >= p) on the NVSwitch are -1; NVLS-tree's head
    // roles stand on their GPU.
    const auto gpu = [&](int q) {
      if (q < p) return group[size_t(order[size_t(q)])];
      if (inst.algorithm != Algorithm::nvls_tree) return -1;
      const HelperPlace at = nvls_tree_helper(p, inst.ranks_per_node, q);
      return at.rank >= 0 ? group[size_t(order[size_t(at.rank)])] : -1;
    };
    for (const Edge& edge : schedule_edges(s)) {
      const int a = gpu(edge.src), b = gpu(edge.dst);
      const double moved = edge.chunks * chunk;
      if (a >= 0 && b >= 0 && node(a) != node(b)) {
        e.inter_node += moved;
        continue;
      }
      if (a >= 0) e.gpu_out += moved;   // to a GPU of its node or to the switch
      if (b >= 0) e.gpu_in += moved;
      if (b < 0) e.to_switch += moved;
      if (a < 0) e.from_switch += moved;
    }
  }
  return e;
}

double wire_factor(const Topology& t, const std::string& protocol) {
  for (const ProtocolSpec& p : t.collectives.protocols)
    if (p.name == protocol) return 1 / p.efficiency;
  // A topology without protocols runs "ideal"; one-shot and two-shot "custom": payload only.
  REQUIRE((protocol == "ideal" || protocol == "custom"));
  return 1;
}

struct EngineCase {
  std::string what;
  Topology topology;
  std::vector<int> group;
};

}  // namespace

TEST_CASE("schedules: bytes sent equal bytes received, per round and in total, for every algorithm and op") {
  int checked = 0;
  std::set<std::pair<int, int>> combos;   // (op, algorithm) supported for some size
  for (int p : {2, 3, 8, 16})
    for (CollectiveOp op : kOps)
      for (Algorithm a : kAlgorithms)
        for (int channels : {1, 2}) {
          const bool rooted = op == CollectiveOp::broadcast || op == CollectiveOp::reduce;
          for (int root : rooted ? std::vector<int>{0, p - 1} : std::vector<int>{0}) {
            const std::vector<int> per_node =
                a == Algorithm::hierarchical ? std::vector<int>{1, p % 2 == 0 ? p / 2 : p, p} : std::vector<int>{0};
            for (int per : per_node) {
              ScheduleRequest r;
              r.op = op;
              r.algorithm = a;
              r.ranks = p;
              r.channels = channels;
              r.root = root;
              r.ranks_per_node = per;
              if (check_schedule(r)) ++checked, combos.insert({int(op), int(a)});
            }
          }
        }
  // Every operation has at least the ring and direct; trees, halving-doubling, NVLS and
  // hierarchical add theirs (the combinations the builders refuse are tested elsewhere).
  // The loops reached the supported combinations (which ones are pinned, with the refusals, in
  // test_collectives_schedules.cpp): 24 (op, algorithm) pairs over the sizes, channels and roots.
  CHECK(checked >= 250);
  CHECK(combos.size() >= 20);
  for (CollectiveOp op : kOps) {
    INFO(to_string(op));
    CHECK(combos.count({int(op), int(Algorithm::ring)}) == 1);
    CHECK(combos.count({int(op), int(Algorithm::direct)}) == 1);
  }
  CHECK(combos.count({int(CollectiveOp::all_reduce), int(Algorithm::nvls)}) == 1);
  CHECK(combos.count({int(CollectiveOp::all_reduce), int(Algorithm::tree)}) == 1);
  CHECK(combos.count({int(CollectiveOp::all_reduce), int(Algorithm::halving_doubling)}) == 1);
  CHECK(combos.count({int(CollectiveOp::all_reduce), int(Algorithm::hierarchical)}) == 1);
}

TEST_CASE("engine: the bytes leaving GPUs equal the bytes arriving, and equal the schedules' bytes on the wire") {
  // One NVSwitch node with NVLS (in-switch reduction: a helper that receives and sends); a PCIe
  // box whose two switches meet at the CPU; four cluster nodes, two per leaf, so a group over
  // nodes 0 and 2 crosses the spine; the same four nodes as a dragonfly of one node per group
  // (minimal routing: a link per pair of groups; adaptive: a bundle per group), where every byte
  // between nodes crosses a global link once.
  const Topology dgx = load_topology("dgx-h100");
  const Topology pcie = load_topology("pcie-8x-l40s");
  const Topology tree =
      load_topology("cluster-h100-ndr", {{"topology.nodes", "4"}, {"topology.network.nodes_per_leaf", "2"}});
  Topology minimal = tree;
  minimal.network.kind = NetworkKind::dragonfly;
  minimal.network.nodes_per_leaf = 1;
  minimal.network.groups = 8;
  minimal.network.routing = GroupRouting::minimal;
  Topology adaptive = minimal;
  adaptive.network.routing = GroupRouting::adaptive;
  const std::vector<EngineCase> cases{
      {"dgx-h100, 8 GPUs", dgx, {0, 1, 2, 3, 4, 5, 6, 7}},
      {"dgx-h100, 3 GPUs", dgx, {1, 4, 6}},
      {"pcie-8x-l40s, 8 GPUs", pcie, {0, 1, 2, 3, 4, 5, 6, 7}},
      {"pcie-8x-l40s, 3 GPUs over both switches", pcie, {0, 5, 6}},
      {"cluster, 16 GPUs on nodes 0 and 2", tree, {0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23}},
      {"cluster, 2 GPUs across the spine", tree, {3, 19}},
      {"dragonfly (minimal), 16 GPUs on nodes 0 and 2", minimal, {0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23}},
      {"dragonfly (adaptive), 2 GPUs on nodes 0 and 2", adaptive, {3, 19}},
  };
  const int64_t bytes = int64_t(3) * 5 * 7 << 18;   // 27.5 MB
  int simulated = 0, with_switch = 0, with_nic = 0, with_spine = 0, with_pcie = 0, with_global = 0;
  for (const EngineCase& c : cases)
    for (CollectiveOp op : kOps)
      for (Algorithm a : kAlgorithms) {
        const int p = int(c.group.size());
        const int root = op == CollectiveOp::broadcast || op == CollectiveOp::reduce ? p - 1 : 0;
        if (op == CollectiveOp::send_recv && p != 2) continue;   // a pair
        CollectiveInstance inst;
        try {
          inst = resolve_collective(c.topology, op, a, c.group, double(bytes), root);
        } catch (const std::invalid_argument&) {
          continue;   // not offered on this group (NVLS off the switch, halving-doubling on 3, ...)
        }
        const Expected want = expected_bytes(c.topology, op, c.group, double(bytes), inst, root);
        const double wire = wire_factor(c.topology, inst.protocol);
        for (Fidelity fidelity : {Fidelity::step, Fidelity::flow}) {
          INFO(c.what << ": " << to_string(op) << " " << describe(inst)
                      << (fidelity == Fidelity::step ? " (step)" : " (flow)"));
          Timeline tl;
          try {
            tl = simulate(c.topology, one_collective(c.topology, op, c.group, bytes, inst, root), EngineOptions{fidelity});
          } catch (const std::invalid_argument& e) {
            FAIL("resolved but not simulated: " << e.what());
          }
          ++simulated;
          const LinkTotals got = link_totals(tl);
          CHECK(got.unknown == 0);
          // Every message is rounded to whole wire bytes (at most 1/2 byte each); the smallest
          // message is a transfer's payload times the wire factor, so no total is off by more
          // than 1/2 / (smallest * wire) relative.
          const double tol = 0.5 / (want.smallest * wire);
          // Leaving = arriving: a NIC egress for every ingress, spine and PCIe uplinks likewise.
          CHECK(got.nic_up == rel(got.nic_down, 1e-12));
          CHECK(got.spine_up == rel(got.spine_down, 1e-12));
          CHECK(got.pcie_up == rel(got.pcie_down, 1e-12));
          CHECK(got.global_up == rel(got.global_down, 1e-12));
          if (c.topology.network.kind == NetworkKind::dragonfly)   // one node per group
            CHECK(got.global_up + got.global_pair == rel(got.nic_up, 1e-12));
          // GPU ports: up and down differ by what the NVSwitch took in and gave out (NVLS), as a
          // share of the bytes moved.
          const double imbalance = (got.gpu_up - got.gpu_down) - (want.to_switch - want.from_switch) * wire;
          CHECK(std::abs(imbalance) <= tol * got.gpu_up);
          CHECK(got.gpu_up == rel(want.gpu_out * wire, tol));
          CHECK(got.gpu_down == rel(want.gpu_in * wire, tol));
          CHECK(got.nic_up == rel(want.inter_node * wire, tol));
          if (inst.algorithm != Algorithm::nvls) CHECK(got.gpu_up == rel(got.gpu_down, 1e-12));
          with_switch += inst.algorithm == Algorithm::nvls;
          with_nic += got.nic_up > 0;
          with_spine += got.spine_up > 0;
          with_pcie += got.pcie_up > 0;
          with_global += got.global_up > 0 || got.global_pair > 0;
        }
      }
  // Each kind of link carried traffic in some case, so each equality above was exercised.
  CHECK(simulated > 100);
  CHECK(with_switch > 0);
  CHECK(with_nic > 0);
  CHECK(with_spine > 0);
  CHECK(with_pcie > 0);
  CHECK(with_global > 0);
}
