// Timing engine, collectives: closed forms on uncontended fabrics, step vs flow agreement for every
// algorithm, contention, oversubscription, determinism.
#include <doctest/doctest.h>

#include "relative.hpp"
#include "closed_form_a2a.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <tuple>

#include "engine/collective_run.hpp"
#include "engine/select.hpp"
#include "engine/unit_times.hpp"
#include "tpsim/engine.hpp"
#include "tpsim/spec.hpp"

using namespace tpsim;

namespace {

// An ideal NVSwitch cluster: B per GPU port, `alpha` per intra-node step; NICs chosen so an
// inter-node step costs the same alpha (2 NIC traversals + 1 switch) unless told otherwise.
Topology ideal(int gpn, int nodes, double intra_bw, double nic_bw, double alpha) {
  Topology t;
  t.name = "ideal";
  t.gpus_per_node = gpn;
  t.nodes = nodes;
  t.intra.fabric = IntraFabric::nvswitch;
  t.intra.bandwidth = intra_bw;
  t.intra.latency = alpha;
  t.nic.count = gpn;
  t.nic.bandwidth = nic_bw;
  t.nic.latency = alpha / 4;
  t.network.switch_latency = alpha / 2;
  return t;
}

std::vector<int> first(int n) {
  std::vector<int> g(n);
  std::iota(g.begin(), g.end(), 0);
  return g;
}

double seconds(const Topology& t, CollectiveOp op, Algorithm a, const std::vector<int>& group, double bytes,
               Fidelity f) {
  return time_collective(t, op, a, group, bytes, EngineOptions{f}).seconds;
}

const Fidelity kBoth[] = {Fidelity::step, Fidelity::flow};


}  // namespace

TEST_CASE("one uncontended transfer takes alpha + S/B exactly") {
  const double B = 450e9, alpha = 1.5e-6, S = 1 << 30;
  const Topology t = ideal(8, 1, B, 50e9, alpha);
  for (Fidelity f : kBoth) {
    // send/recv on 2 ranks: 0 -> 1 and 1 -> 0 at once, on full-duplex ports: no sharing.
    CHECK(seconds(t, CollectiveOp::send_recv, Algorithm::direct, {0, 1}, S, f) == rel(alpha + S / B, 1e-9));
  }
}

TEST_CASE("ring all-reduce: 2(p-1)/p*S/B + 2(p-1)*alpha within a node, bandwidth term + alpha across NIC-bound nodes") {
  const double B = 300e9, alpha = 2e-6, S = 64.0 * 1024 * 1024 * 105;   // divisible by every p used
  for (int p : {2, 4, 8}) {
    const Topology t = ideal(8, 1, B, 25e9, alpha);
    const double expect = 2.0 * (p - 1) / p * S / B + 2.0 * (p - 1) * alpha;
    for (Fidelity f : kBoth) {
      CAPTURE(p);
      CHECK(seconds(t, CollectiveOp::all_reduce, Algorithm::ring, first(p), S, f) == rel(expect, 1e-9));
    }
  }
  // Within a node every hop is alike, so each rank's round-r chunk arrives (previous hop's send +
  // its S/(pB) + alpha) exactly when the rank is free to forward it: every one of the 2(p-1)
  // rounds pays alpha + S/(pB), the textbook alpha-beta sum above.
  //
  // 4 nodes x 4 GPUs, one NIC per GPU: as in NCCL, one ring channel per NIC, each leaving every
  // node through a different NIC, so the four NICs together (4 B_nic) set the pace. Latency is a
  // data dependency (engine/collective_plan.hpp), not a per-round wait, so here only one alpha is
  // exposed. Per channel (S/4 bytes, chunks of c = S/(4p)), a NIC hop moves a chunk in
  // b = c/B_nic = 2.2 ms, an NVLink hop in c/B = b/6; every hop, NIC or NVLink, costs alpha
  // (2 NIC traversals + 1 switch = alpha). The chunk a NIC hop sends in round r left the upstream
  // NIC hop in round r-4 (finished at (r-3)b) and then crossed 3 NVLink hops, so it is ready by
  // (r-3)b + 3(b/6 + alpha) + alpha < r*b, when the NIC hop finishes its round r-1 chunk: each
  // NIC hop streams its 2(p-1) chunks back to back and ends at 2(p-1)b. The last chunk into a
  // rank is ready alpha later; the NVLink hops after it end earlier (their round-(2p-3) chunk
  // left a NIC hop by (2p-3)b + alpha, then b/6 + alpha). So
  //   T = 2(p-1) * S/(4p B_nic) + alpha = 2(p-1)/p * S/(4 B_nic) + alpha,
  // where bulk-synchronous rounds would give + 2(p-1) alpha (58 us more here).
  const double nic = 50e9;
  const Topology t = ideal(4, 4, B, nic, alpha);
  const int p = 16;
  const double expect = 2.0 * (p - 1) / p * S / (4 * nic) + alpha;
  for (Fidelity f : kBoth)
    CHECK(seconds(t, CollectiveOp::all_reduce, Algorithm::ring, first(p), S, f) == rel(expect, 1e-9));
}

