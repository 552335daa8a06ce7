// Collective timing benchmarks.
// 1. Simulation speed at scale: ring all-reduce on cluster-h100-ndr (8x H100 + 8x NDR per node) in
//    flow and step fidelity, from 64 to 131,072 GPUs. Wall time includes building the platform; peak
//    RSS is the process's high-water mark so far (getrusage), so rows go from small to large.
//    Goals: 4096 GPUs, 1 GiB, flow fidelity, < 0.3 s wall on the 2-core machine; 131,072 GPUs
//    within 24 GiB and the default vm.max_map_count.
//    Then direct all-to-all, 64 MiB, flow fidelity, 256 and 2048 GPUs (its closed form,
//    engine/collective_plan.hpp). Goal: 2048 GPUs < 10 s wall on the 2-core machine. And the same
//    on a dragonfly under minimal routing with one node per group (256 and 512 groups).
// 2. Step vs flow: every op x algorithm that applies, 256 MiB, on dgx-h100 (8 GPUs) and 4 nodes
//    of cluster-h100-ndr (32 GPUs); tests/test_engine_fidelity.cpp asserts |rel diff| <= 5%.
#include <malloc.h>
#include <sys/resource.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "engine/collective_run.hpp"
#include "engine/select.hpp"
#include "machine.hpp"
#include "tpsim/engine.hpp"

using namespace tpsim;

namespace {

double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024.0;
}

std::vector<int> first(int n) {
  std::vector<int> g(n);
  std::iota(g.begin(), g.end(), 0);
  return g;
}

// channels = 0: as the selector resolves it (one ring per NIC across nodes); 1: the same instance
// cut down to its first channel, to compare with single-ring figures.
// `topology`: a preset or path, 8 GPUs per node; `sets`: further overrides.
void row(int gpus, Fidelity f, double bytes, int channels = 0, CollectiveOp op = CollectiveOp::all_reduce,
         const std::string& topology = "cluster-h100-ndr", std::vector<Override> sets = {}) {
  const auto t0 = std::chrono::steady_clock::now();
  sets.push_back({"topology.nodes", std::to_string((gpus + 7) / 8)});
  const Topology topo = load_topology(topology, sets);
  const std::vector<int> group = first(gpus);
  const Algorithm algorithm = op == CollectiveOp::all_to_all ? Algorithm::direct : Algorithm::ring;
  double seconds = 0;
  int used = channels;
  std::string instance;
  if (channels == 0) {
    const CollectiveTiming t = time_collective(topo, op, algorithm, group, bytes, EngineOptions{f});
    seconds = t.seconds;
    used = t.channels;
    instance = describe(t.instance);
  } else {
    const engine::Fabric fabric(topo);
    engine::CollectiveSpec spec;
    spec.op = op;
    spec.group = group;
    spec.bytes = bytes;
    spec.instance = engine::resolve(fabric, op, algorithm, group, bytes, 0);
    spec.instance.channel_orders.resize(channels);
    auto plan = std::make_shared<const engine::CollectivePlan>(engine::plan_collective(fabric, spec, f));
    engine::SimPlatform platform(fabric);
    engine::RunContext ctx;
    ctx.platform = &platform;
    engine::start_collective(ctx, plan, f, [&] { seconds = platform.now(); });
    platform.run();
    instance = describe(plan->instance);
  }
  const double busbw = bytes / seconds * busbw_factor(op, gpus);
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%6d %6s %10.0f %14.1f %12.2f %9d %10.3f %12.1f  %s\n", gpus, f == Fidelity::flow ? "flow" : "step",
              bytes / (1 << 20), seconds * 1e6, busbw / 1e9, used, wall, peak_rss_mb(), instance.c_str());
  std::fflush(stdout);
}

