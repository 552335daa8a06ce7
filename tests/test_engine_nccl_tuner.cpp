// NCCL's tuning model (sim/engine/nccl_tuner.hpp), checked against closed forms worked by hand from
// data/reference/nccl_model_constants_and_statements.md (the "2.23" rows): the graphs its search
// finds, latency and bandwidth per (function, algorithm, protocol), the sizes where NCCL switches
// LL -> LL128 -> Simple and tree -> ring on a 2-node H100 cluster, and `auto` following the pick.
#include <doctest/doctest.h>

#include "relative.hpp"

#include <numeric>
#include <string>

#include "engine/nccl_tuner.hpp"
#include "tpsim/engine.hpp"

using namespace tpsim;
namespace nccl = tpsim::engine::nccl;

namespace {

Topology with_nccl(const std::string& preset, std::vector<Override> sets = {}) {
  sets.push_back({"topology.collectives.nccl_version", "2.23"});
  return load_topology(preset, sets);
}

std::vector<int> first(int n) {
  std::vector<int> g(n);
  std::iota(g.begin(), g.end(), 0);
  return g;
}

const nccl::Candidate& find(const nccl::Tuning& t, nccl::Algo a, nccl::Proto p) {
  for (const nccl::Candidate& c : t.candidates)
    if (c.algo == a && c.proto == p) return c;
  FAIL("no candidate " << nccl::algo_name(a) << "/" << nccl::proto_name(p));
  return t.candidates.front();
}

bool has(const nccl::Tuning& t, nccl::Algo a) {
  for (const nccl::Candidate& c : t.candidates)
    if (c.algo == a) return true;
  return false;
}

std::string pick(const nccl::Tuning& t) {
  const nccl::Candidate& c = t.candidates.at(t.pick);
  return std::string(nccl::algo_name(c.algo)) + "/" + nccl::proto_name(c.proto);
}

}  // namespace

TEST_CASE("what NCCL sees of a 2-node H100 cluster: 18 NVLinks at 20.6 GB/s, 8 NICs at 50 GB/s") {
  const nccl::System s = nccl::system_of(with_nccl("cluster-h100-ndr"), first(16));
  CHECK(s.compute_capability == 90);
  CHECK(s.gpu_bw == rel(18 * 20.6));   // NCCL's "NVL[370.8]"
  CHECK(s.nic_bw == rel(50.0));
  CHECK(s.nics == 8);
  CHECK((s.ranks == 16 && s.nodes == 2 && s.local_ranks == 8));
  CHECK(s.nvls);
}

TEST_CASE("the graphs NCCL's search finds, worked by hand") {
  SUBCASE("one DGX H100") {
    // Ring: SM90 intra speeds from 60: 6 x 60 = 360 < 370.8 (not all of it), 50 -> 7 (350), 40 -> 9
    // (360, no better), 30 -> 12 (360), 24/60 < 0.49 stops: 6 x 60; 60 >= 50 duplicates to 12 x 30;
    // 40 fits only 9, so 12 x 30 stays. Tree: 12 channels, from the first speed with 12 x s <= 370.8 *
    // 8/7: 30. NVLS: min = max = 8 heads, 8 x 40 <= 370.8; bwInter rises to 60 (< 2 x 40, no NIC).
    const nccl::Graphs g = nccl::search_graphs("2.23", nccl::system_of(with_nccl("dgx-h100"), first(8)));
    CHECK((g.ring.channels == 12 && g.ring.bw_intra == 30.0 && g.ring.bw_inter == 30.0));
    CHECK((g.tree.channels == 12 && g.tree.bw_intra == 30.0));
    CHECK((g.nvls.channels == 8 && g.nvls.bw_intra == 40.0 && g.nvls.bw_inter == 60.0));
    CHECK(g.comm_channels == 24);
  }
  SUBCASE("two nodes of 8 H100 with 8 NICs each") {
    // SM90 speeds with NICs from 48 (<= 50): 48 -> 7 channels (NVLink: 8 x 48 > 370.8), 45 -> 8 (all
    // 8 NICs, 360), down to 24 (15, 360), 22/45 < 0.49 stops: 8 x 45; no duplication (Hopper, < 50,
    // > 4 channels); 48 does not fit 8. NVLS: 8 heads at 45, then bwInter 48 (8 NICs carry 48 each).
    const nccl::Graphs g = nccl::search_graphs("2.23", nccl::system_of(with_nccl("cluster-h100-ndr"), first(16)));
    CHECK((g.ring.channels == 8 && g.ring.bw_intra == 45.0));
    CHECK((g.tree.channels == 8 && g.tree.bw_intra == 45.0));
    CHECK((g.nvls.channels == 8 && g.nvls.bw_intra == 45.0 && g.nvls.bw_inter == 48.0));
    CHECK(g.comm_channels == 16);
  }
}

