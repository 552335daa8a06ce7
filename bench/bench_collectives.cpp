// Simulation speed at scale: ring all-reduce on cluster-h100-ndr (8x H100 + 8x NDR per node) in
// flow and step fidelity, from 64 to 4096 GPUs. Wall time includes building the platform; peak
// RSS is the process's high-water mark so far (getrusage), so rows go from small to large.
// Goal (issue 3): 4096 GPUs, flow fidelity, < 1 s wall on the 2-core machine.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "engine/collective_run.hpp"
#include "tpsim/engine.hpp"

using namespace tpsim;

namespace {

double peak_rss_mb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024.0;
}

// channels = 0: as NCCL would (one ring per NIC across nodes); otherwise forced, through the
// engine's internal API, to compare with single-ring figures.
void row(int gpus, Fidelity f, double bytes, int channels = 0) {
  const auto t0 = std::chrono::steady_clock::now();
  const Topology topo = load_topology("cluster-h100-ndr", {{"topology.nodes", std::to_string((gpus + 7) / 8)}});
  std::vector<int> group(gpus);
  std::iota(group.begin(), group.end(), 0);
  double seconds = 0;
  int used = channels;
  if (channels == 0) {
    const CollectiveTiming t = time_collective(topo, CollectiveOp::all_reduce, Algorithm::ring, group, bytes, EngineOptions{f});
    seconds = t.seconds;
    used = t.channels;
  } else {
    const engine::Fabric fabric(topo);
    engine::CollectiveSpec spec;
    spec.algorithm = Algorithm::ring;
    spec.group = group;
    spec.bytes = bytes;
    spec.channels = channels;
    auto plan = std::make_shared<const engine::CollectivePlan>(engine::plan_collective(fabric, spec, f));
    engine::SimPlatform platform(fabric);
    engine::RunContext ctx;
    ctx.platform = &platform;
    engine::start_collective(ctx, plan, f, [&] { seconds = platform.now(); });
    platform.run();
  }
  const double busbw = bytes / seconds * busbw_factor(CollectiveOp::all_reduce, gpus);
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%6d %6s %10.0f %14.1f %12.2f %9d %10.3f %12.1f\n", gpus, f == Fidelity::flow ? "flow" : "step",
              bytes / (1 << 20), seconds * 1e6, busbw / 1e9, used, wall, peak_rss_mb());
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  // --full adds the 1024-GPU step row with NCCL's 8 channels (16.7M messages: many minutes).
  const bool full = argc > 1 && std::string(argv[1]) == "--full";
  std::printf("Ring all-reduce on cluster-h100-ndr, 1 GiB (protocol and channels as NCCL would pick)\n");
  std::printf("%6s %6s %10s %14s %12s %9s %10s %12s\n", "GPUs", "fid.", "size(MiB)", "sim time(us)", "busbw(GB/s)",
              "channels", "wall(s)", "peak RSS(MB)");
  const double bytes = 1 << 30;
  for (int gpus : {64, 256, 1024, 4096}) row(gpus, Fidelity::flow, bytes);
  for (int gpus : {64, 256}) row(gpus, Fidelity::step, bytes);
  row(1024, Fidelity::flow, bytes, 1);   // one ring: 2M messages at step fidelity
  row(1024, Fidelity::step, bytes, 1);
  if (full) row(1024, Fidelity::step, bytes);
  return 0;
}