void step_vs_flow(const std::string& label, const Topology& t, int gpus) {
  constexpr CollectiveOp ops[] = {CollectiveOp::all_reduce, CollectiveOp::all_gather, CollectiveOp::reduce_scatter,
                                  CollectiveOp::broadcast,  CollectiveOp::reduce,     CollectiveOp::all_to_all,
                                  CollectiveOp::send_recv};
  constexpr Algorithm algos[] = {Algorithm::ring,   Algorithm::tree, Algorithm::halving_doubling,
                                 Algorithm::direct, Algorithm::nvls, Algorithm::hierarchical};
  const double S = 256.0 * 1024 * 1024;
  const std::vector<int> group = first(gpus);
  for (CollectiveOp op : ops)
    for (Algorithm a : algos) {
      CollectiveTiming step, flow;
      try {
        step = time_collective(t, op, a, group, S, EngineOptions{Fidelity::step});
        flow = time_collective(t, op, a, group, S, EngineOptions{Fidelity::flow});
      } catch (const std::invalid_argument&) {
        continue;   // the algorithm does not implement the op here
      }
      std::printf("%-15s %-17s %-22s %12.6f %12.6f %+9.2f%%  %s\n", to_string(op), to_string(a), label.c_str(),
                  step.seconds, flow.seconds, 100 * (flow.seconds - step.seconds) / step.seconds,
                  describe(step.instance).c_str());
      std::fflush(stdout);
    }
}

}  // namespace

int main(int argc, char** argv) {
  std::printf("%s\n", tpsim::bench::machine_line().c_str());
  // As tpsim's main() does: keep freed memory instead of faulting it in again.
  mallopt(M_MMAP_THRESHOLD, 1 << 30);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  mallopt(M_TOP_PAD, 256 << 20);
  // --flow stops after the flow rows; --full adds the 1024-GPU step row with NCCL's 8 channels (16.7M messages: many minutes).
  const bool full = argc > 1 && std::string(argv[1]) == "--full";
  std::printf("Ring all-reduce on cluster-h100-ndr, 1 GiB (protocol and channels as the selector resolves them)\n");
  std::printf("%6s %6s %10s %14s %12s %9s %10s %12s  %s\n", "GPUs", "fid.", "size(MiB)", "sim time(us)", "busbw(GB/s)",
              "channels", "wall(s)", "peak RSS(MB)", "instance");
  const double bytes = 1 << 30;
  // 131,072 GPUs (16,384 nodes): issue 13's goal, within 24 GiB and the default vm.max_map_count.
  for (int gpus : {64, 256, 1024, 4096, 16384, 131072}) row(gpus, Fidelity::flow, bytes);
  std::printf("\nDirect all-to-all on cluster-h100-ndr, 64 MiB (goal: 2048 GPUs < 10 s wall)\n");
  std::printf("%6s %6s %10s %14s %12s %9s %10s %12s  %s\n", "GPUs", "fid.", "size(MiB)", "sim time(us)", "busbw(GB/s)",
              "channels", "wall(s)", "peak RSS(MB)", "instance");
  for (int gpus : {256, 2048}) row(gpus, Fidelity::flow, 64 << 20, 0, CollectiveOp::all_to_all);
  // A dragonfly under minimal routing: a flow per pair of groups between their gateways.
  std::printf("\nDirect all-to-all on a dragonfly (examples/topologies/h100-dragonfly-what-if.yaml), minimal routing,\n"
              "one node per group, 64 MiB: 256 and 512 groups\n");
  for (int gpus : {2048, 4096})
    row(gpus, Fidelity::flow, 64 << 20, 0, CollectiveOp::all_to_all, "examples/topologies/h100-dragonfly-what-if.yaml",
        {{"topology.network.nodes_per_group", "1"}, {"topology.network.groups", std::to_string(gpus / 8)}});
  if (argc > 1 && std::string(argv[1]) == "--flow") return 0;   // the flow rows only
  std::printf("\nRing all-reduce, step fidelity and one-ring rows, 1 GiB\n");
  for (int gpus : {64, 256}) row(gpus, Fidelity::step, bytes);
  row(1024, Fidelity::flow, bytes, 1);   // one ring: 2M messages at step fidelity
  row(1024, Fidelity::step, bytes, 1);
  if (full) row(1024, Fidelity::step, bytes);

  std::printf("\nStep vs flow fidelity, 256 MiB (instance as resolved; rel diff = (flow - step) / step)\n");
  std::printf("%-15s %-17s %-22s %12s %12s %10s  %s\n", "op", "algorithm", "topology", "step (s)", "flow (s)", "rel diff",
              "instance");
  step_vs_flow("dgx-h100 (8 GPUs)", load_topology("dgx-h100"), 8);
  step_vs_flow("cluster-h100-ndr x4 (32)", load_topology("cluster-h100-ndr", {{"topology.nodes", "4"}}), 32);
  return 0;
}