TEST_CASE("NCCL's latency and bandwidth per (algorithm, protocol), in closed form") {
  SUBCASE("all-reduce, 16 ranks on 2 nodes (H100, 8 channels of 45 GB/s)") {
    const nccl::Tuning t = nccl::tune("2.23", nccl::system_of(with_nccl("cluster-h100-ndr"), first(16)),
                                      CollectiveOp::all_reduce, 1024);
    // Ring: nsteps 30, 2 of them across nodes; across nodes an NVLink step costs at least the net
    // post overhead (1 us, x3 Simple); busBw 8 x 45 = 360, algorithm bandwidth x 16/30.
    const auto& ring_ll = find(t, nccl::kRing, nccl::kLL);
    CHECK(ring_ll.latency_us == rel(6.6 + 28 * 1.0 + 2 * 2.7, 1e-6));
    CHECK(ring_ll.bandwidth_gbs == rel(39.0 * 16 / 30, 1e-6));   // llMaxBw Intel, 2 nodes
    const auto& ring_ll128 = find(t, nccl::kRing, nccl::kLL128);
    CHECK(ring_ll128.latency_us == rel(14.0 + 28 * 1.9 + 2 * 4.0, 1e-6));
    CHECK(ring_ll128.bandwidth_gbs == rel(8 * 36.7 * 16 / 30, 1e-6));   // 8 x 36.7 < 360 x 0.92
    const auto& ring_simple = find(t, nccl::kRing, nccl::kSimple);
    CHECK(ring_simple.latency_us == rel(8.4 + 28 * 3.4 + 2 * 14.0, 1e-6));
    CHECK(ring_simple.bandwidth_gbs == rel(360.0 * 16 / 30, 1e-6));
    // Tree: 2 x ((8-1) intra + log2(2) inter); busBw min(360 x 0.92, 8 x 41.4) = 331.2, x 0.5.
    const auto& tree_ll = find(t, nccl::kTree, nccl::kLL);
    CHECK(tree_ll.latency_us == rel(6.8 + 2 * (7 * 0.6 + 5.0), 1e-6));
    CHECK(tree_ll.bandwidth_gbs == rel(39.0 * 0.5, 1e-6));   // min(331.2 / 3.8, 39)
    const auto& tree_ll128 = find(t, nccl::kTree, nccl::kLL128);
    CHECK(tree_ll128.latency_us == rel(14.0 + 2 * (7 * 1.25 + 8.5), 1e-6));
    CHECK(tree_ll128.bandwidth_gbs == rel(8 * 36.7 * 0.5, 1e-6));   // min(331.2 x 120/128, 8 x 36.7)
    const auto& tree_simple = find(t, nccl::kTree, nccl::kSimple);
    CHECK(tree_simple.latency_us == rel(8.4 + 2 * (7 * 4.0 + 14.0), 1e-6));
    CHECK(tree_simple.bandwidth_gbs == rel(331.2 * 0.5, 1e-6));
    // NVLS-tree: intra 25 + 2 log2(2) x 14; min(45, 48) x 8 x 5/6.
    const auto& nvls_tree = find(t, nccl::kNvlsTree, nccl::kSimple);
    CHECK(nvls_tree.latency_us == rel(25.0 + 2 * 14.0, 1e-6));
    CHECK(nvls_tree.bandwidth_gbs == rel(45.0 * 8 * 5 / 6, 1e-6));
    CHECK_FALSE(has(t, nccl::kNvls));   // NVLS across nodes needs CollNet
    CHECK_FALSE(has(t, nccl::kPat));
    CHECK(t.candidates.size() == 7);
  }
  SUBCASE("the same 16 ranks on AMD hosts: net post overhead 2 us, the AMD llMaxBw row") {
    const nccl::Tuning t = nccl::tune("2.23",
                                      nccl::system_of(with_nccl("cluster-h100-ndr", {{"topology.nic.host_cpu", "amd"}}), first(16)),
                                      CollectiveOp::all_reduce, 1024);
    const auto& ring_ll = find(t, nccl::kRing, nccl::kLL);
    CHECK(ring_ll.latency_us == rel(6.6 + 28 * 2.0 + 2 * 2.7, 1e-6));
    CHECK(ring_ll.bandwidth_gbs == rel(22.5 * 16 / 30, 1e-6));   // llMaxBw AMD, 2 nodes
    CHECK(find(t, nccl::kRing, nccl::kLL128).latency_us == rel(14.0 + 28 * 2.0 + 2 * 4.0, 1e-6));
    CHECK(find(t, nccl::kRing, nccl::kSimple).latency_us == rel(8.4 + 28 * 6.0 + 2 * 14.0, 1e-6));
    CHECK(find(t, nccl::kTree, nccl::kLL).latency_us == rel(6.8 + 2 * (7 * 0.6 + 5.0), 1e-6));   // trees post no overhead
  }
  SUBCASE("all-reduce, one DGX H100 (ring 12 x 30 GB/s, NVLS 8 x 40)") {
    const nccl::Tuning t = nccl::tune("2.23", nccl::system_of(with_nccl("dgx-h100"), first(8)), CollectiveOp::all_reduce, 1024);
    CHECK(find(t, nccl::kRing, nccl::kLL).latency_us == rel(6.6 + 14 * 0.6, 1e-6));
    CHECK(find(t, nccl::kRing, nccl::kLL).bandwidth_gbs == rel(141.0 * 8 / 14, 1e-6));   // llMaxBw Hopper, 1 node
    CHECK(find(t, nccl::kRing, nccl::kLL128).bandwidth_gbs == rel(360 * 0.92 * 8 / 14, 1e-6));
    CHECK(find(t, nccl::kRing, nccl::kSimple).latency_us == rel(8.4 + 14 * 3.4, 1e-6));
    CHECK(find(t, nccl::kTree, nccl::kLL).latency_us == rel(6.8 + 2 * 7 * 0.6, 1e-6));
    CHECK(find(t, nccl::kTree, nccl::kLL).bandwidth_gbs == rel(331.2 / 3.8 * 0.5, 1e-6));
    CHECK(find(t, nccl::kTree, nccl::kLL128).bandwidth_gbs == rel(331.2 * 7 / 9 * 0.5, 1e-6));
    CHECK(find(t, nccl::kNvls, nccl::kSimple).latency_us == rel(25.0, 1e-6));
    CHECK(find(t, nccl::kNvls, nccl::kSimple).bandwidth_gbs == rel(8 * 40.0 * 5 / 6, 1e-6));
    CHECK_FALSE(has(t, nccl::kNvlsTree));   // one node
  }
  SUBCASE("all-gather, one GPU on each of 4 nodes: PAT against the ring") {
    // Ring graph: one NIC per node: 1 x 48, duplicated to 2 x 24 (48 >= 25 with only 1 channel); 4
    // nodes read bwInter. ppn 1: the inter-node latency is the Tree row's.
    const nccl::System s = nccl::system_of(with_nccl("cluster-h100-ndr"), {0, 8, 16, 24});
    CHECK((s.local_ranks == 1 && s.nodes == 4 && s.nics == 1));
    const nccl::Tuning t = nccl::tune("2.23", s, CollectiveOp::all_gather, 1 << 20);
    const auto& pat = find(t, nccl::kPat, nccl::kSimple);
    CHECK(pat.latency_us == rel(8 + 2 * 14.0 / 3.5 + 4 * 2.8, 1e-6));
    CHECK(pat.bandwidth_gbs == rel(2 * 24.0 * 0.75, 1e-6));   // not converted: non-ring all-gather
    CHECK(find(t, nccl::kRing, nccl::kLL).latency_us == rel(6.6 + 3 * 5.0, 1e-6));
    CHECK(find(t, nccl::kRing, nccl::kLL).bandwidth_gbs == rel(20.4 * 4 / 3, 1e-6));   // llMaxBw Intel, > 2 nodes
    CHECK(find(t, nccl::kRing, nccl::kSimple).latency_us == rel(8.4 + 3 * 14.0, 1e-6));
    CHECK(find(t, nccl::kRing, nccl::kSimple).bandwidth_gbs == rel(48.0 * 4 / 3, 1e-6));
    CHECK(find(t, nccl::kRing, nccl::kLL128).bandwidth_gbs == rel(48 * 0.92 * 4 / 3, 1e-6));
    CHECK_FALSE(has(t, nccl::kTree));
  }
  SUBCASE("PCIe: no LL128 (NCCL enables it only over NVLink), 3/4 of the line rate") {
    const nccl::System s = nccl::system_of(with_nccl("pcie-8x-l40s"), first(8));
    CHECK(s.gpu_bw == rel(24.0));
    const nccl::Tuning t = nccl::tune("2.23", s, CollectiveOp::all_reduce, 1 << 20);
    for (const nccl::Candidate& c : t.candidates) CHECK(c.proto != nccl::kLL128);
    CHECK(find(t, nccl::kRing, nccl::kSimple).latency_us == rel(8.4 + 14 * 5.7, 1e-6));
  }
  SUBCASE("NCCL tunes no point-to-point operation") {
    const nccl::System s = nccl::system_of(with_nccl("dgx-h100"), first(8));
    CHECK(nccl::tune("2.23", s, CollectiveOp::all_to_all, 1 << 20).pick == -1);
    CHECK(nccl::tune("2.23", s, CollectiveOp::send_recv, 1 << 20).pick == -1);
  }
}

