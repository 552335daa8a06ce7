// Timing engine, NIC layouts: several NICs per GPU, NICs shared by GPUs, NICs that carry no GPU
// traffic, the GPU -> NIC PCIe path and the link between CPU sockets, on the three example
// topologies. Closed forms from the datasheet rates written in each test: a cross-node transfer
// takes alpha + S / (its max-min share of the slowest link on its path), alpha = 2 NIC traversals
// + 1 switch. The presets' collectives calibration is dropped (ideal alpha-beta), so no protocol
// term enters.
#include <doctest/doctest.h>

#include "relative.hpp"

#include <numeric>
#include <stdexcept>

#include "engine/fabric.hpp"
#include "tpsim/engine.hpp"

using namespace tpsim;

namespace {

Topology ideal_preset(const std::string& name, const std::vector<Override>& sets = {}) {
  Topology t = load_topology(name, sets);
  t.collectives = {};
  return t;
}

double alpha(const Topology& t) { return 2 * t.nic.latency + t.network.switch_latency; }

double seconds(const Topology& t, CollectiveOp op, Algorithm a, const std::vector<int>& group, double bytes,
               Fidelity f) {
  return time_collective(t, op, a, group, bytes, EngineOptions{f}).seconds;
}

double send_recv(const Topology& t, const std::vector<int>& group, double bytes, Fidelity f) {
  return seconds(t, CollectiveOp::send_recv, Algorithm::direct, group, bytes, f);
}

std::vector<int> first(int n) {
  std::vector<int> g(n);
  std::iota(g.begin(), g.end(), 0);
  return g;
}

const Fidelity kBoth[] = {Fidelity::step, Fidelity::flow};
constexpr double S = 1 << 30;

}  // namespace

TEST_CASE("aws-p5-efa: one GPU's four 100G EFA act as one 400 Gb/s pipe (x 0.97); PCIe binds when slower") {
  const Topology t = ideal_preset("aws-p5-efa");
  const double pipe = 4 * 100e9 / 8 * 0.97;   // 48.5 GB/s, under the 55 GB/s PCIe path
  for (Fidelity f : kBoth) {
    CAPTURE(int(f));
    // GPU 0 of node 0 <-> GPU 0 of node 1: each direction on its own NICs 0-3.
    CHECK(send_recv(t, {0, 8}, S, f) == rel(alpha(t) + S / pipe, 1e-9));
    // Ring all-reduce over those two: 2 rounds of S/2 through the pipe, each after a hop's alpha.
    CHECK(seconds(t, CollectiveOp::all_reduce, Algorithm::ring, {0, 8}, S, f) == rel(S / pipe + 2 * alpha(t), 1e-9));
  }
  // A 20 GB/s PCIe path to the NICs is slower than the pipe: it sets the rate.
  const Topology slow = ideal_preset("aws-p5-efa", {{"topology.nic.pcie_bandwidth", "20 GB/s"}});
  for (Fidelity f : kBoth) CHECK(send_recv(slow, {0, 8}, S, f) == rel(alpha(t) + S / 20e9, 1e-9));
  // One link per GPU and direction, named after its NICs, at 4 x 12.5 GB/s x 0.97.
  const engine::Fabric fabric(t);
  int nic_links = 0;
  for (const auto& l : fabric.links())
    if (l.name.rfind("node0.nic", 0) == 0 && l.name.size() > 3 && l.name.substr(l.name.size() - 3) == ".up") {
      ++nic_links;
      CHECK(l.bandwidth == rel(pipe, 1e-12));
    }
  CHECK(nic_links == 8);
  CHECK(fabric.links()[fabric.nic_link(1)].name == "node0.nic4+5+6+7.up");
  CHECK(fabric.links()[fabric.nic_link(15)].name == "node1.nic28+29+30+31.up");
  // NCCL's rings across nodes: one channel per GPU's NIC group.
  CHECK(resolve_collective(t, CollectiveOp::all_reduce, Algorithm::ring, first(16), S).channel_orders.size() == 8);
}

TEST_CASE("dgx-h100-12hca: GPUs use their own HCA (GPU 1 on mlx5_3); the 4 storage HCAs carry nothing") {
  const Topology t = ideal_preset("dgx-h100-12hca");
  const double hca = 400e9 / 8 * 0.97;   // 48.5 GB/s, under the 55 GB/s PCIe path
  for (Fidelity f : kBoth) {
    CHECK(send_recv(t, {1, 9}, S, f) == rel(alpha(t) + S / hca, 1e-9));
    // Two GPUs of a node send at once on their own HCAs: no sharing.
    CHECK(send_recv(t, {0, 8, 1, 9}, S, f) == rel(alpha(t) + S / hca, 1e-9));
  }
  const engine::Fabric fabric(t);
  CHECK(fabric.links()[fabric.nic_link(1)].name == "node0.nic3.up");
  CHECK(fabric.links()[fabric.nic_link(7)].name == "node0.nic11.up");
  for (const auto& l : fabric.links())
    for (const char* storage : {".nic1.", ".nic2.", ".nic7.", ".nic8."}) CHECK(l.name.find(storage) == std::string::npos);
  CHECK(resolve_collective(t, CollectiveOp::all_reduce, Algorithm::ring, first(16), S).channel_orders.size() == 8);
}

