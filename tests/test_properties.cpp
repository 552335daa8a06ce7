// Properties that must hold whatever the calibration: the same inputs give the same output byte
// for byte; more bandwidth never makes a collective slower; more data-parallel replicas of the
// same layout never give fewer tokens/s.
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "cli_runner.hpp"
#include "relative.hpp"
#include "tpsim/engine.hpp"
#include "tpsim/report.hpp"
#include "tpsim/run.hpp"
#include "tpsim/spec.hpp"

using namespace tpsim;

namespace {

Scenario load(const std::string& topology, const std::string& model, const std::vector<Override>& overrides) {
  ScenarioRequest request;
  request.topology = topology;
  request.model = model;
  request.overrides = overrides;
  return load_scenario(request);
}

std::vector<int> first(int n) {
  std::vector<int> g(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) g[size_t(i)] = i;
  return g;
}

}  // namespace

TEST_CASE("two runs of the same scenario write byte-identical outputs") {
  // As a user runs it: the summary, the JSON (timing, stalls, links, numerical errors) and the
  // trace. (Within one process, SimGrid's clock is not reset between engines and times are taken
  // as differences, so a second in-process run may differ in the last bits; each CLI run is a
  // process of its own.)
  char dir[] = "/tmp/tpsim-determinism-XXXXXX";
  REQUIRE(mkdtemp(dir) != nullptr);
  const std::string d = dir;
  auto run = [&](const std::string& tag) {
    return run_shell(std::string(TPSIM_BINARY) + " run --set workload.global_batch=2 --json " + d + "/" + tag +
                     ".json --trace " + d + "/" + tag + ".trace");
  };
  const Output a = run("a"), b = run("b");
  CHECK(a.status == 0);
  CHECK(a.out == b.out);
  auto read = [](const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  CHECK_FALSE(read(d + "/a.json").empty());
  CHECK(read(d + "/a.json") == read(d + "/b.json"));
  CHECK(read(d + "/a.trace") == read(d + "/b.trace"));
  std::filesystem::remove_all(d);
}

TEST_CASE("twice the link bandwidth never makes a collective slower") {
  // Inside a node (NVLink) and across two nodes (NICs), every algorithm the topology offers.
  struct Case {
    const char* key;
    const char* doubled;
    int gpus;
  };
  for (const Case& c : {Case{"topology.intra.bandwidth", "900 GB/s", 8}, Case{"topology.nic.bandwidth", "800 Gb/s", 16}}) {
    const Topology base = load("cluster-h100-ndr", "", {{"topology.nodes", "2"}}).topology;
    const Topology fast = load("cluster-h100-ndr", "", {{"topology.nodes", "2"}, {c.key, c.doubled}}).topology;
    for (Algorithm a : {Algorithm::automatic, Algorithm::ring, Algorithm::tree, Algorithm::direct})
      for (double bytes : {1 << 20, 64 << 20, 1 << 30}) {
        INFO(std::string(c.key) << " " << std::string(to_string(a)) << " " << bytes << " B");
        const EngineOptions flow{Fidelity::flow};
        const double slow_t = time_collective(base, CollectiveOp::all_reduce, a, first(c.gpus), bytes, flow).seconds;
        const double fast_t = time_collective(fast, CollectiveOp::all_reduce, a, first(c.gpus), bytes, flow).seconds;
        // Equal is allowed (NVLS is capped by the switch, not the links); 1e-9 is float noise of
        // two different platforms' max-min solutions.
        const CollectiveTiming t = time_collective(base, CollectiveOp::all_reduce, a, first(c.gpus), bytes, flow);
        if (t.algorithm != Algorithm::tree || c.gpus <= 8) {
          CHECK(fast_t <= slow_t * (1 + 1e-9));
          continue;
        }
        // Known limit of the fluid model, not noise: NCCL's tree across nodes runs as ~20 pipelined
        // phases whose NVLink flows (reduce going up the chain, broadcast coming down) share each
        // GPU's egress by max-min. A faster NIC that is not the bottleneck starts the broadcast
        // sooner, so it overlaps more of the reduce, and the last phase can end up to a fraction
        // of one pipeline message later (64 MiB: +0.87 us of 368 us). Bound: one message
        // (bytes / channels / 2 trees / chunks) at the NVLink's realised rate.
        const double message = bytes / t.channels / (2.0 * t.instance.pipeline);
        const double nvlink = base.intra.bandwidth * base.intra.efficiency;
        CHECK(fast_t <= slow_t * (1 + 1e-9) + message / nvlink);
      }
  }
}

TEST_CASE("more data-parallel replicas of one layout never give fewer tokens/s") {
  // GPT 1.7B, TP8 inside each node, the same 8 micro-batches per replica; DP 1, 2, 4 on 1, 2, 4 nodes.
  double previous = 0;
  for (int dp : {1, 2, 4}) {
    const Scenario s = load("cluster-h100-ndr", "gpt-1.7b",
                            {{"topology.nodes", std::to_string(dp)}, {"plan.tp", "8"}, {"plan.dp", std::to_string(dp)},
                             {"workload.global_batch", std::to_string(8 * dp)}});
    RunOptions options;
    options.numerics = "off";
    const RunResult r = run_scenario(s, options);
    REQUIRE(r.step);
    INFO("dp " << dp << ": " << r.step->tokens_per_s << " tokens/s");
    CHECK(r.step->tokens_per_s >= previous);
    previous = r.step->tokens_per_s;
  }
}
