// Dragonfly networks: a group's global links shared evenly over the machine's other groups under
// minimal routing, one aggregated bundle per group under (ideal) adaptive routing; closed forms for
// a transfer between two groups and for an all-to-all held by the global links, the global links
// a route crosses and its three pieces through the groups' gateways, the closed-form all-to-all
// against its materialised schedule, and groups translated whole (canonical_group).
#include <doctest/doctest.h>

#include "relative.hpp"
#include "closed_form_a2a.hpp"

#include <cmath>
#include <numeric>

#include "engine/collective_plan.hpp"
#include "engine/collective_run.hpp"
#include "engine/select.hpp"
#include "engine/unit_times.hpp"
#include "tpsim/engine.hpp"
#include "tpsim/spec.hpp"

using namespace tpsim;

namespace {

// `nodes` nodes of `gpn` GPUs on one NVSwitch each, a NIC per GPU at `nic_bw`, no protocol terms;
// a dragonfly of `per_group` nodes per group, `machine` groups in the whole machine.
Topology dragonfly(int gpn, int nodes, double nic_bw, int per_group, int machine, GroupRouting routing) {
  Topology t;
  t.name = "dragonfly";
  t.gpus_per_node = gpn;
  t.nodes = nodes;
  t.intra.fabric = IntraFabric::nvswitch;
  t.intra.bandwidth = 450e9;
  t.intra.latency = 1e-6;
  t.nic.count = gpn;
  t.nic.bandwidth = nic_bw;
  t.nic.latency = 2e-6;
  t.network.kind = NetworkKind::dragonfly;
  t.network.switch_latency = 0.5e-6;
  t.network.nodes_per_leaf = per_group;
  t.network.groups = machine;
  t.network.routing = routing;
  return t;
}

std::vector<int> first(int n) {
  std::vector<int> g(n);
  std::iota(g.begin(), g.end(), 0);
  return g;
}

double seconds(const Topology& t, CollectiveOp op, const std::vector<int>& group, double bytes, Fidelity f) {
  return time_collective(t, op, Algorithm::direct, group, bytes, EngineOptions{f}).seconds;
}

const Fidelity kBoth[] = {Fidelity::step, Fidelity::flow};

}  // namespace

TEST_CASE("dragonfly: a transfer between two groups gets 1/(groups-1) of a group's global links under minimal routing") {
  // One GPU and one 50 GB/s NIC per node, one node per group, 5 groups in the machine (4 built):
  // a group's global links carry its NIC's 50 GB/s, 12.5 GB/s towards each of the 4 other groups.
  // Latency: two NIC traversals and four routers (the two ends', the two the global link joins).
  const double S = 1 << 30, nic = 50e9, latency = 2 * 2e-6 + 4 * 0.5e-6;
  Topology minimal = dragonfly(1, 4, nic, 1, 5, GroupRouting::minimal);
  Topology adaptive = dragonfly(1, 4, nic, 1, 5, GroupRouting::adaptive);
  for (Fidelity f : kBoth) {
    CAPTURE(int(f));
    CHECK(seconds(minimal, CollectiveOp::send_recv, {0, 2}, S, f) == rel(latency + S / (nic / 4), 1e-9));
    CHECK(seconds(adaptive, CollectiveOp::send_recv, {0, 2}, S, f) == rel(latency + S / nic, 1e-9));
  }
  // 2:1 oversubscribed global links: half of that, both ways.
  minimal.network.oversubscription = adaptive.network.oversubscription = 2;
  CHECK(seconds(minimal, CollectiveOp::send_recv, {0, 2}, S, Fidelity::flow) == rel(latency + S / (nic / 8), 1e-9));
  CHECK(seconds(adaptive, CollectiveOp::send_recv, {0, 2}, S, Fidelity::flow) == rel(latency + S / (nic / 2), 1e-9));
  // Within a group: the two end routers, no global link.
  const Topology one_group = dragonfly(1, 4, nic, 2, 5, GroupRouting::minimal);
  CHECK(seconds(one_group, CollectiveOp::send_recv, {0, 1}, S, Fidelity::flow) ==
        rel(2 * 2e-6 + 2 * 0.5e-6 + S / nic, 1e-9));
}

TEST_CASE("dragonfly, minimal routing: an all-to-all over every group is held by the NICs, over a few by the global links") {
  // n nodes, one per group, one GPU and NIC each, no protocol terms. Each GPU sends S/n to each of
  // the n-1 others: (n-1)/n S through its NIC at B, S/n over each global link at B/(machine-1).
  // With machine = n groups the two take the same time; in a machine of 4n groups the global
  // links hold it: S/n / (B/(4n-1)).
  const double B = 50e9, S = 64.0 * 1024 * 1024 * 15, latency = 2 * 2e-6 + 4 * 0.5e-6;
  for (int n : {4, 6}) {
    CAPTURE(n);
    const Topology whole = dragonfly(1, n, B, 1, n, GroupRouting::minimal);
    const Topology part = dragonfly(1, n, B, 1, 4 * n, GroupRouting::minimal);
    for (Fidelity f : kBoth) {
      CAPTURE(int(f));
      CHECK(seconds(whole, CollectiveOp::all_to_all, first(n), S, f) == rel(latency + double(n - 1) / n * S / B, 1e-9));
      CHECK(seconds(part, CollectiveOp::all_to_all, first(n), S, f) == rel(latency + S / n / (B / (4 * n - 1)), 1e-9));
    }
  }
}