TEST_CASE("time = latency + bytes / bandwidth, with the tree correction and the ring's plateau") {
  const nccl::System s = nccl::system_of(with_nccl("cluster-h100-ndr"), first(16));
  // 256 KiB: log2(256 Ki / 64) = 12: tree factors LL 0.4, LL128 0.6; the ring Simple plateau applies
  // from 64 x 16 comm channels x 16 ranks = 16 KiB: latency x 1.4.
  const double S = 262144;
  const nccl::Tuning t = nccl::tune("2.23", s, CollectiveOp::all_reduce, S);
  CHECK(find(t, nccl::kTree, nccl::kLL).time_us == rel(25.2 + S / (1000 * 19.5 * 0.4), 1e-6));
  CHECK(find(t, nccl::kTree, nccl::kLL128).time_us == rel(48.5 + S / (1000 * 146.8 * 0.6), 1e-6));
  CHECK(find(t, nccl::kRing, nccl::kSimple).time_us == rel(131.6 * 1.4 + S / (1000 * 192.0), 1e-6));
  CHECK(find(t, nccl::kRing, nccl::kLL).time_us == rel(40.0 + S / (1000 * 20.8), 1e-6));
  // Below the plateau threshold the ring Simple latency is NCCL's table value.
  const nccl::Tuning small = nccl::tune("2.23", s, CollectiveOp::all_reduce, 16383);
  CHECK(find(small, nccl::kRing, nccl::kSimple).time_us == rel(131.6 + 16383 / (1000 * 192.0), 1e-6));
}

