// Terminal summary and JSON of a run: step time and where it went, then the numerical verdict.
#include <algorithm>
#include <cmath>
#include <fmt/format.h>

#include "tpsim/lower.hpp"
#include "tpsim/report.hpp"

namespace tpsim {

std::string format_seconds(double s) {
  const double a = std::fabs(s);
  if (a == 0) return "0 s";
  if (a < 1e-6) return fmt::format("{:.1f} ns", s * 1e9);
  if (a < 1e-3) return fmt::format("{:.1f} us", s * 1e6);
  if (a < 1) return fmt::format("{:.3f} ms", s * 1e3);
  return fmt::format("{:.3f} s", s);
}

std::string format_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (std::fabs(b) >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  return u == 0 ? fmt::format("{:.0f} B", b) : fmt::format("{:.1f} {}", b, units[u]);
}

RunTotals totals(const Timeline& t) {
  RunTotals r;
  r.step_time = t.makespan;
  for (const auto& k : t.ranks) {
    r.compute = std::max(r.compute, k.compute);
    r.communication = std::max(r.communication, k.communication);
    r.exposed_communication = std::max(r.exposed_communication, k.exposed_communication);
    r.bubble = std::max(r.bubble, k.bubble);
    r.idle = std::max(r.idle, k.idle);
  }
  return r;
}

namespace {

std::string percent_of(double part, double whole) {
  return whole > 0 ? fmt::format("{:5.1f}%", 100 * part / whole) : "   - ";
}


// What the numbers below are of: a whole training step, a PARTIAL one (with the fraction), an
// inference request, or one block.
std::string simulated_text(const RunResult& r) {
  const Scenario& s = r.scenario;
  const WorkloadSpec& w = s.workload;
  if (!r.step) return fmt::format("one attention + MLP block, forward only ({} tokens)", w.micro_batch * w.seq);
  const StepMetrics& m = *r.step;
  if (!m.training)
    return fmt::format("inference request: prefill of {} x {} prompt tokens, then {} decode step{} ({} timed at the mean "
                       "context of {} tokens)",
                       w.batch, w.prompt, std::max<int64_t>(0, w.generate - 1), w.generate == 2 ? "" : "s",
                       w.generate > 1 ? "each" : "none", m.decode_context);
  if (m.partial)
    return fmt::format("PARTIAL training step: the first {} of {} micro-batches ({:.1f}%) per DP replica; every figure "
                       "below is of this part, not of the step",
                       m.micro_batches, m.micro_batches_per_step, 100.0 * double(m.micro_batches) / double(m.micro_batches_per_step));
  return fmt::format("training step: {} micro-batch{} of {} x {} tokens per DP replica, global batch {}", m.micro_batches,
                     m.micro_batches == 1 ? "" : "es", w.micro_batch, w.seq, w.global_batch);
}

// How the timing ran: the engine fidelity and which shortcuts (each tested against the full
// simulation) were taken.
std::string timing_text(const RunResult& r) {
  std::string out = "SimGrid, flow fidelity";
  if (!r.step) return out;
  const StepMetrics& m = *r.step;
  out += m.tp_collectives == "folded" ? "; TP collectives folded: each layer piece timed alone once (collectives at their "
                                        "uncontended time) and reused"
                                      : "; TP collectives simulated as ops";
  if (m.training)
    out += m.dp_replicas == "one" ? "; one DP replica simulated, its DP collectives timed alone on the full topology"
                                  : "; every DP replica simulated";
  return out;
}

// Inference: the prefill and one decode step, each on its own; the request is prefill + decodes.
std::string inference_time_text(const StepMetrics& m) {
  std::string out = fmt::format("{:<34}{:>12}{:>16}\n", "time (slowest GPU)", "prefill", "one decode step");
  auto row = [&](const std::string& name, double a, double b) {
    out += fmt::format("{:<34}{:>12}{:>16}\n", "  " + name, format_seconds(a), format_seconds(b));
  };
  row("wall time", m.prefill_s, m.decode_step_s);
  row("compute", m.prefill_compute_s, m.decode_compute_s);
  row("communication (on comm streams)", m.prefill_communication_s, m.decode_communication_s);
  row("stalled on communication", m.prefill_exposed_s, m.decode_exposed_s);
  return out;
}

// The step's throughput, FLOP rate and memory (scope "step").
std::string step_text(const RunResult& r) {
  const StepMetrics& m = *r.step;
  std::string out = "\n";
  if (m.training) {
    out += fmt::format("{:<34}{:>12}{}\n", "micro-batches simulated",
                       fmt::format("{} of {}", m.micro_batches, m.micro_batches_per_step),
                       m.dp_replicas == "one" ? "  (per DP replica; one replica simulated)" : "");
    out += fmt::format("{:<34}{:>12}{}\n", "tokens/s", fmt::format("{:.0f}", m.tokens_per_s),
                       m.partial ? "  (over the simulated part)" : "");
  } else {
    out += fmt::format("{:<34}{:>12}\n", "time to first token", format_seconds(m.ttft_s));
    out += fmt::format("{:<34}{:>12}\n", "time per output token", format_seconds(m.tpot_s));
    out += fmt::format("{:<34}{:>12}\n", "request time", format_seconds(m.step_time_s));
    out += fmt::format("{:<34}{:>12}\n", "generated tokens/s", fmt::format("{:.0f}", m.tokens_per_s));
    out += fmt::format("{:<34}{:>12}\n", "generated tokens/s per GPU",
                       fmt::format("{:.1f}", m.tokens_per_s / std::max(1, r.scenario.plan.world())));
  }
  out += fmt::format("{:<34}{:>12}\n", "model TFLOP/s per GPU", fmt::format("{:.1f}", m.tflops_per_gpu));
  out += fmt::format("{:<34}{:>12}\n", "model FLOP utilisation (MFU)", fmt::format("{:.1f}%", 100 * m.mfu));
  if (m.tp_collectives == "folded")
    out += fmt::format("{:<34}{:>12}  (TP collectives folded into compute at their uncontended time)\n",
                       "  of which TP communication", format_seconds(m.tp_comm_folded_s));
  if (m.layer_samples > 0)
    out += fmt::format("{:<34}{:>12}  backward {}{} (GPU 0, median of {})\n", "one layer: forward",
                       format_seconds(m.layer_forward_s), format_seconds(m.layer_backward_s),
                       r.scenario.plan.recompute == Recompute::none ? "" : " with recomputation", m.layer_samples);
  const MemoryBreakdown& mem = m.memory;
  out += fmt::format("\nmemory per GPU (stage {}, the fullest)\n", mem.stage);
  for (const MemoryComponent& c : mem.components())
    if (c.bytes > 0) out += fmt::format("  {:<32}{:>10.2f} GiB  {}\n", c.name, c.bytes / kGiB, c.detail);
  out += fmt::format("  {:<32}{:>10.2f} GiB  of {:.1f} GiB HBM\n", "total", mem.total / kGiB, mem.capacity / kGiB);
  out += "verdict    " + memory_verdict(mem) + "\n";
  return out;
}

nlohmann::json memory_json(const MemoryBreakdown& m) {
  nlohmann::json j = {{"stage", m.stage}, {"parameters", m.parameters}, {"total_bytes", m.total},
                      {"capacity_bytes", m.capacity}, {"fits", m.fits}, {"in_flight_micro_batches", m.in_flight_micro_batches}};
  for (const MemoryComponent& c : m.components()) {
    std::string key = c.name;
    std::replace(key.begin(), key.end(), ' ', '_');
    j[key + "_bytes"] = c.bytes;
  }
  if (!m.fits) j["overflow"] = {{"component", m.overflow_component}, {"bytes", m.overflow_bytes}};
  j["verdict"] = memory_verdict(m);
  return j;
}

}  // namespace

std::string summary_text(const RunResult& r) {
  const Scenario& s = r.scenario;
  const RunTotals t = totals(r.timeline);
  std::string out;
  out += fmt::format("scenario   {}\n", s.name);
  out += fmt::format("cluster    {} ({} node{} x {} {}, {} GPUs)\n", s.topology.name, s.topology.nodes,
                     s.topology.nodes == 1 ? "" : "s", s.topology.gpus_per_node, s.topology.gpu.name,
                     s.topology.total_gpus());
  out += fmt::format("model      {} (hidden {}, {} layers, {} heads)\n", s.model.name, s.model.hidden,
                     s.model.layers, s.model.heads);
  if (const MoeSpec& moe = s.model.moe; moe.enabled())
    out += fmt::format("experts    {} per layer, top {}; {}; timed with every expert's buffer padded to {}: the "
                       "slowest expert computes on {} tokens per {}\n",
                       moe.experts, moe.top_k,
                       moe.capacity_factor > 0 ? fmt::format("capacity factor {:g} (tokens past it dropped)", moe.capacity_factor)
                                               : std::string("dropless"),
                       moe.capacity_factor > 0 ? std::string("the capacity")
                       : s.workload.expert_skew > 1
                           ? fmt::format("the busiest expert's load ({:g}x the mean, workload.expert_skew)", s.workload.expert_skew)
                           : std::string("the mean load (balanced router, workload.expert_skew 1)"),
                       busiest_expert_tokens(s), s.workload.kind == WorkloadKind::training ? "micro-batch" : "prefill");
  if (s.workload.kind == WorkloadKind::training && s.model.dtype == DType::fp8)
    out += "precision  FP8 GEMMs at the FP8 peak and ceiling (Transformer Engine's recipe); parameters and "
           "TP/PP/DP traffic in bf16\n";
  const std::string stages = stage_split_text(s.model, s.plan);
  out += fmt::format("plan       {}: tp {}{} x pp {} x dp {}{}{}{}\n", s.plan.name, s.plan.tp,
                     s.plan.cp > 1 ? fmt::format(" x cp {} (ring attention)", s.plan.cp) : "", s.plan.pp, s.plan.dp,
                     s.plan.ep > 1 ? fmt::format(" (ep {}: experts shared out over {} DP replicas)", s.plan.ep, s.plan.ep) : "",
                     s.plan.sp ? ", sequence parallel" : "", stages.empty() ? "" : ", stages of " + stages);
  out += "simulated  " + simulated_text(r) + "\n";
  out += "timing     " + timing_text(r) + "\n\n";
  if (r.step && !r.step->training) {
    out += inference_time_text(*r.step);
  } else {
    const bool partial = r.step && r.step->partial;
    const std::string whole = !r.step ? "block time" : partial ? "time of the simulated part" : "step time";
    out += fmt::format("{:<34}{:>12}{:>9}\n", "time (slowest GPU)", "", partial ? "of part" : r.step ? "of step" : "of block");
    out += fmt::format("{:<34}{:>12}{:>9}\n", "  " + whole, format_seconds(t.step_time), "100.0%");
    out += fmt::format("{:<34}{:>12}{:>9}\n", "  compute", format_seconds(t.compute), percent_of(t.compute, t.step_time));
    out += fmt::format("{:<34}{:>12}{:>9}\n", "  communication (on comm streams)", format_seconds(t.communication),
                       percent_of(t.communication, t.step_time));
    out += fmt::format("{:<34}{:>12}{:>9}\n", "  stalled on communication", format_seconds(t.exposed_communication),
                       percent_of(t.exposed_communication, t.step_time));
    if (t.bubble > 0)
      out += fmt::format("{:<34}{:>12}{:>9}\n", "  pipeline bubble", format_seconds(t.bubble),
                         percent_of(t.bubble, t.step_time));
  }
  if (r.step) out += step_text(r);
  if (r.numerics) {
    const NumericsReport& n = *r.numerics;
    out += fmt::format("\nnumerics   executed {}\n", r.numerics_scope);
    out += fmt::format("           at {} scale ({}), {}, sharded vs unsharded: {} tensors compared, max abs error {:.3g}, "
                       "max rel error {:.3g}\n",
                       r.numerics_scale, r.numerics_shape, to_string(n.dtype), n.checks.size(), n.max_abs, n.max_rel);
    out += fmt::format("           collectives executed with the instances timed{}\n",
                       n.instances.empty() ? ": none (nothing to combine)" : ":");
    for (const std::string& key : n.instances) out += "             " + key + "\n";
    if (!r.unverified_instances.empty()) {
      out += "           timed but not executed numerically:\n";
      for (const std::string& key : r.unverified_instances) out += "             " + key + "\n";
    }
    if (n.ok) {
      out += "verdict    PASS: the executed part of the sharded plan computes the same function as the unsharded model\n";
    } else if (const TensorCheck* f = n.first_failure()) {
      out += fmt::format("verdict    FAIL at {} (tensor {}, rank {}): rel error {:.3g} > tolerance {:.3g}\n", f->op,
                         f->tensor, f->rank, f->max_rel, f->tolerance);
    }
  } else {
    out += "\nnumerics   off\n";
  }
  return out;
}

nlohmann::json to_json(const RunResult& r) {
  const RunTotals t = totals(r.timeline);
  nlohmann::json j;
  const Scenario& s = r.scenario;
  j["scenario"] = s.name;
  j["topology"] = s.topology.name;
  j["model"] = s.model.name;
  j["plan"] = {{"name", s.plan.name}, {"tp", s.plan.tp}, {"pp", s.plan.pp}, {"dp", s.plan.dp}, {"sp", s.plan.sp}};
  j["scope"] = r.scope;
  j["step_time_s"] = t.step_time;
  j["compute_s"] = t.compute;
  j["communication_s"] = t.communication;
  j["exposed_communication_s"] = t.exposed_communication;
  j["pipeline_bubble_s"] = t.bubble;
  nlohmann::json ranks = nlohmann::json::array();
  for (size_t i = 0; i < r.timeline.ranks.size(); ++i) {
    const auto& k = r.timeline.ranks[i];
    ranks.push_back({{"rank", i}, {"compute_s", k.compute}, {"communication_s", k.communication},
                     {"exposed_communication_s", k.exposed_communication}, {"pipeline_bubble_s", k.bubble},
                     {"idle_s", k.idle}});
  }
  j["ranks"] = ranks;
  if (r.step) {
    const StepMetrics& m = *r.step;
    j["workload"] = m.training ? "training" : "inference";
    j["step_time_s"] = m.step_time_s;
    j["tokens_per_s"] = m.tokens_per_s;
    j["model_flops"] = m.model_flops;
    j["tflops_per_gpu"] = m.tflops_per_gpu;
    j["mfu"] = m.mfu;
    j["tp_collectives"] = m.tp_collectives;
    j["tp_comm_folded_s"] = m.tp_comm_folded_s;
    if (m.layer_samples > 0)
      j["layer"] = {{"forward_s", m.layer_forward_s}, {"backward_s", m.layer_backward_s}, {"samples", m.layer_samples}};
    j["dp_replicas"] = m.dp_replicas;
    if (m.training) {
      j["micro_batches_simulated"] = m.micro_batches;
      j["micro_batches_per_step"] = m.micro_batches_per_step;
      j["partial"] = m.partial;
    } else {
      j["time_to_first_token_s"] = m.ttft_s;
      j["time_per_output_token_s"] = m.tpot_s;
      j["prefill_s"] = m.prefill_s;
      j["decode_step_s"] = m.decode_step_s;
      j["decode_context_tokens"] = m.decode_context;
      j["request_time_s"] = m.step_time_s;
      // A request is not a step: its timeline is a prefill then one decode step (see "prefill"
      // and "decode_step"), so no step-time key stands for it.
      j.erase("step_time_s");
      j["timeline_s"] = r.timeline.makespan;
      j["prefill"] = {{"compute_s", m.prefill_compute_s}, {"communication_s", m.prefill_communication_s},
                      {"exposed_communication_s", m.prefill_exposed_s}};
      j["decode_step"] = {{"compute_s", m.decode_compute_s}, {"communication_s", m.decode_communication_s},
                          {"exposed_communication_s", m.decode_exposed_s}};
    }
    j["memory"] = memory_json(m.memory);
    nlohmann::json stages = nlohmann::json::array();
    for (const MemoryBreakdown& b : m.memory_per_stage) stages.push_back(memory_json(b));
    j["memory_per_stage"] = stages;
  }
  if (r.numerics) {
    const NumericsReport& n = *r.numerics;
    nlohmann::json checks = nlohmann::json::array();
    for (const auto& c : n.checks)
      checks.push_back({{"op", c.op}, {"tensor", c.tensor}, {"rank", c.rank}, {"max_abs_error", c.max_abs},
                        {"max_rel_error", c.max_rel}, {"tolerance", c.tolerance}, {"rule", c.rule}, {"ok", c.ok}});
    j["numerics"] = {{"scale", r.numerics_scale}, {"scope", r.numerics_scope}, {"shape", r.numerics_shape},
                     {"instances_executed", n.instances}, {"instances_not_executed", r.unverified_instances},
                     {"dtype", to_string(n.dtype)}, {"ok", n.ok},
                     {"max_abs_error", n.max_abs}, {"max_rel_error", n.max_rel}, {"checks", checks}};
  } else {
    j["numerics"] = nullptr;
  }
  return j;
}

}  // namespace tpsim
