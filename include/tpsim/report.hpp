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
  bool partial = false;                 // training: fewer micro-batches simulated than the step has
  double step_time_s = 0;               // training: the simulated step (or its simulated part); inference: the whole request
  double tokens_per_s = 0;              // training: tokens of all replicas; inference: generated tokens
  double model_flops = 0;               // Narayanan et al. 2021 count for the simulated micro-batches
  double tflops_per_gpu = 0;            // model_flops / (step time x GPUs)
  double mfu = 0;                       // tflops_per_gpu / the GPU's dense peak in the model's dtype
  std::string tp_collectives = "exact"; // "exact" (ops on tp_comm) | "folded" (uncontended time inside compute ops)
  double tp_comm_folded_s = 0;          // per GPU (max): TP collective time inside folded compute ops
  std::string dp_replicas = "all";      // "all" simulated, or "one" (replica symmetry, DP collectives timed alone)
  // Training, TP collectives exact: one transformer layer on GPU 0 as the step ran it, from its
  // first op's start to its last op's end, per pass (recomputed forward ops count as backward, as
  // Megatron times them); the median over the layers and micro-batches simulated (layer_samples).
  double layer_forward_s = 0, layer_backward_s = 0;
  int layer_samples = 0;
  // inference
  double prefill_s = 0, decode_step_s = 0;
  double ttft_s = 0, tpot_s = 0;        // time to first token, time per output token
  int64_t decode_context = 0;           // the KV context the simulated decode step attends to (the mean)
  double prefill_compute_s = 0, prefill_communication_s = 0, prefill_exposed_s = 0;   // slowest GPU
  double decode_compute_s = 0, decode_communication_s = 0, decode_exposed_s = 0;
  MemoryBreakdown memory;               // the fullest GPU
  std::vector<MemoryBreakdown> memory_per_stage;
};

struct RunResult {
  Scenario scenario;
  std::string scope;                      // what was simulated: "block", "layer", "step"
  Timeline timeline;
  std::optional<NumericsReport> numerics; // absent when numerics is off
  std::string numerics_scale;             // "proxy" | "full"
  std::string numerics_scope;             // what was executed, e.g. "embedding, 1 layer per stage, output and loss; forward and backward"
  std::string numerics_shape;             // the model dimensions it ran at ("hidden 64, ffn 176, 32 tokens per micro-batch")
  // Collective instances in the timeline (instance_key) that the numerics did not execute; empty
  // when every timed instance was verified.
  std::vector<std::string> unverified_instances;
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