TEST_CASE("where NCCL 2.23 switches on 2 nodes of 8 H100 (closed-form crossovers)") {
  SUBCASE("without NVLS: tree/LL -> tree/LL128 -> ring/LL128 -> ring/Simple") {
    // tree/LL vs tree/LL128 at 128 KiB (factors .5 / .6): 25.2 + 13.44 < 48.5 + 1.49; at 256 KiB
    // (.4 / .6) 25.2 + 33.61 > 48.5 + 2.98; ring/LL (40 + 12.60) loses to tree/LL128 there too. tree/LL128 vs ring/LL128 at 16 MiB (factor .9): 48.5 + 126.99 <
    // 75.2 + 107.14; at 32 MiB 48.5 + 253.97 > 75.2 + 214.29. ring/LL128 vs ring/Simple (x1.4
    // plateau) at 64 MiB: 75.2 + 428.58 < 184.24 + 349.53; at 128 MiB 932.37 > 883.29.
    const nccl::System s = nccl::system_of(with_nccl("cluster-h100-ndr", {{"topology.intra.nvls", "false"}}), first(16));
    auto at = [&](double bytes) { return pick(nccl::tune("2.23", s, CollectiveOp::all_reduce, bytes)); };
    CHECK(at(1024) == "Tree/LL");
    CHECK(at(131072) == "Tree/LL");
    CHECK(at(262144) == "Tree/LL128");
    CHECK(at(16 << 20) == "Tree/LL128");
    CHECK(at(32 << 20) == "Ring/LL128");
    CHECK(at(64 << 20) == "Ring/LL128");
    CHECK(at(128 << 20) == "Ring/Simple");
    CHECK(at(16.0 * (1 << 30)) == "Ring/Simple");
  }
  SUBCASE("with NVLS (the preset): tree/LL -> tree/LL128 -> NVLS-tree/Simple") {
    // NVLS-tree (53 us, 300 GB/s) against tree/LL128 (factor .6 at log2(bytes / 64) 13 and 14): at
    // 512 KiB 48.5 + 5.95 = 54.45 < 53 + 1.75; at 1 MiB 48.5 + 11.90 = 60.40 > 53 + 3.50.
    const nccl::System s = nccl::system_of(with_nccl("cluster-h100-ndr"), first(16));
    auto at = [&](double bytes) { return pick(nccl::tune("2.23", s, CollectiveOp::all_reduce, bytes)); };
    CHECK(at(131072) == "Tree/LL");
    CHECK(at(262144) == "Tree/LL128");
    CHECK(at(524288) == "Tree/LL128");
    CHECK(at(1 << 20) == "NVLSTree/Simple");
    CHECK(at(16.0 * (1 << 30)) == "NVLSTree/Simple");
  }
}