TEST_CASE("all-gather and reduce-scatter rings take half the all-reduce bandwidth term") {
  const double B = 450e9, alpha = 1e-6, S = 1 << 28;
  const Topology t = ideal(8, 1, B, 50e9, alpha);
  const double expect = 7.0 / 8 * S / B + 7 * alpha;
  for (auto op : {CollectiveOp::all_gather, CollectiveOp::reduce_scatter})
    for (Fidelity f : kBoth) CHECK(seconds(t, op, Algorithm::ring, first(8), S, f) == rel(expect, 1e-9));
}

TEST_CASE("halving-doubling and direct take their textbook alpha-beta times on an ideal switch") {
  // p = 8 GPUs on one NVSwitch, B per port each way, alpha per hop, no protocol overheads.
  const double B = 400e9, alpha = 1e-6, S = 1 << 28;
  const int p = 8;
  const Topology t = ideal(8, 1, B, 50e9, alpha);
  // Halving-doubling all-reduce: reduce-scatter by recursive halving (round k moves S/2^(k+1) to
  // one partner), then all-gather by recursive doubling: 2 (1 - 1/p) S/B and 2 log2(p) hops.
  const double hd = 2.0 * (p - 1) / p * S / B + 2 * 3 * alpha;
  // Direct: every rank sends each peer its part at once, so its port carries (p-1)/p of the data:
  // reduce-scatter then all-gather for all-reduce (2 hops); one hop for all-to-all.
  const double direct_ar = 2.0 * (p - 1) / p * S / B + 2 * alpha;
  const double direct_a2a = double(p - 1) / p * S / B + alpha;
  for (Fidelity f : kBoth) {
    CAPTURE(int(f));
    CHECK(seconds(t, CollectiveOp::all_reduce, Algorithm::halving_doubling, first(p), S, f) == rel(hd, 1e-9));
    CHECK(seconds(t, CollectiveOp::all_reduce, Algorithm::direct, first(p), S, f) == rel(direct_ar, 1e-9));
    CHECK(seconds(t, CollectiveOp::all_to_all, Algorithm::direct, first(p), S, f) == rel(direct_a2a, 1e-9));
  }
}

TEST_CASE("one-shot and two-shot: one kernel launch, 1 or 2 flag-waiting steps, (p-1)S or 2(p-1)/p S per port") {
  // Not NCCL: the "custom" protocol pays gpu.launch_overhead once and intra.latency once more per
  // step (each step waits for a flag its peers write), with no NCCL launch or protocol terms.
  const double B = 400e9, alpha = 1e-6, launch = 3e-6;
  const int p = 8;
  Topology t = ideal(8, 1, B, 50e9, alpha);
  t.gpu.launch_overhead = launch;
  t.collectives.launch_latency = 20e-6;   // NCCL's: not paid by the custom kernels
  for (double S : {64.0 * 1024, 256.0 * 1024 * 1024}) {
    const double one = launch + 2 * alpha + (p - 1) * S / B;
    const double two = launch + 2 * (2 * alpha) + 2.0 * (p - 1) / p * S / B;
    for (Fidelity f : kBoth) {
      CAPTURE(int(f));
      CAPTURE(S);
      CHECK(seconds(t, CollectiveOp::all_reduce, Algorithm::one_shot, first(p), S, f) == rel(one, 1e-9));
      CHECK(seconds(t, CollectiveOp::all_reduce, Algorithm::two_shot, first(p), S, f) == rel(two, 1e-9));
    }
  }
  // dgx-h100: a decode-size all-reduce (8 tokens x 4096 x 2 B) one-shot is the 4 us launch, two
  // 0.6 us steps and 7 x 64 KiB through an NVLink port at 0.818 x 450 GB/s; NCCL's best (ring/LL)
  // pays its 22 us launch on top of its protocol.
  const Topology dgx = load_topology("dgx-h100");
  const double S = 8 * 4096 * 2;
  const CollectiveTiming one = time_collective(dgx, CollectiveOp::all_reduce, Algorithm::one_shot, first(8), S, EngineOptions{});
  CHECK(one.protocol == "custom");
  CHECK(one.seconds == rel(4e-6 + 2 * 0.6e-6 + 7 * S / (450e9 * 0.818), 1e-9));
  const CollectiveTiming nccl = time_collective(dgx, CollectiveOp::all_reduce, Algorithm::automatic, first(8), S, EngineOptions{});
  CHECK(one.seconds < nccl.seconds / 4);
  // Across nodes there is no peer memory: refused with the reason.
  const Topology two_nodes = ideal(4, 2, B, 50e9, alpha);
  CHECK_THROWS_AS(seconds(two_nodes, CollectiveOp::all_reduce, Algorithm::one_shot, {0, 4}, S, Fidelity::flow),
                  std::invalid_argument);
}

TEST_CASE("the selector never picks one-shot or two-shot unless asked") {
  const Topology dgx = load_topology("dgx-h100");
  for (int p : {2, 4, 8})
    for (double S : {1e3, 64e3, 1e6, 64e6}) {
      const CollectiveInstance i = resolve_collective(dgx, CollectiveOp::all_reduce, Algorithm::automatic, first(p), S);
      CAPTURE(p);
      CAPTURE(S);
      CHECK(i.algorithm != Algorithm::one_shot);
      CHECK(i.algorithm != Algorithm::two_shot);
      CHECK(resolve_collective(dgx, CollectiveOp::all_reduce, Algorithm::one_shot, first(p), S).algorithm ==
            Algorithm::one_shot);
    }
}

