// Megatron's uneven pipeline (plan.first_stage_layers / last_stage_layers): how Llama-3.1-405B's
// 126 layers run on 16 stages (Llama 3 Herd of Models: TP 8, PP 16). The split is closed-form; a
// plan with it runs end to end (memory per stage, timing, numerics sharded == unsharded), and the
// planner finds a layout for 405B on 32 nodes at seq 8192, which no pp dividing 126 can give.
#include <doctest/doctest.h>

#include <string>

#include "relative.hpp"
#include "tpsim/memory.hpp"
#include "tpsim/planner.hpp"
#include "tpsim/report.hpp"
#include "tpsim/run.hpp"
#include "tpsim/spec.hpp"

using namespace tpsim;

TEST_CASE("uneven_split: ceil(layers / pp) on the middle stages, the rest on the first and last") {
  CHECK(uneven_split(126, 16) == std::pair<int64_t, int64_t>{7, 7});    // 7 + 14 x 8 + 7 (Llama 3 405B)
  CHECK(uneven_split(126, 32) == std::pair<int64_t, int64_t>{3, 3});    // 3 + 30 x 4 + 3
  CHECK(uneven_split(125, 2) == std::pair<int64_t, int64_t>{62, 63});
  CHECK(uneven_split(126, 8) == std::pair<int64_t, int64_t>{15, 15});   // 15 + 6 x 16 + 15
  CHECK(uneven_split(126, 2) == std::pair<int64_t, int64_t>{0, 0});     // 2 divides 126: even
  CHECK(uneven_split(10, 9) == std::pair<int64_t, int64_t>{0, 0});      // 7 middle stages of 2 leave none
  for (int pp = 2; pp <= 64; ++pp) {
    const auto [first, last] = uneven_split(126, pp);
    if (first == 0) continue;
    ModelSpec m;
    m.layers = 126;
    PlanSpec p;
    p.pp = pp;
    p.first_stage_layers = first;
    p.last_stage_layers = last;
    INFO("pp " << pp);
    CHECK(stage_split_problem(m, p).empty());
    int64_t next = 0;
    for (int s = 0; s < pp; ++s) {   // contiguous, every stage non-empty, the middle ones at least as full
      const StageLayers l = stage_layers(m, p, s);
      CHECK(l.first == next);
      CHECK(l.count >= 1);
      if (s > 0 && s < pp - 1) CHECK(l.count >= std::max(first, last));
      next += l.count;
    }
    CHECK(next == 126);
  }
}

TEST_CASE("stage_split_problem names what does not split") {
  ModelSpec m;
  m.layers = 126;
  PlanSpec p;
  p.pp = 16;
  CHECK(stage_split_problem(m, p).find("does not divide model.layers 126") != std::string::npos);
  p.first_stage_layers = 6;
  p.last_stage_layers = 7;   // 113 over 14 stages
  CHECK(stage_split_problem(m, p).find("leave 113 for 14 other stages") != std::string::npos);
  p.first_stage_layers = 7;
  CHECK(stage_split_problem(m, p).empty());
  p.virtual_stages = 2;
  CHECK(stage_split_problem(m, p).find("without virtual stages") != std::string::npos);
  p.virtual_stages = 1;
  p.pp = 1;
  CHECK(stage_split_problem(m, p).find("need a pipeline") != std::string::npos);
}

TEST_CASE("a 7 + 14 x 8 + 7 plan runs: memory per stage by its own layers, numerics pass") {
  const Scenario s = load_scenario({"", "cluster-h100-ndr", "llama3-405b", "",
                                    {{"topology.nodes", "16"},
                                     {"plan.tp", "8"},
                                     {"plan.pp", "16"},
                                     {"plan.first_stage_layers", "7"},
                                     {"plan.last_stage_layers", "7"},
                                     {"plan.sp", "true"},
                                     {"plan.recompute", "full"},
                                     {"workload.seq", "8192"},
                                     {"workload.global_batch", "16"},
                                     {"workload.micro_batch", "1"}}});
  // Parameters on a stage: its layers' share of 405B over TP 8, plus the embedding (stage 0) or the
  // head and final norm (stage 15), each [vocab, hidden] / 8: closed form from the model's shapes.
  const ModelSpec& m = s.model;
  const double h = double(m.hidden), hd = double(m.head_dim());
  const double layer = (h * double(m.heads + 2 * m.kv_heads) * hd + double(m.heads) * hd * h + 3 * h * double(m.ffn)) / 8 +
                       2 * h;   // the two RMSNorm scales stay whole on every TP rank
  const double table = double(m.vocab) * h / 8;
  CHECK(memory_per_gpu(s, 0).parameters == rel(7 * layer + table, 1e-12));
  CHECK(memory_per_gpu(s, 5).parameters == rel(8 * layer, 1e-12));
  CHECK(memory_per_gpu(s, 15).parameters == rel(7 * layer + table + h, 1e-12));
  const RunResult r = run_scenario(s, RunOptions{});
  REQUIRE(r.step);
  REQUIRE(r.numerics);
  CHECK(r.numerics->ok);
  CHECK(r.numerics_scope.find("1 layer per stage (16 stages)") != std::string::npos);
}

TEST_CASE("the planner finds a layout for Llama-3.1-405B on 32 nodes of cluster-h100-ndr at seq 8192") {
  // 126 layers: the pp that divide it and 256 GPUs (1, 2) leave 25-50 B parameters per GPU; every
  // layout that runs has an uneven pipeline.
  SweepSpec spec;
  spec.model = load_model("llama3-405b");
  spec.topology = load_topology("cluster-h100-ndr");
  spec.node_counts = {32};
  spec.training.global_batch = 64;
  spec.training.seq = 8192;
  spec.micro_batches = {1};
  spec.recomputes = {Recompute::full};
  spec.virtual_stages = {1};
  SweepOptions options;
  options.jobs = 2;
  const SweepOutcome out = run_sweep(spec, options, evaluate_layout);
  REQUIRE(!out.ranked.empty());
  const LayoutResult& best = out.ranked.front();
  CHECK(best.verdict == Verdict::ok);
  CHECK(best.layout.first_stage_layers > 0);
  CHECK(best.memory_bytes <= spec.topology.gpu.hbm_bytes);
  CHECK(rejection_hints(spec, out.ranked).empty());
}