TEST_CASE("what NCCL sees of two AWS p5: 8 network devices at 50 GB/s, each four 100 Gb/s EFA of one GPU") {
  // aws-ofi-nccl's multi-rail protocol presents a GPU's four EFA as one device. Seen one card at a
  // time (12.5 GB/s), NVLS-tree's inter-node bandwidth would drop below the tree's and NCCL's pick
  // would be the tree from 512 MiB up, where the measured 393-487 GB/s busbw needs NVLS-tree.
  const nccl::System s = nccl::system_of(with_nccl("aws-p5-efa", {{"topology.nodes", "2"}}), first(16));
  CHECK(s.nic_bw == rel(50.0));
  CHECK(s.nics == 8);
  for (double bytes : {1.0 * (1 << 20), 512.0 * (1 << 20), 16.0 * (1 << 30)})
    CHECK(pick(nccl::tune("2.23", s, CollectiveOp::all_reduce, bytes)) == "NVLSTree/Simple");
  // The preset runs no LL128 (aws-ofi-nccl switches it off over EFA): NCCL never weighs it there,
  // while the InfiniBand preset's candidates include it.
  CHECK(!s.protocols[nccl::kLL128]);
  const nccl::Tuning efa = nccl::tune("2.23", s, CollectiveOp::all_reduce, 65536);
  for (const nccl::Candidate& c : efa.candidates) CHECK(c.proto != nccl::kLL128);
  CHECK(has(efa, nccl::kTree));
  const nccl::Tuning ib = nccl::tune("2.23", nccl::system_of(with_nccl("cluster-h100-ndr"), first(16)), CollectiveOp::all_reduce, 65536);
  CHECK(find(ib, nccl::kTree, nccl::kLL128).proto == nccl::kLL128);
}