TEST_CASE("step and flow fidelity agree within 2% for every algorithm") {
  const double S = 256.0 * 1024 * 1024;
  Topology one = ideal(8, 1, 450e9, 50e9, 1e-6);
  one.intra.nvls = true;
  one.intra.nvls_bandwidth = 480e9;
  const Topology two = ideal(4, 2, 450e9, 50e9, 1e-6);
  struct Case {
    const Topology* topo;
    CollectiveOp op;
    Algorithm algo;
    int ranks;
  };
  const Case cases[] = {
      {&one, CollectiveOp::all_reduce, Algorithm::ring, 8},
      {&one, CollectiveOp::all_reduce, Algorithm::tree, 8},
      {&one, CollectiveOp::all_reduce, Algorithm::halving_doubling, 8},
      {&one, CollectiveOp::all_reduce, Algorithm::direct, 8},
      {&one, CollectiveOp::all_reduce, Algorithm::nvls, 8},
      {&one, CollectiveOp::all_reduce, Algorithm::one_shot, 8},
      {&one, CollectiveOp::all_reduce, Algorithm::two_shot, 8},
      {&two, CollectiveOp::all_reduce, Algorithm::hierarchical, 8},
      {&two, CollectiveOp::all_reduce, Algorithm::tree, 8},
      {&one, CollectiveOp::all_gather, Algorithm::ring, 8},
      {&one, CollectiveOp::reduce_scatter, Algorithm::halving_doubling, 8},
      {&one, CollectiveOp::broadcast, Algorithm::ring, 8},
      {&one, CollectiveOp::reduce, Algorithm::tree, 8},
      {&one, CollectiveOp::all_to_all, Algorithm::direct, 8},
  };
  for (const Case& c : cases) {
    CAPTURE(to_string(c.op));
    CAPTURE(to_string(c.algo));
    const double step = seconds(*c.topo, c.op, c.algo, first(c.ranks), S, Fidelity::step);
    const double flow = seconds(*c.topo, c.op, c.algo, first(c.ranks), S, Fidelity::flow);
    CHECK(step > 0);
    CHECK(flow == rel(step, 0.02));
  }
}

TEST_CASE("two concurrent collectives on the same links each take twice as long (max-min sharing)") {
  const double B = 100e9, S = 1 << 28;
  const Topology t = ideal(4, 1, B, 25e9, 0);
  for (Fidelity f : kBoth) {
    const engine::Fabric fabric(t);
    engine::CollectiveSpec spec;
    spec.group = first(4);
    spec.bytes = S;
    spec.instance = engine::resolve(fabric, CollectiveOp::all_reduce, Algorithm::ring, spec.group, S, 0);
    auto plan = std::make_shared<const engine::CollectivePlan>(engine::plan_collective(fabric, spec, f));
    engine::SimPlatform platform(fabric);
    engine::RunContext ctx;
    ctx.platform = &platform;
    double end_a = -1, end_b = -1;
    engine::start_collective(ctx, plan, f, [&] { end_a = platform.now(); });
    engine::start_collective(ctx, plan, f, [&] { end_b = platform.now(); });
    platform.run();
    REQUIRE(!ctx.error);
    const double alone = 2.0 * 3 / 4 * S / B;
    CHECK(end_a == rel(2 * alone, 1e-9));
    CHECK(end_b == rel(2 * alone, 1e-9));
  }
}

TEST_CASE("a 2:1 oversubscribed spine halves cross-leaf bandwidth") {
  Topology t = ideal(1, 2, 450e9, 50e9, 0);
  t.nic.count = 1;
  t.network.kind = NetworkKind::fat_tree;
  t.network.nodes_per_leaf = 1;
  const double S = 1 << 30;
  t.network.oversubscription = 1;
  const double full = seconds(t, CollectiveOp::send_recv, Algorithm::direct, {0, 1}, S, Fidelity::flow);
  t.network.oversubscription = 2;
  const double half = seconds(t, CollectiveOp::send_recv, Algorithm::direct, {0, 1}, S, Fidelity::flow);
  CHECK(full == rel(S / 50e9, 1e-9));
  CHECK(half == rel(2 * S / 50e9, 1e-9));
}

TEST_CASE("same inputs give bit-identical times") {
  const Topology t = ideal(4, 2, 450e9, 50e9, 1e-6);
  for (Fidelity f : kBoth) {
    const double a = seconds(t, CollectiveOp::all_reduce, Algorithm::tree, first(8), 3e7, f);
    const double b = seconds(t, CollectiveOp::all_reduce, Algorithm::tree, first(8), 3e7, f);
    CHECK(a == b);
  }
}

