// Timing engine, fidelity: `step` (every chunk a message) and `flow` (the same rounds grouped into
// phases of per-edge flows) time the same instance, so they must agree for every collective op and
// every algorithm that implements it, on one NVSwitch node and across rail-optimised nodes.
#include <doctest/doctest.h>

#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>

#include "tpsim/engine.hpp"

#include "all_collectives.hpp"

using namespace tpsim;

namespace {


// Times every (op, algorithm) the engine accepts on `gpus` GPUs at 256 MiB in both fidelities and
// checks |flow - step| <= 5% of step. Returns how many pairs applied.
int check_fidelities(const Topology& t, const std::vector<int>& group) {
  const double S = 256.0 * 1024 * 1024;
  const int gpus = static_cast<int>(group.size());
  int applied = 0;
  for (CollectiveOp op : kOps)
    for (Algorithm a : kAlgorithms) {
      try {
        (void)resolve_collective(t, op, a, group, S);
      } catch (const std::invalid_argument&) {
        continue;   // the algorithm does not implement the op (or not on this topology)
      }
      ++applied;
      const CollectiveTiming step = time_collective(t, op, a, group, S, EngineOptions{Fidelity::step});
      const CollectiveTiming flow = time_collective(t, op, a, group, S, EngineOptions{Fidelity::flow});
      CHECK(describe(step.instance) == describe(flow.instance));   // one instance, two backends
      CHECK_MESSAGE(std::abs(flow.seconds - step.seconds) <= 0.05 * std::abs(step.seconds),
                    t.name << " " << gpus << " GPUs " << std::string(to_string(op)) << " " << describe(step.instance) << ": step "
                           << step.seconds * 1e3 << " ms, flow " << flow.seconds * 1e3 << " ms");
    }
  return applied;
}

std::vector<int> first_gpus(int n) {
  std::vector<int> v(n);
  std::iota(v.begin(), v.end(), 0);
  return v;
}

std::vector<int> op_positions(int n) {
  std::vector<int> v(n);
  std::iota(v.begin(), v.end(), 0);
  return v;
}

}  // namespace

TEST_CASE("step and flow agree within 5% for every op and algorithm on dgx-h100 (8 GPUs)") {
  // all_reduce x 8 (with one-shot and two-shot), all_gather / reduce_scatter x 4 (ring, hd, direct,
  // hierarchical), broadcast / reduce x 3 (ring, tree, direct), all_to_all / send_recv x 2 (ring,
  // direct).
  CHECK(check_fidelities(load_topology("dgx-h100"), first_gpus(8)) == 26);
}

TEST_CASE("step and flow agree within 5% for every op and algorithm on 4 nodes of cluster-h100-ndr (32 GPUs)") {
  // As on one node, less NVLS, one-shot and two-shot (in-switch reduction and peer memory need the
  // group on one node), plus NVLS-tree (all_reduce); the tree is NCCL's chain + inter-node double
  // binary tree here.
  CHECK(check_fidelities(load_topology("cluster-h100-ndr", {{"topology.nodes", "4"}}), first_gpus(32)) == 24);
}

TEST_CASE("step and flow agree within 5% with one GPU on each of 4 nodes (PAT's layout)") {
  // all_reduce x 5 (ring, tree, hd, direct, hierarchical), all_gather / reduce_scatter x 5 (ring,
  // hd, direct, hierarchical, pat), broadcast / reduce x 3, all_to_all / send_recv x 2; the NVLS
  // ones need several GPUs per node.
  const Topology t = load_topology("cluster-h100-ndr", {{"topology.nodes", "4"}});
  CHECK(check_fidelities(t, {0, 8, 16, 24}) == 25);
}

TEST_CASE("step shares a capped edge among the round's messages on it, as flow does") {
  // NCCL's tree on 2 nodes at 4 MiB runs LL128, whose per-rank bandwidth cap binds; a round sends
  // both trees' chunks on some edges. Each message taking the edge's whole cap made step 22% faster
  // than flow (124 against 159 us).
  const Topology t = load_topology("cluster-h100-ndr", {{"topology.nodes", "2"}});
  const double S = 4.0 * 1024 * 1024;
  const CollectiveTiming step = time_collective(t, CollectiveOp::all_reduce, Algorithm::tree, first_gpus(16), S,
                                                EngineOptions{Fidelity::step});
  const CollectiveTiming flow = time_collective(t, CollectiveOp::all_reduce, Algorithm::tree, first_gpus(16), S,
                                                EngineOptions{Fidelity::flow});
  REQUIRE(step.instance.protocol == "LL128");
  CHECK(std::abs(flow.seconds - step.seconds) <= 0.05 * step.seconds);
}

TEST_CASE("resolve_collectives gives identical collectives one instance and leaves resolved ones alone") {
  const Topology t = load_topology("cluster-h100-ndr", {{"topology.nodes", "2"}});
  ProgramSet set;
  set.ranks.resize(16);
  for (int r = 0; r < 16; ++r) {
    set.ranks[r].rank = r;
    Op op;
    op.kind = OpKind::collective;
    op.collective.group.resize(16);
    std::iota(op.collective.group.begin(), op.collective.group.end(), 0);
    op.collective.bytes = 1 << 26;
    set.ranks[r].ops.push_back(op);
  }
  set.ranks[3].ops[0].collective.instance.algorithm = Algorithm::direct;   // resolved by someone else
  set.ranks[3].ops[0].collective.instance.protocol = "Simple";
  set.ranks[3].ops[0].collective.instance.channel_orders = {op_positions(16)};
  resolve_collectives(t, set);
  const CollectiveInstance expect = resolve_collective(t, CollectiveOp::all_reduce, Algorithm::automatic,
                                                       set.ranks[0].ops[0].collective.group, 1 << 26);
  for (int r = 0; r < 16; ++r) {
    const CollectiveInstance& got = set.ranks[r].ops[0].collective.instance;
    CHECK(got.resolved());
    if (r == 3) {
      CHECK(got.algorithm == Algorithm::direct);
      continue;
    }
    CHECK(describe(got) == describe(expect));
    CHECK(got.channel_orders == expect.channel_orders);
  }
  CHECK(expect.channel_orders.size() == 8);   // one ring per NIC across nodes, as NCCL
}
