// KV caches between disaggregated replicas, simulated on SimGrid, against the closed form of one
// bulk NCCL send/recv per GPU pair: launch latency + bytes / (line rate x efficiency), over NVLink
// inside a node and over each GPU's own NIC rail between nodes (the hop latencies, ~1 us, are
// inside the 1% tolerance).
#include <doctest/doctest.h>

#include "relative.hpp"

#include "serve/replica_model.hpp"

using namespace tpsim;

namespace {

Scenario serving_on(const std::string& topology, int tp) {
  ScenarioRequest q;
  q.model = "llama2-70b";
  q.topology = topology;
  q.overrides = {{"plan.tp", std::to_string(tp)}, {"workload.kind", "serving"}};
  return load_scenario(q);
}

}  // namespace

TEST_CASE("a KV cache crosses nodes at the NIC's rate and stays inside a node at NVLink's") {
  // 4096 tokens of Llama-2-70B's KV cache at TP 8: 4096 x 40 KiB = 160 MiB per GPU, each GPU to its
  // counterpart.
  const double per_token = 40 * 1024.0, bytes = 4096 * per_token;
  {
    const Scenario s = serving_on("cluster-h100-ndr", 8);
    serving::KvTransferTimer kv(s, 2, per_token);
    const NicSpec& nic = s.topology.nic;
    CHECK(kv(0, 1, 4096) == rel(s.topology.collectives.launch_latency + bytes / (nic.bandwidth * nic.efficiency), 0.01));
  }
  {
    const Scenario s = serving_on("dgx-h100", 4);   // two TP-4 replicas in one node
    serving::KvTransferTimer kv(s, 2, per_token);
    const IntraNodeSpec& intra = s.topology.intra;
    CHECK(kv(0, 1, 4096) == rel(s.topology.collectives.launch_latency + bytes / (intra.bandwidth * intra.efficiency), 0.01));
  }
}

TEST_CASE("KV transfer sizes between the simulated ones are interpolated, exact on the simulated ones") {
  const Scenario s = serving_on("cluster-h100-ndr", 8);
  serving::KvTransferTimer kv(s, 2, 40 * 1024.0);
  const double at_4096 = kv(0, 1, 4096), at_6144 = kv(0, 1, 6144), at_5000 = kv(0, 1, 5000);
  CHECK(at_5000 == rel(at_4096 + (at_6144 - at_4096) * (5000 - 4096) / 2048.0, 1e-12));
  // Bandwidth-bound: past the launch latency, time in proportion to bytes.
  const double launch = s.topology.collectives.launch_latency;
  CHECK(at_6144 - launch == rel((at_4096 - launch) * 1.5, 0.01));
}