TEST_CASE("a collective takes the same time whether it starts at time 0 or later") {
  // SimGrid stretches any positive sleep under 1 ns to 1 ns; a backend that slept until "data
  // ready" when that was a rounding error past now took 1 ns longer when started at exactly 0.
  const Topology t = load_topology("dgx-h100");   // its protocols' latencies are what exposed it
  const engine::Fabric fabric(t);
  for (Algorithm a : {Algorithm::nvls, Algorithm::ring, Algorithm::tree})
    for (Fidelity f : kBoth) {
      const std::string algorithm = to_string(a);
      CAPTURE(algorithm);
      CAPTURE(int(f));
      engine::CollectiveSpec spec;
      spec.group = first(8);
      spec.bytes = 16 << 20;
      spec.instance = engine::resolve(fabric, CollectiveOp::all_reduce, a, spec.group, spec.bytes, spec.root);
      auto plan = std::make_shared<const engine::CollectivePlan>(engine::plan_collective(fabric, spec, f));
      const double at_zero = seconds(t, CollectiveOp::all_reduce, a, spec.group, spec.bytes, f);
      engine::SimPlatform platform(fabric);
      engine::RunContext ctx;
      ctx.platform = &platform;
      const double delay = 1e-3;
      double end = -1;
      simgrid::s4u::Actor::create("later", platform.host(0), [&] {
        simgrid::s4u::this_actor::sleep_for(delay);
        engine::start_collective(ctx, plan, f, [&] { end = platform.now(); });
      });
      platform.run();
      REQUIRE(!ctx.error);
      CHECK(end - delay == rel(at_zero, 1e-12));
    }
}

TEST_CASE("automatic picks NVLS in one NVLS node, tree for small and ring for large messages across nodes") {
  Topology one = ideal(8, 1, 450e9, 50e9, 1e-6);
  one.intra.nvls = true;
  one.intra.nvls_bandwidth = 480e9;
  const EngineOptions flow{Fidelity::flow};
  CHECK(time_collective(one, CollectiveOp::all_reduce, Algorithm::automatic, first(8), 1 << 20, flow).algorithm == Algorithm::nvls);
  CHECK(time_collective(one, CollectiveOp::all_reduce, Algorithm::automatic, first(4), 1 << 20, flow).algorithm == Algorithm::ring);
  CHECK(time_collective(one, CollectiveOp::all_gather, Algorithm::automatic, first(8), 1 << 20, flow).algorithm == Algorithm::ring);
  const Topology many = ideal(8, 16, 450e9, 50e9, 5e-6);
  CHECK(time_collective(many, CollectiveOp::all_reduce, Algorithm::automatic, first(128), 4096, flow).algorithm == Algorithm::tree);
  CHECK(time_collective(many, CollectiveOp::all_reduce, Algorithm::automatic, first(128), 1 << 30, flow).algorithm == Algorithm::ring);
}

TEST_CASE("the closed-form ring is the materialised schedule's one flow phase: same edges, latency, time") {
  const Topology t = ideal(4, 2, 450e9, 50e9, 1e-6);
  const engine::Fabric fabric(t);
  for (auto op : {CollectiveOp::all_reduce, CollectiveOp::all_gather, CollectiveOp::reduce_scatter})
    for (int p : {2, 3, 5, 8}) {
      CAPTURE(to_string(op));
      CAPTURE(p);
      engine::CollectiveSpec spec;
      spec.op = op;
      spec.group = first(p);
      spec.bytes = 1e6;
      spec.instance = engine::resolve(fabric, op, Algorithm::ring, spec.group, spec.bytes, 0);
      const auto closed = engine::plan_collective(fabric, spec, Fidelity::flow);
      spec.closed_form = false;
      const auto built = engine::plan_collective(fabric, spec, Fidelity::flow);
      CHECK(closed.closed_form);
      CHECK(!built.closed_form);
      REQUIRE(built.phases.size() == 1);   // every round moves the same edges: one phase
      REQUIRE(closed.phases.size() == 1);
      CHECK(closed.rounds == built.rounds);
      CHECK(closed.path_latency == rel(built.path_latency));
      CHECK(closed.estimate == rel(built.estimate));
      // The same flows; a built plan lists them in channel order, the closed form by endpoint.
      auto by_ends = [](std::vector<engine::FlowEdge> v) {
        std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return std::tie(a.src, a.dst) < std::tie(b.src, b.dst); });
        return v;
      };
      const auto closed_flows = by_ends(closed.phases[0].flows), built_flows = by_ends(built.phases[0].flows);
      REQUIRE(closed_flows.size() == built_flows.size());
      for (size_t i = 0; i < closed_flows.size(); ++i) {
        CHECK(closed_flows[i].src == built_flows[i].src);
        CHECK(closed_flows[i].dst == built_flows[i].dst);
        CHECK(closed_flows[i].payload == rel(built_flows[i].payload));
      }
      const double end[2] = {flow_finish(fabric, closed), flow_finish(fabric, built)};
      CHECK(end[0] > 0);
      CHECK(end[0] == rel(end[1], 1e-12));
    }
}

TEST_CASE("bad collective input is rejected with a message") {
  const Topology t = ideal(8, 1, 450e9, 50e9, 1e-6);
  const EngineOptions o{Fidelity::flow};
  CHECK_THROWS_AS(time_collective(t, CollectiveOp::all_reduce, Algorithm::ring, {0, 9}, 1e6, o), std::invalid_argument);
  CHECK_THROWS_AS(time_collective(t, CollectiveOp::all_reduce, Algorithm::ring, {0, 0}, 1e6, o), std::invalid_argument);
  CHECK_THROWS_AS(time_collective(t, CollectiveOp::all_reduce, Algorithm::nvls, first(8), 1e6, o), std::invalid_argument);
  CHECK_THROWS_AS(time_collective(t, CollectiveOp::all_reduce, Algorithm::ring, {}, 1e6, o), std::invalid_argument);
}