TEST_CASE("auto follows NCCL's pick when collectives.nccl_version is set, and only then") {
  const std::vector<int> g = first(16);
  const Topology plain = load_topology("cluster-h100-ndr");
  const Topology tuned = with_nccl("cluster-h100-ndr");
  SUBCASE("the pick, made concrete") {
    const CollectiveInstance small = resolve_collective(tuned, CollectiveOp::all_reduce, Algorithm::automatic, g, 262144);
    CHECK(small.algorithm == Algorithm::tree);
    CHECK(small.protocol == "LL128");
    const CollectiveInstance large = resolve_collective(tuned, CollectiveOp::all_reduce, Algorithm::automatic, g, 64 << 20);
    CHECK(large.algorithm == Algorithm::nvls_tree);
    CHECK(large.protocol == "Simple");
    // tpsim's own selector picks the ring at 256 KiB.
    CHECK(resolve_collective(plain, CollectiveOp::all_reduce, Algorithm::automatic, g, 262144).algorithm == Algorithm::ring);
    const NcclSelection sel = nccl_selection(tuned, CollectiveOp::all_reduce, g, 262144);
    CHECK(sel.version == "2.23");
    REQUIRE(sel.pick >= 0);
    CHECK(sel.followed == sel.pick);
    CHECK(sel.candidates[sel.pick].algorithm == "Tree");
    CHECK(sel.candidates[sel.pick].seconds == rel((48.5 + 262144 / (1000 * 146.8 * 0.6)) * 1e-6, 1e-6));
    CHECK(nccl_selection(plain, CollectiveOp::all_reduce, g, 262144).version.empty());
  }
  SUBCASE("an explicit algorithm is not overridden") {
    const CollectiveInstance ring = resolve_collective(tuned, CollectiveOp::all_reduce, Algorithm::ring, g, 262144);
    CHECK(ring.algorithm == Algorithm::ring);
    const CollectiveInstance own = resolve_collective(plain, CollectiveOp::all_reduce, Algorithm::ring, g, 262144);
    CHECK(ring.protocol == own.protocol);
    CHECK(ring.channel_orders == own.channel_orders);
  }
  SUBCASE("a pick tpsim cannot run: the next by NCCL's time") {
    // Single node, all-gather of 4.7 MB: NVLS (25 + S/320k us) beats ring LL (10.8 + S/161.1k) above
    // 4.61 MB and ring LL128 (27.3 + S/378.5k) below 4.76 MB; tpsim has no NVLS all-gather, so auto
    // runs ring/LL128, NCCL's second.
    const Topology h100 = with_nccl("dgx-h100");
    const NcclSelection sel = nccl_selection(h100, CollectiveOp::all_gather, first(8), 4.7e6);
    REQUIRE(sel.pick >= 0);
    CHECK(sel.candidates[sel.pick].algorithm == "NVLS");
    REQUIRE(sel.followed >= 0);
    CHECK(sel.candidates[sel.followed].algorithm == "Ring");
    CHECK(sel.candidates[sel.followed].protocol == "LL128");
    const CollectiveInstance inst = resolve_collective(h100, CollectiveOp::all_gather, Algorithm::automatic, first(8), 4.7e6);
    CHECK(inst.algorithm == Algorithm::ring);
    CHECK(inst.protocol == "LL128");
  }
  SUBCASE("a protocol the topology does not list is one NCCL_PROTO switched off: never weighed") {
    // Without LL128 in collectives.protocols, NCCL's tree/LL128 at 256 KiB (51.48 us) is not a
    // candidate; the pick is the next by NCCL's time: ring/LL 40 + 12.60 = 52.60 us (NVLS-tree 53.87,
    // tree/LL 58.81).
    const Topology no_ll128 = with_nccl("cluster-h100-ndr", {{"topology.collectives.protocols",
                                                              "[{name: LL, base_latency: 6.6 us, efficiency: 0.5}, "
                                                              "{name: Simple, base_latency: 4 us}]"}});
    const NcclSelection sel = nccl_selection(no_ll128, CollectiveOp::all_reduce, g, 262144);
    for (const NcclCandidate& c : sel.candidates) CHECK(c.protocol != "LL128");
    CHECK(sel.followed == sel.pick);
    CHECK(sel.candidates[sel.pick].algorithm == "Ring");
    CHECK(sel.candidates[sel.pick].protocol == "LL");
    CHECK(sel.candidates[sel.pick].seconds == rel(52.60e-6, 1e-3));
    CHECK(resolve_collective(no_ll128, CollectiveOp::all_reduce, Algorithm::automatic, g, 262144).protocol == "LL");
  }
}
