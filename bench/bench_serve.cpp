// Benchmark: serving at scale (issue 15). 100,000 requests (Poisson at 100/s, the default chat
// lengths) through 8 replicas of Llama-2-7B at TP 1 on one DGX H100 under vLLM's scheduler, the
// whole `tpsim serve` path: the stream, the KV capacity, the SimGrid-timed iteration shapes and the
// event loop. Goal: < 10 s on the build machine. Prints the figures and the serving summary.
#include <chrono>
#include <cstdio>

#include "machine.hpp"
#include "serve/replica_model.hpp"
#include "serve/serve_report.hpp"
#include "tpsim/serving.hpp"

using namespace tpsim;

int main() {
  std::printf("%s\n", tpsim::bench::machine_line().c_str());
  ScenarioRequest q;
  q.model = "llama2-7b";
  q.topology = "dgx-h100";
  q.overrides = {{"workload.kind", "serving"}, {"plan.tp", "1"}, {"serving.replicas", "8"},
                 {"serving.rate", "100"},      {"serving.requests", "100000"}};
  const Scenario scenario = load_scenario(q);
  const ServingSpec& spec = *scenario.serving;

  using Clock = std::chrono::steady_clock;
  auto seconds = [](Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); };
  const auto t0 = Clock::now();
  const std::vector<Request> requests = make_requests(spec);
  const auto t1 = Clock::now();
  const ReplicaCapacity capacity = serving::replica_capacity(scenario, spec);
  serving::SimulatedTimer timer(scenario);
  const ServeResult result = serve(spec, requests, capacity, timer);
  const auto t2 = Clock::now();
  const ServeSummary summary = summarize(result, spec.slo, int(spec.replicas) * scenario.plan.tp);
  const auto t3 = Clock::now();
  const double total = seconds(t0, t3);

  std::printf("tpsim serve: llama2-7b, 8 replicas x TP1 on dgx-h100, vllm, 100,000 Poisson requests at 100/s\n");
  std::printf("%-40s %12s\n", "figure", "value");
  std::printf("%-40s %12lld\n", "requests served", static_cast<long long>(summary.requests));
  std::printf("%-40s %12lld\n", "iterations simulated", static_cast<long long>(summary.iterations));
  std::printf("%-40s %12d\n", "iteration shapes run on SimGrid", timer.simulations());
  std::printf("%-40s %12.3f\n", "wall: request stream (s)", seconds(t0, t1));
  std::printf("%-40s %12.3f\n", "wall: capacity, timing and loop (s)", seconds(t1, t2));
  std::printf("%-40s %12.3f\n", "wall: percentiles and goodput (s)", seconds(t2, t3));
  std::printf("%-40s %12.3f\n", "wall: total (s)", total);
  std::printf("%-40s %12.0f\n", "requests per wall second", double(summary.requests) / total);
  std::printf("%-40s %12s\n", "goal: 100,000 requests in < 10 s", total < 10 ? "met" : "MISSED");
  std::printf("\n%s", serve_text(scenario, spec, result, summary, timer.describe()).c_str());
  return 0;
}