TEST_CASE("pat across 4 nodes, one GPU each: (p-1)/p S through each NIC at its efficiency, plus the launch") {
  // Each rank receives the other three shards through its one NIC: 3/4 S at nic.bandwidth x
  // nic.efficiency; the fixed term is the launch plus Simple's base latency; the two rounds' step
  // latencies (~30 us) are under 0.5% of 1 GiB's ~16.6 ms.
  const Topology t = load_topology("cluster-h100-ndr", {{"topology.nodes", "4"}});
  const double S = 1024.0 * 1024 * 1024;
  double fixed = t.collectives.launch_latency;
  for (const ProtocolSpec& p : t.collectives.protocols)
    if (p.name == "Simple") fixed += p.base_latency;
  const double want = fixed + 0.75 * S / (t.nic.bandwidth * t.nic.efficiency);
  for (CollectiveOp op : {CollectiveOp::all_gather, CollectiveOp::reduce_scatter}) {
    const CollectiveTiming got = time_collective(t, op, Algorithm::pat, {0, 8, 16, 24}, S, EngineOptions{});
    CHECK(got.protocol == "Simple");
    CHECK(got.seconds == rel(want, 0.005));
  }
  // Refused, in one line, where NCCL does not run it: two GPUs of a node, or an all-reduce.
  CHECK_THROWS_AS(time_collective(t, CollectiveOp::all_gather, Algorithm::pat, {0, 1, 8, 9}, S, EngineOptions{}), std::invalid_argument);
  CHECK_THROWS_AS(time_collective(t, CollectiveOp::all_reduce, Algorithm::pat, {0, 8, 16, 24}, S, EngineOptions{}), std::invalid_argument);
}

TEST_CASE("the tree across nodes is NCCL's: one chain per NIC rail under the inter-node trees") {
  const Topology t = load_topology("cluster-h100-ndr", {{"topology.nodes", "2"}});
  std::vector<int> group(16);
  std::iota(group.begin(), group.end(), 0);
  const CollectiveInstance inst = resolve_collective(t, CollectiveOp::all_reduce, Algorithm::tree, group, 1 << 28);
  CHECK(inst.channel_orders.size() == 8);   // one per NIC, as the ring
  CHECK(inst.ranks_per_node == 8);
  CHECK(inst.channel_orders[3][0] == 3);    // channel 3's chain starts at local rank 3 (NIC 3)
  // Bandwidth: every GPU sends S up and S down its chain over NVLink (2S against the ring's
  // 2(p-1)/p S), so the tree's large-message time is within 10% of the ring's, not 3-4x it.
  const double tree = time_collective(t, CollectiveOp::all_reduce, Algorithm::tree, group, 1 << 30, EngineOptions{}).seconds;
  const double ring = time_collective(t, CollectiveOp::all_reduce, Algorithm::ring, group, 1 << 30, EngineOptions{}).seconds;
  CHECK(tree == rel(ring * 2.0 / (2.0 * 15 / 16), 0.10));
}

TEST_CASE("a network endpoint cuts every cross-node route in two: sender's half, receiver's half") {
  // 5 nodes under leaves (dragonfly groups) of 2: 3 of them, two GPUs per NIC; a 2:1 fat tree, and
  // a dragonfly under minimal routing (the global link in the sender's half) and adaptive routing.
  for (int kind = 0; kind < 3; ++kind) {
    CAPTURE(kind);
    Topology t = ideal(4, 5, 450e9, 50e9, 1e-6);
    t.nic.count = 2;
    t.network.kind = kind == 0 ? NetworkKind::fat_tree : NetworkKind::dragonfly;
    t.network.nodes_per_leaf = 2;
    t.network.oversubscription = 2;
    t.network.routing = kind == 1 ? GroupRouting::minimal : GroupRouting::adaptive;
    const engine::Fabric f(t);
    REQUIRE(f.leaves() == 3);
    // GPUs, NVSwitches, one network endpoint per leaf (and a gateway per group under minimal routing)
    CHECK(f.endpoints() == 20 + 5 + 3 + (kind == 1 ? 3 : 0));
    std::vector<int> whole, up, down;
    for (int a = 0; a < f.gpus(); ++a)
      for (int b = 0; b < f.gpus(); ++b) {
        if (!f.inter_node(a, b)) continue;
        whole.clear(), up.clear(), down.clear();
        const double latency = f.route(a, b, whole);
        const int leaf_a = f.leaf_of(f.node_of(a)), leaf_b = f.leaf_of(f.node_of(b));
        CHECK(f.route(a, f.network_endpoint(leaf_b), up) == latency);
        CHECK(f.route(f.network_endpoint(leaf_a), b, down) == latency);
        CHECK(f.latency(a, f.network_endpoint(leaf_b)) == latency);
        CHECK(f.latency(f.network_endpoint(leaf_a), b) == latency);
        up.insert(up.end(), down.begin(), down.end());
        CHECK(up == whole);
      }
    CHECK_THROWS_AS(f.route(f.network_endpoint(0), f.network_endpoint(1), up), std::invalid_argument);
  }
  CHECK(engine::Fabric(ideal(8, 1, 450e9, 50e9, 1e-6)).network_endpoint(0) == -1);   // one node: no network
}

