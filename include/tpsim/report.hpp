// Reports: what a run found, for people (terminal summary) and scripts (JSON). Reports read the
// Timeline and the NumericsReport; they never simulate.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "tpsim/memory.hpp"
#include "tpsim/numerics.hpp"
#include "tpsim/spec.hpp"
#include "tpsim/timeline.hpp"

namespace tpsim {

// What a whole training step or inference request achieved (scope "step").
struct StepMetrics {
  bool training = true;
  int64_t micro_batches = 0;            // simulated, per DP replica
  int64_t micro_batches_per_step = 0;   // global_batch / (micro_batch * dp)
  double step_time_s = 0;               // training: the simulated step; inference: the whole request
  double tokens_per_s = 0;              // training: tokens of all replicas; inference: generated tokens
  double model_flops = 0;               // Narayanan et al. 2021 count for the simulated micro-batches
  double tflops_per_gpu = 0;            // model_flops / (step time x GPUs)
  double mfu = 0;                       // tflops_per_gpu / the GPU's dense peak in the model's dtype
  std::string tp_collectives = "exact"; // "exact" (ops on tp_comm) | "folded" (uncontended time inside compute ops)
  double tp_comm_folded_s = 0;          // per GPU (max): TP collective time inside folded compute ops
  std::string dp_replicas = "all";      // "all" simulated, or "one" (replica symmetry, DP collectives timed alone)
  // inference
  double prefill_s = 0, decode_step_s = 0;
  double ttft_s = 0, tpot_s = 0;        // time to first token, time per output token
  MemoryBreakdown memory;               // the fullest GPU
  std::vector<MemoryBreakdown> memory_per_stage;
};

struct RunResult {
  Scenario scenario;
  std::string scope;                      // what was simulated: "block", "layer", "step"
  Timeline timeline;
  std::optional<NumericsReport> numerics; // absent when numerics is off
  std::string numerics_scale;             // "proxy" | "full"
  std::optional<StepMetrics> step;        // scope "step" only
};

// Per-run totals over ranks: the slowest rank's view is what bounds the step.
struct RunTotals {
  double step_time = 0;                   // s
  double compute = 0, communication = 0, exposed_communication = 0, bubble = 0, idle = 0;  // s, max over ranks
};
RunTotals totals(const Timeline& t);

std::string summary_text(const RunResult& r);
nlohmann::json to_json(const RunResult& r);

// Time with an adaptive unit ("812.4 us", "3.21 ms", "1.50 s"), and bytes ("64.0 MiB").
std::string format_seconds(double s);
std::string format_bytes(double b);

}  // namespace tpsim

namespace tpsim {

// The whole data flow for one scenario: lower, time on SimGrid, check numerically, collect.
struct RunOptions {
  std::string numerics = "";    // "" = the scenario's choice; else off | proxy | full
  DType numerics_dtype = DType::fp32;
  std::string scope = "step";   // step (the workload: training step or inference request) | block
  std::string tp_collectives = "auto";   // step scope: auto | exact | folded (see StepMetrics)
  std::string dp_replicas = "auto";      // step scope: auto | all | one (see StepMetrics; auto = one from 512 GPUs)
};
RunResult run_scenario(const Scenario& scenario, const RunOptions& options);

}  // namespace tpsim