TEST_CASE("pcie-4x-l40s-2socket: two GPUs sharing a NIC each get half of it when both send") {
  const Topology t = ideal_preset("pcie-4x-l40s-2socket");
  const double nic = 200e9 / 8 * 0.96;   // 24 GB/s, under the 28.16 GB/s PCIe path
  for (Fidelity f : kBoth) {
    CAPTURE(int(f));
    CHECK(send_recv(t, {0, 4}, S, f) == rel(alpha(t) + S / nic, 1e-9));
    // 0 -> 4, 4 -> 1, 1 -> 5, 5 -> 0: GPUs 0 and 1 (and 4 and 5) share NIC 0 of their node both ways.
    CHECK(send_recv(t, {0, 4, 1, 5}, S, f) == rel(alpha(t) + S / (nic / 2), 1e-9));
    // GPUs 0 and 2 are on different sockets and NICs: no sharing.
    CHECK(send_recv(t, {0, 4, 2, 6}, S, f) == rel(alpha(t) + S / nic, 1e-9));
  }
  CHECK(resolve_collective(t, CollectiveOp::all_gather, Algorithm::ring, first(8), S).channel_orders.size() == 2);
}

TEST_CASE("a GPU using the other socket's NIC crosses the socket link, a bottleneck when it is the slowest") {
  // Only NIC 0 (socket 0) carries GPU traffic: GPUs 2 and 3 (socket 1) reach it over the sockets' link.
  const std::vector<Override> one_nic{{"topology.nic.gpus", "[[0, 1, 2, 3], []]"}};
  const Topology upi = ideal_preset("pcie-4x-l40s-2socket", one_nic);
  auto slow_sets = one_nic;
  slow_sets.push_back({"topology.nic.socket_bandwidth", "10 GB/s"});
  const Topology slow = ideal_preset("pcie-4x-l40s-2socket", slow_sets);
  const double nic = 200e9 / 8 * 0.96;
  for (Fidelity f : kBoth) {
    CAPTURE(int(f));
    // 41.6 GB/s between the sockets: the 24 GB/s NIC still binds.
    CHECK(send_recv(upi, {2, 6}, S, f) == rel(alpha(upi) + S / nic, 1e-9));
    // 10 GB/s between the sockets: out of node 0 over socket 1 -> 0, into node 1 over 0 -> 1.
    CHECK(send_recv(slow, {2, 6}, S, f) == rel(alpha(slow) + S / 10e9, 1e-9));
    // GPUs 2 and 3 both cross: the socket link is shared, 5 GB/s each.
    CHECK(send_recv(slow, {2, 6, 3, 7}, S, f) == rel(alpha(slow) + S / 5e9, 1e-9));
    // GPU 0 does not cross: the NIC alone binds it.
    CHECK(send_recv(slow, {0, 4}, S, f) == rel(alpha(slow) + S / nic, 1e-9));
  }
  const engine::Fabric fabric(slow);
  std::vector<int> route;
  fabric.route(2, 6, route);
  std::vector<std::string> names;
  for (int l : route) names.push_back(fabric.links()[l].name);
  CHECK(names == std::vector<std::string>{"node0.gpu2.pcie-nic.up", "node0.socket1to0", "node0.nic0.up", "node1.nic0.down",
                                          "node1.socket0to1", "node1.gpu2.pcie-nic.down"});
}

TEST_CASE("a topology built in code with a GPU partly sharing NICs, or without one, is refused") {
  Topology t = ideal_preset("pcie-4x-l40s-2socket");
  t.nic.sockets.clear();
  t.nic.gpu_sockets.clear();
  t.nic.count = 3;
  t.nic.gpus = {{0, 1}, {1}, {2, 3}};   // GPU 1 on NICs 0 and 1, GPU 0 on NIC 0 only
  CHECK_THROWS_WITH_AS(engine::Fabric{t}, doctest::Contains("must use the same NICs"), std::invalid_argument);
  t.nic.gpus = {{0, 1}, {}, {2}};       // GPU 3 has none
  CHECK_THROWS_WITH_AS(engine::Fabric{t}, doctest::Contains("GPU 3 is served by no NIC"), std::invalid_argument);
}