TEST_CASE("all-to-all across nodes: (n-1)/n of the buffer leaves each GPU, the NIC share or the NVLink share sets the time") {
  // n GPUs, 8 per node, one NIC per GPU, one NVSwitch per node, no protocol terms. Each GPU sends
  // S/n to each of the n-1 others at once: (n-8)/n S through its NIC (the cross-node share) and
  // 7/n S through its NVLink port (the intra-node share), on disjoint links, so the time is the
  // larger of the two, plus one step latency (alpha for both kinds of hop here).
  const double alpha = 1e-6, S = 64.0 * 1024 * 1024 * 15;
  for (int n : {16, 64}) {
    // NIC-bound: 450 GB/s NVLink, 50 GB/s NICs.
    const Topology nic_bound = ideal(8, n / 8, 450e9, 50e9, alpha);
    const double by_nic = double(n - 8) / n * S / 50e9 + alpha;
    CHECK(double(n - 8) / n * S / 50e9 > 7.0 / n * S / 450e9);
    // NVLink-bound: a 20 GB/s intra-node fabric against 400 GB/s NICs.
    const Topology nvlink_bound = ideal(8, n / 8, 20e9, 400e9, alpha);
    const double by_nvlink = 7.0 / n * S / 20e9 + alpha;
    CHECK(7.0 / n * S / 20e9 > double(n - 8) / n * S / 400e9);
    for (Fidelity f : kBoth) {
      CAPTURE(n);
      CAPTURE(int(f));
      CHECK(seconds(nic_bound, CollectiveOp::all_to_all, Algorithm::direct, first(n), S, f) == rel(by_nic, 1e-9));
      CHECK(seconds(nvlink_bound, CollectiveOp::all_to_all, Algorithm::direct, first(n), S, f) == rel(by_nvlink, 1e-9));
    }
  }
}

TEST_CASE("the closed-form all-to-all (halves through the switches) times what the materialised schedule times") {
  struct Case {
    std::string what;
    Topology topo;
    std::vector<int> group;
  };
  std::vector<Case> cases;
  cases.push_back({"2 nodes x 8", ideal(8, 2, 450e9, 50e9, 1e-6), first(16)});
  cases.push_back({"8 nodes x 8", ideal(8, 8, 450e9, 50e9, 1e-6), first(64)});
  // Uneven: 8, 8 and 4 GPUs of three nodes; 4 of each node; the group in a shuffled order.
  cases.push_back({"8 + 8 + 4", ideal(8, 3, 450e9, 50e9, 1e-6), first(20)});
  cases.push_back({"4 per node", ideal(8, 4, 450e9, 50e9, 1e-6), {0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27}});
  cases.push_back({"shuffled", ideal(4, 3, 450e9, 50e9, 1e-6), {5, 0, 11, 2, 7, 9, 1, 4}});
  // A fat tree of 2-node leaves, 3:1 oversubscribed: the spine, not the NIC, holds the cross-leaf part.
  Topology tree = ideal(8, 5, 450e9, 50e9, 1e-6);
  tree.network.kind = NetworkKind::fat_tree;
  tree.network.nodes_per_leaf = 2;
  tree.network.oversubscription = 3;
  cases.push_back({"fat tree 3:1, 5 nodes", tree, first(40)});
  cases.push_back({"fat tree 3:1, 37 of 40", tree, first(37)});
  // No NVSwitch (a pair of links per GPU pair), and two NICs shared by eight PCIe GPUs.
  Topology mesh = ideal(4, 3, 300e9, 50e9, 1e-6);
  mesh.intra.fabric = IntraFabric::nvlink_mesh;
  cases.push_back({"NVLink mesh", mesh, first(12)});
  cases.push_back({"PCIe, 2 NICs", load_topology("pcie-8x-l40s", {{"topology.nodes", "3"}}), first(24)});
  cases.push_back({"cluster-h100-ndr", load_topology("cluster-h100-ndr", {{"topology.nodes", "4"}}), first(32)});
  // Several NICs per GPU, and PCIe paths to the NICs with a link between CPU sockets.
  cases.push_back({"aws-p5-efa", load_topology("aws-p5-efa", {{"topology.nodes", "2"}}), first(16)});
  cases.push_back({"dgx-h100-12hca", load_topology("dgx-h100-12hca", {{"topology.nodes", "3"}}), first(24)});
  cases.push_back({"PCIe, 2 sockets", load_topology("pcie-4x-l40s-2socket", {{"topology.nodes", "3"}}), first(12)});
  for (const Case& c : cases)
    for (double bytes : {4096.0, 1048576.0, 67108864.0}) {   // LL, LL128 and Simple on the presets
      CAPTURE(c.what);
      CAPTURE(bytes);
      const engine::Fabric fabric(c.topo);
      const auto [closed, built] = check_a2a_closed_form(fabric, c.group, bytes);
      const size_t n = c.group.size();
      CHECK(built == n * (n - 1));
      CHECK(closed <= 6 * n + n * 3);   // a few halves per GPU (per pair in a mesh node)
    }
}

