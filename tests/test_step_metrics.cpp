// Step metrics against closed forms: a pipeline's step time follows 1F1B's (m + p - 1) slots, the
// throughput and MFU follow from the step time, and inference's TTFT / TPOT / tokens/s are
// consistent with the roofline (decode reads every weight once per token).
#include <doctest/doctest.h>

#include "relative.hpp"

#include <spdlog/spdlog.h>

#include "tpsim/memory.hpp"
#include "tpsim/report.hpp"
#include "tpsim/run.hpp"

using namespace tpsim;

namespace {

Scenario load(const std::string& model, std::vector<Override> overrides) {
  ScenarioRequest request;
  request.topology = "dgx-h100";
  request.model = model;
  request.overrides = std::move(overrides);
  return load_scenario(request);
}

StepMetrics run(const Scenario& s) {
  spdlog::set_level(spdlog::level::warn);
  RunOptions options;
  options.numerics = "off";
  RunResult r = run_scenario(s, options);
  REQUIRE(r.step);
  return *r.step;
}

}  // namespace

TEST_CASE("throughput, TFLOP/s and MFU follow from the step time and Narayanan's FLOPs") {
  const Scenario s = load("gpt-1.7b", {{"plan.tp", "2"}, {"plan.pp", "2"}, {"plan.dp", "2"}, {"plan.recompute", "full"},
                                       {"workload.global_batch", "16"}});
  const StepMetrics m = run(s);
  CHECK(m.micro_batches == 8);
  CHECK(m.tokens_per_s == rel(16.0 * 2048 / m.step_time_s));
  const double F = model_flops_per_step(s.model, 16, 2048);
  CHECK(m.tflops_per_gpu == rel(F / (m.step_time_s * 8) / 1e12));
  CHECK(m.mfu == rel(m.tflops_per_gpu * 1e12 / 989e12));
}

TEST_CASE("1F1B on 4 stages: step time = (m + p - 1) x one micro-batch's stage time, plus the tail") {
  // One GPU per stage (tp = dp = 1): no TP or DP traffic; the pipeline's p2p is small next to compute.
  const Scenario base = load("gpt-1.7b", {{"plan.tp", "1"}, {"plan.pp", "4"}, {"plan.dp", "1"}, {"plan.recompute", "none"},
                                          {"workload.global_batch", "8"}});
  Scenario one = base;
  one.workload.global_batch = 1;
  const double m8 = run(base).step_time_s, m1 = run(one).step_time_s;
  // m = 1 runs every stage once in turn: p slots; m = 8 adds 7 more slots of the slowest stage.
  // The stages differ (embedding on the first, logits on the last), so allow 10%.
  const double slot = m1 / 4;
  CHECK(m8 == rel((8 + 4 - 1) * slot, 0.10));
  CHECK(m8 > 8 * slot);   // the bubble is real
}

TEST_CASE("inference: TTFT is the prefill, TPOT a decode step, tokens/s their consequence") {
  const Scenario s = load("llama2-7b", {{"plan.tp", "1"}, {"workload.kind", "inference"}, {"workload.batch", "1"},
                                        {"workload.prompt", "512"}, {"workload.generate", "128"}});
  const StepMetrics m = run(s);
  CHECK(m.ttft_s == m.prefill_s);
  CHECK(m.tpot_s == m.decode_step_s);
  CHECK(m.step_time_s == rel(m.ttft_s + 127 * m.tpot_s));
  CHECK(m.tokens_per_s == rel(128 / m.step_time_s));
  // Batch-1 decode is memory-bound: at least every weight read once per token, and not much more
  // than that plus a launch per kernel (~12 kernels per layer).
  const double weights = double(parameter_count(s.model)) * 2;
  const double floor = weights / 3.35e12;
  CHECK(m.tpot_s > floor);
  CHECK(m.tpot_s < floor + 32 * 16 * 4e-6 + 1e-3);
  // Prefill of 512 tokens is compute-bound: 2 FLOPs per weight per token at no more than MAMF (a
  // best case above the preset's sustained ceiling).
  CHECK(m.ttft_s > 2 * double(parameter_count(s.model)) * 512 / (989e12 * 0.803));
  CHECK(m.memory.kv_cache == rel(2.0 * 32 * 1 * 640 * 4096 * 2));
}

