// Benchmark: the capacity-planning sweep of issue 7. Llama-2-70B training on 8 nodes of
// cluster-h100-ndr (64 H100s; global batch 1024 at 4096 tokens), every TP x PP x DP x micro-batch
// x SP x recompute x virtual-stage layout, with worker processes on all cores. Goal: >= 200 layouts
// in < 2 minutes on the 2-core build machine, and a best layout no worse than Megatron's usual
// choice (TP8, PP by memory). Prints the figures, then the ranked table as `tpsim plan` shows it.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <thread>

#include "machine.hpp"
#include "tpsim/planner.hpp"

using namespace tpsim;

int main() {
  std::printf("%s\n", tpsim::bench::machine_line().c_str());
  SweepSpec spec;
  spec.model = load_model("llama2-70b");
  spec.topology = load_topology("cluster-h100-ndr");
  spec.node_counts = {8};

  const auto csv = std::filesystem::temp_directory_path() / "tpsim_bench_plan.csv";
  std::filesystem::remove(csv);   // a fresh sweep, not a resume
  SweepOptions options;
  options.csv = csv.string();
  const int cores = static_cast<int>(std::thread::hardware_concurrency());

  const auto start = std::chrono::steady_clock::now();
  const SweepOutcome out = run_sweep(spec, options, evaluate_layout);
  const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  std::map<std::string, int> by_verdict;
  for (const auto& r : out.ranked) ++by_verdict[to_string(r.verdict)];
  std::printf("tpsim plan: llama2-70b training on cluster-h100-ndr, 8 nodes (64 GPUs), gb 1024, seq 4096\n");
  std::printf("%-34s %10s\n", "figure", "value");
  std::printf("%-34s %10d\n", "layouts swept", out.total);
  for (const auto& [verdict, n] : by_verdict) std::printf("  %-32s %10d\n", verdict.c_str(), n);
  std::printf("%-34s %10d\n", "worker processes (cores)", cores);
  std::printf("%-34s %10.1f\n", "wall time (s)", wall);
  std::printf("%-34s %10.2f\n", "layouts per second", out.total / wall);
  std::printf("%-34s %10s\n", "goal: >= 200 layouts in < 120 s", out.total >= 200 && wall < 120 ? "met" : "MISSED");
  const auto megatron = megatron_choice(out.ranked, megatron_tp(spec.topology));
  if (!out.ranked.empty() && out.ranked.front().verdict == Verdict::ok && megatron)
    std::printf("%-34s %10s\n", "best >= Megatron's usual choice",
                out.ranked.front().tokens_per_s >= megatron->tokens_per_s ? "yes" : "NO");
  std::printf("\n%s", plan_table(out.ranked, spec.objective, megatron_tp(spec.topology), 10).c_str());
  std::filesystem::remove(csv);
  return 0;
}