TEST_CASE("a step plan whose messages in flight would not fit in memory is refused in one line") {
  const Topology t = ideal(8, 8, 450e9, 50e9, 1e-6);
  const engine::Fabric fabric(t);
  engine::CollectiveSpec spec;
  spec.group = first(64);
  spec.bytes = 1 << 26;
  // A direct all-to-all posts all of its 64 x 63 transfers at once; a ring holds at most the 9
  // rounds its ranks post ahead (8 channels, one per NIC, 64 transfers a round each).
  spec.op = CollectiveOp::all_to_all;
  spec.instance = engine::resolve(fabric, spec.op, Algorithm::direct, spec.group, spec.bytes, 0);
  const auto a2a = engine::plan_collective(fabric, spec, Fidelity::step);
  CHECK(engine::step_messages_in_flight(a2a) == 64 * 63);
  CHECK(engine::step_messages_in_flight(engine::plan_collective(fabric, spec, Fidelity::flow)) == 0);   // no schedule
  spec.op = CollectiveOp::all_reduce;
  spec.instance = engine::resolve(fabric, spec.op, Algorithm::ring, spec.group, spec.bytes, 0);
  const auto ring = engine::plan_collective(fabric, spec, Fidelity::step);
  REQUIRE(ring.channels.size() == 8);
  CHECK(engine::step_messages_in_flight(ring) == 8 * 9 * 64);
  const double need = 64 * 63 * engine::kStepBytesPerMessage;
  CHECK_NOTHROW(engine::check_step_memory(a2a, need));
  CHECK_THROWS_WITH_AS(engine::check_step_memory(a2a, need - 1),
                       doctest::Contains("all_to_all over 64 GPUs at step fidelity would hold 4032 messages in flight"),
                       std::invalid_argument);
  CHECK_THROWS_WITH_AS(engine::check_step_memory(a2a, need - 1), doctest::Contains("time it at flow fidelity"),
                       std::invalid_argument);
}

TEST_CASE("a plan needing more SimGrid actors than the process can map is refused in one line") {
  const Topology t = ideal(8, 8, 450e9, 50e9, 1e-6);
  const engine::Fabric fabric(t);
  engine::CollectiveSpec spec;
  spec.group = first(64);
  spec.bytes = 1 << 26;
  spec.instance = engine::resolve(fabric, CollectiveOp::all_reduce, Algorithm::ring, spec.group, spec.bytes, 0);
  // Step: one actor per channel and participant (8 channels, one per NIC, of 64 ranks).
  const auto ring = engine::plan_collective(fabric, spec, Fidelity::step);
  REQUIRE(ring.channels.size() == 8);
  CHECK(engine::collective_actors(ring, Fidelity::step) == 8 * 64);
  // Flow: the closed-form ring is one phase: a driver, and one sender and one receiver moving from
  // host to host for its flows (up to kCommsPerSender comms each), not an actor per GPU. The 8
  // channels' ring edges merge per (src, dst) pair: 128 pairs here.
  const auto flow = engine::plan_collective(fabric, spec, Fidelity::flow);
  REQUIRE(flow.phases.size() == 1);
  CHECK(flow.phases[0].flows.size() == 128);
  CHECK(engine::collective_actors(flow, Fidelity::flow) == 3);
  const long need = engine::kMappingsReserved + engine::kMappingsPerActor * 8 * 64;
  CHECK_NOTHROW(engine::check_actor_budget(ring, Fidelity::step, need));
  CHECK_NOTHROW(engine::check_actor_budget(ring, Fidelity::step, 0));   // cap unknown: nothing refused
  CHECK_THROWS_WITH_AS(engine::check_actor_budget(ring, Fidelity::step, need - 1),
                       doctest::Contains("all_reduce ring over 64 GPUs at step fidelity runs 512 SimGrid actors"),
                       std::invalid_argument);
}

TEST_CASE("a rate-capped ring over 2048 GPUs holds every flow to its cap, sent by 65 actors") {
  // Caps reach SimGrid only through mailbox comms, sent by groups of actors that move from host to
  // host (flow_backend.cpp). The 8 channels' ring edges merge into 4096 (src, dst) flows: 32 sender
  // groups. The protocol's cap is a rank's payload rate (NCCL's llMaxBw), spread over its out-edges;
  // at 4 GB/s it is under every link's share (NIC 50 GB/s, NVLink 450 GB/s), so each rank sends its
  // 2(p-1)/p * S at the cap. The links have no latency, but a ring across nodes pays NCCL's net post
  // overhead on every intra-node step (1 us on a host not stated AMD, x3 with Simple): the data's
  // longest path over the 2(p-1) = 4094 steps is one lap (2048 hops, 1792 of them inside a node)
  // and 2046 more hops, 1791 inside a node at most, so T = 2(p-1)/p * S / cap + 3583 x 3 us.
  Topology t = ideal(8, 256, 450e9, 50e9, 0);
  ProtocolSpec capped;
  capped.name = "Simple";
  capped.max_bandwidth = 4e9;
  t.collectives.protocols = {capped};
  const int p = 2048;
  const double S = 8.0 * p * 4096, cap = 4e9;
  const engine::Fabric fabric(t);
  engine::CollectiveSpec spec;
  spec.group = first(p);
  spec.bytes = S;
  spec.instance = engine::resolve(fabric, CollectiveOp::all_reduce, Algorithm::ring, spec.group, S, 0);
  const auto plan = engine::plan_collective(fabric, spec, Fidelity::flow);
  REQUIRE(plan.phases.size() == 1);
  REQUIRE(plan.phases[0].flows.size() == 2u * p);
  CHECK(engine::collective_actors(plan, Fidelity::flow) == 1 + 2 * (2 * p / engine::kCommsPerSender));
  CHECK(flow_finish(fabric, plan) == rel(2.0 * (p - 1) / p * S / cap + 3583 * 3e-6, 1e-9));
}