TEST_CASE("dragonfly: routes between groups cross one global link (minimal) or a group's two bundles (adaptive)") {
  // (Every route also cuts at the network endpoints: test_engine_collectives.cpp.)
  for (GroupRouting r : {GroupRouting::minimal, GroupRouting::adaptive}) {
    CAPTURE(int(r));
    // 5 nodes of 4 GPUs, groups of 2 nodes (3 groups built, 7 in the machine), two GPUs per NIC.
    Topology t = dragonfly(4, 5, 50e9, 2, 7, r);
    t.nic.count = 2;
    const engine::Fabric f(t);
    REQUIRE(f.leaves() == 3);
    CHECK(f.pair_links() == (r == GroupRouting::minimal));
    if (r == GroupRouting::minimal) {
      std::vector<int> none;
      CHECK_THROWS_AS(f.route(f.gateway_endpoint(0), 12, none), std::invalid_argument);   // GPU 12: group 1
      CHECK_THROWS_AS(f.route(f.gateway_endpoint(0), f.network_endpoint(1), none), std::invalid_argument);
    }
    // GPU n % 4 of each node n to that of each other node.
    for (int from = 0; from < t.nodes; ++from)
      for (int to = 0; to < t.nodes; ++to) {
        if (from == to) continue;
        const int a = from * 4 + from % 4, b = to * 4 + to % 4, ga = from / 2, gb = to / 2;
        std::vector<int> whole;
        const double latency = f.route(a, b, whole);
        CHECK(latency == rel(2 * 2e-6 + (ga == gb ? 2 : 4) * 0.5e-6, 1e-12));
        int global = 0;
        for (int l : whole) global += f.links()[l].name.find("global") != std::string::npos;
        CHECK(global == (ga == gb ? 0 : r == GroupRouting::minimal ? 1 : 2));
        if (r != GroupRouting::minimal || ga == gb) continue;
        // Minimal routing: the route between groups also in three, through the two gateways.
        std::vector<int> pieces, across, in;
        CHECK(f.route(a, f.gateway_endpoint(ga), pieces) == latency);
        CHECK(f.route(f.gateway_endpoint(ga), f.gateway_endpoint(gb), across) == latency);
        CHECK(f.route(f.gateway_endpoint(gb), b, in) == latency);
        CHECK(f.latency(a, f.gateway_endpoint(ga)) == latency);
        CHECK(f.latency(f.gateway_endpoint(ga), f.gateway_endpoint(gb)) == latency);
        CHECK(f.latency(f.gateway_endpoint(gb), b) == latency);
        pieces.insert(pieces.end(), across.begin(), across.end());
        pieces.insert(pieces.end(), in.begin(), in.end());
        CHECK(pieces == whole);
      }
  }
  // Global links per ordered pair of built groups: 3 x 2, each 2 nodes x 2 NICs x 50 GB/s / 6.
  Topology t = dragonfly(4, 5, 50e9, 2, 7, GroupRouting::minimal);
  t.nic.count = 2;
  int pairs = 0;
  const engine::Fabric f(t);
  for (const auto& l : f.links())
    if (l.name.find("global") != std::string::npos) {
      ++pairs;
      CHECK(l.bandwidth == rel(2 * 2 * 50e9 / 6, 1e-12));
    }
  CHECK(pairs == 6);
}

TEST_CASE("dragonfly: the closed-form all-to-all times what the materialised schedule times") {
  struct Case {
    std::string what;
    Topology topo;
    std::vector<int> group;
  };
  Topology min3 = dragonfly(8, 5, 50e9, 2, 4, GroupRouting::minimal);
  Topology ada3 = dragonfly(8, 5, 50e9, 2, 4, GroupRouting::adaptive);
  ada3.network.oversubscription = 3;
  const std::vector<Case> cases{{"minimal, 5 nodes in groups of 2", min3, first(40)},
                                {"minimal, 29 of 40", min3, first(29)},
                                {"minimal, shuffled across groups", min3, {33, 1, 17, 9, 25, 2, 38}},
                                {"adaptive 3:1, 5 nodes", ada3, first(40)}};
  for (const Case& c : cases)
    for (double bytes : {4096.0, 67108864.0}) {
      CAPTURE(c.what);
      CAPTURE(bytes);
      const engine::Fabric fabric(c.topo);
      const size_t closed = check_a2a_closed_form(fabric, c.group, bytes).first;
      // A few halves per GPU, and a flow per pair of groups between their gateways.
      CHECK(closed <= 6 * c.group.size() + size_t(fabric.leaves() * fabric.leaves()));
    }
}

TEST_CASE("dragonfly: a group and its canonical translation take the same time") {
  // 16 nodes of 8, 4 per group, minimal routing in a machine of 10 groups: whole groups move as one.
  Topology t = dragonfly(8, 16, 50e9, 4, 10, GroupRouting::minimal);
  const std::vector<int> group = {5 * 8 + 3, 6 * 8 + 3, 13 * 8 + 3};
  CHECK(engine::canonical_group(t, group) == std::vector<int>{0, 8, 64});
  for (Algorithm a : {Algorithm::ring, Algorithm::tree}) {
    CAPTURE(to_string(a));
    const double S = 64.0 * 1024 * 1024;
    CHECK(time_collective(t, CollectiveOp::all_reduce, a, group, S, EngineOptions{Fidelity::flow}).seconds ==
          rel(time_collective(t, CollectiveOp::all_reduce, a, engine::canonical_group(t, group), S,
                              EngineOptions{Fidelity::flow})
                  .seconds,
              1e-12));
  }
}