TEST_CASE("tensor parallelism shortens decode: TP8's compute is under half of TP1's, its all-reduces add latency") {
  const std::vector<Override> inference = {{"workload.kind", "inference"}, {"workload.batch", "8"},
                                           {"workload.prompt", "256"}, {"workload.generate", "32"}};
  auto with_tp = [&](int tp) {
    std::vector<Override> o = inference;
    o.push_back({"plan.tp", std::to_string(tp)});
    return run(load("llama2-7b", o));
  };
  const StepMetrics tp1 = with_tp(1), tp8 = with_tp(8);
  CHECK(tp8.tpot_s < tp1.tpot_s);
  // Weights split 8 ways: the memory-bound GEMMs take 1/8, but kernel launches (4 us each, ~13 per
  // layer) do not shrink: a batch-8 decode at TP8 is launch-bound. TP collectives are real ops in
  // inference, so compute and communication are apart.
  CHECK(tp8.decode_compute_s < tp1.decode_compute_s / 2);
  CHECK(tp8.decode_compute_s > 32 * 10 * 4e-6);
  CHECK(tp8.tp_collectives == "exact");
  CHECK(tp8.decode_communication_s > 0);
  CHECK(tp1.decode_communication_s == 0);
}

TEST_CASE("an OOM layout is reported with its largest component") {
  const Scenario s = load("llama2-70b", {{"plan.tp", "1"}, {"plan.dp", "1"}, {"workload.global_batch", "1"}});
  const MemoryBreakdown m = peak_memory(s);
  CHECK_FALSE(m.fits);
  // 140 GB of bf16 weights alone overflow an 80 GB GPU; the largest part is the 12 B/param of
  // optimizer states.
  CHECK(m.overflow_component == "optimizer");
  CHECK(m.overflow_bytes == rel(m.total - m.capacity));
}

TEST_CASE("dp_overlap: false reduces every gradient bucket after the backward pass, back to back; overlap is never slower") {
  spdlog::set_level(spdlog::level::warn);
  auto timeline = [](bool overlap) {
    const Scenario s = load("gpt-1.7b", {{"plan.tp", "4"}, {"plan.dp", "2"}, {"workload.global_batch", "8"},
                                         {"plan.dp_overlap", overlap ? "true" : "false"}});
    CHECK(s.plan.dp_overlap == overlap);
    RunOptions options;
    options.numerics = "off";
    return run_scenario(s, options).timeline;
  };
  const Timeline on = timeline(true), off = timeline(false);
  CHECK(off.makespan > on.makespan);
  int buckets = 0;
  for (int rank = 0; rank < 8; ++rank) {
    double backward_end = 0, previous_end = -1;
    for (const Span& s : off.spans)
      if (s.rank == rank && s.stream == Stream::compute && s.pass == Pass::backward && (s.kind == "gemm" || s.kind == "kernel"))
        backward_end = std::max(backward_end, s.end);
    REQUIRE(backward_end > 0);
    for (const Span& s : off.spans) {
      if (s.rank != rank || s.name.rfind("dp.grads", 0) != 0) continue;
      CAPTURE(s.name);
      CHECK(s.start >= backward_end);
      if (previous_end >= 0) CHECK(s.start == rel(previous_end, 1e-12));   // one after the other on dp_comm
      previous_end = s.end;
      ++buckets;
    }
  }
  CHECK(buckets >= 8);   // every rank reduced at least one bucket
  // Overlapped, the first bucket starts before the backward pass ends.
  bool early = false;
  double backward_end = 0;
  for (const Span& s : on.spans)
    if (s.rank == 0 && s.stream == Stream::compute && s.pass == Pass::backward && (s.kind == "gemm" || s.kind == "kernel"))
      backward_end = std::max(backward_end, s.end);
  for (const Span& s : on.spans) early |= s.rank == 0 && s.name.rfind("dp.grads", 0) == 0 && s.start < backward_end;
  CHECK(early);
}