TEST_CASE("a ring across nodes pays the host's net post overhead on every intra-node step, as NCCL models it") {
  // 2 nodes x 8 GPUs, no link latency, one Simple protocol with no terms of its own: each intra-node
  // step costs NCCL's post overhead x3 (Simple), 3 us on a host not stated AMD and 6 us on AMD;
  // inter-node steps cost nothing. Over the 30 steps of a 16-rank all-reduce the data's longest path
  // is one lap (16 hops, 14 inside a node) and 14 more hops (13 inside a node at most): 27 steps.
  // One node: no step crosses the network, so nothing is posted. The ideal protocol (no
  // collectives section) stays the exact alpha-beta model. Each time is SimGrid's to its resolution
  // of event times (surf/precision: 1 ns, absolute), so a difference of two is good to 2 ns.
  Topology t = ideal(8, 2, 450e9, 50e9, 0);
  const double S = 16.0 * 4;   // bytes: transfers take ~0, so the latency path is the time
  auto at = [&](const Topology& topo, int ranks, Fidelity f) {
    return seconds(topo, CollectiveOp::all_reduce, Algorithm::ring, first(ranks), S, f);
  };
  for (Fidelity f : kBoth) {
    CAPTURE(static_cast<int>(f));
    const double exact = at(t, 16, f), exact_one_node = at(t, 8, f);
    ProtocolSpec simple;
    simple.name = "Simple";
    t.collectives.protocols = {simple};
    CHECK(std::fabs(at(t, 16, f) - exact - 27 * 3e-6) <= 2e-9);
    t.nic.host_cpu = HostCpu::amd;
    CHECK(std::fabs(at(t, 16, f) - exact - 27 * 6e-6) <= 2e-9);
    CHECK(at(t, 8, f) == rel(exact_one_node, 1e-12));
    t.collectives.protocols.clear();
    t.nic.host_cpu = HostCpu::unstated;
  }
}

TEST_CASE("a topology too large to build in this machine's memory is refused before it is built") {
  Topology t = ideal(8, 1 << 21, 450e9, 50e9, 1e-6);   // 16.8M GPUs: ~72 GiB at 4.5 KiB each
  const double memory = double(sysconf(_SC_PHYS_PAGES)) * double(sysconf(_SC_PAGE_SIZE));
  if (memory < 128.0 * (1 << 30))
    CHECK_THROWS_WITH_AS(engine::Fabric{t}, doctest::Contains("16777216 GPUs take ~72.0 GiB to simulate"),
                         std::invalid_argument);
  t.nodes = 4;
  CHECK(engine::Fabric(t).gpus() == 32);
}

TEST_CASE("a group and its canonical translation take the same time: leaves, nodes in a leaf, NIC rails") {
  // 16 nodes of 8, 4 nodes per leaf, 2:1 oversubscribed: a group's time depends on which members
  // share a node, a leaf or a rail, and canonical_group keeps exactly that.
  Topology t = ideal(8, 16, 450e9, 50e9, 1e-6);
  t.network.kind = NetworkKind::fat_tree;
  t.network.nodes_per_leaf = 4;
  t.network.oversubscription = 2;
  // GPU 3 of nodes 5, 6 (leaf 1) and 13 (leaf 3): whole leaves back by one, nodes in their leaf by
  // one, local index back by 3 -> GPU 0 of nodes 0, 1 and 8.
  const std::vector<int> group = {5 * 8 + 3, 6 * 8 + 3, 13 * 8 + 3};
  CHECK(engine::canonical_group(t, group) == std::vector<int>{0, 8, 64});
  // A member at the start of its leaf pins the in-leaf offset: nodes 4 and 9 stay 4 apart.
  CHECK(engine::canonical_group(t, {4 * 8, 9 * 8}) == std::vector<int>{0, 5 * 8});
  const double S = 64.0 * 1024 * 1024;
  for (Algorithm a : {Algorithm::ring, Algorithm::tree}) {
    CAPTURE(to_string(a));
    CHECK(seconds(t, CollectiveOp::all_reduce, a, group, S, Fidelity::flow) ==
          rel(seconds(t, CollectiveOp::all_reduce, a, engine::canonical_group(t, group), S, Fidelity::flow), 1e-12));
  }
  // Sockets set GPUs apart: the local index then stays.
  t.nic.gpu_sockets = {0, 0, 0, 0, 1, 1, 1, 1};
  t.nic.sockets = {0, 0, 0, 0, 1, 1, 1, 1};
  CHECK(engine::canonical_group(t, group) == std::vector<int>{3, 8 + 3, 64 + 3});
}
