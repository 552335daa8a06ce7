// The sweep machinery against a fake evaluator (closed-form step times, a planted OOM): enumeration,
// sharding, sharded-then-merged equals unsharded line for line, resume, crashed workers, ranking.
#include <doctest/doctest.h>

#include "plan_toy.hpp"
#include "relative.hpp"

#include <csignal>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>

#include "tpsim/planner.hpp"

using namespace tpsim;
using namespace tpsim_test;

TEST_CASE("the toy sweep enumerates every TP x PP x mb x SP x recompute x v point once, in order") {
  const auto layouts = enumerate_layouts(toy_spec());
  // 8 GPUs. tp1: pp 1,2,4,8 -> 1 + 3*2 (v) = 7; tp2 (SP on/off): pp 1,2,4 -> (1 + 2*2) * 2 = 10;
  // tp4: pp 1,2 -> (1 + 1*2) * 2 = 6. Each times 2 micro-batches x 2 recomputes: (7 + 10 + 6) * 4.
  CHECK(layouts.size() == 92);
  std::set<std::string> ids;
  for (std::size_t i = 0; i < layouts.size(); ++i) {
    const Layout& l = layouts[i];
    CHECK(l.gpus() == 8);
    CHECK(parse_layout_id(layout_id(l)) == l);
    ids.insert(layout_id(l));
    if (i > 0) CHECK(layouts[i - 1] < l);
  }
  CHECK(ids.size() == layouts.size());
  CHECK(layout_id(layouts.front()) == "n2-tp1-pp1-dp8-mb1-nosp-rnone-v1");
}

TEST_CASE("--distributed-optimizer both adds the sharded-Adam twin of every layout with dp > 1") {
  SweepSpec spec = toy_spec();
  spec.distributed_optimizers = {false, true};
  const auto layouts = enumerate_layouts(spec);
  // dp > 1 in the toy sweep: tp1 pp1/2/4 (4 + 8 + 8), tp2 pp1/2 (8 + 16), tp4 pp1 (8) = 52 twins.
  CHECK(layouts.size() == 92 + 52);
  int twins = 0;
  for (const Layout& l : layouts) {
    CHECK(parse_layout_id(layout_id(l)) == l);
    if (!l.distributed_optimizer) continue;
    ++twins;
    CHECK(l.dp > 1);
    CHECK(layout_id(l).ends_with("-do"));
    CHECK(scenario_for(spec, l).plan.distributed_optimizer);
  }
  CHECK(twins == 52);
  const std::string uneven = "n32-tp4-pp16-dp4-mb1-sp-rfull-v1-do-first7-last7";
  CHECK(layout_id(parse_layout_id(uneven)) == uneven);
}

TEST_CASE("--cp and a mixture of experts' ep add their axes: cp splits the GPUs, ep is carved out of dp") {
  SweepSpec spec = toy_spec();
  spec.context_parallel = {1, 2};
  const auto with_cp = enumerate_layouts(spec);
  // cp 2 leaves 4 GPUs per CP rank: tp1 pp 1,2,4 -> 1 + 2*2 = 5; tp2 (SP on/off) pp 1,2 -> (1 + 2) * 2 = 6;
  // tp4 pp 1 -> 1 * 2 = 2; each x 2 micro-batches x 2 recomputes: 13 * 4 = 52 more than the 92.
  CHECK(with_cp.size() == 92 + 52);
  for (const Layout& l : with_cp) {
    CHECK(l.gpus() == 8);
    CHECK(parse_layout_id(layout_id(l)) == l);
    if (l.cp == 1) continue;
    CHECK(layout_id(l).ends_with("-cp2"));
    CHECK(scenario_for(spec, l).plan.cp == 2);
    CHECK(scenario_for(spec, l).plan.world() == 8);
  }
  // A mixture of 4 experts: every power of two dividing the experts (1, 2, 4) that also divides dp.
  spec = toy_spec();
  spec.model.moe.experts = 4;
  spec.model.moe.top_k = 2;
  spec.model.moe.expert_ffn = spec.model.ffn;
  spec.expert_parallel = {};
  int ep4 = 0;
  for (const Layout& l : enumerate_layouts(spec)) {
    CHECK(l.dp % l.ep == 0);
    CHECK(parse_layout_id(layout_id(l)) == l);
    CHECK(scenario_for(spec, l).plan.ep == l.ep);
    if (l.ep != 4) continue;
    ++ep4;
    CHECK(layout_id(l).ends_with("-ep4"));
  }
  // dp a multiple of 4: tp1 pp1 (dp 8), tp1 pp2 (dp 4, v 1 and 2), tp2 pp1 (dp 4, SP off and on):
  // 1 + 2 + 2 = 5, each x 2 micro-batches x 2 recomputes.
  CHECK(ep4 == 20);
  // Megatron-Core's rule, as tpsim validates it: MoE with TP needs SP.
  Layout no_sp = parse_layout_id("n2-tp2-pp1-dp4-mb1-nosp-rnone-v1-ep4");
  CHECK(layout_problem(spec, no_sp).find("needs sequence parallelism") != std::string::npos);
}

TEST_CASE("shards partition the sweep: disjoint, complete, balanced") {
  const auto all = enumerate_layouts(toy_spec());
  std::set<std::string> seen;
  for (int i = 0; i < 5; ++i) {
    const auto part = shard_layouts(all, Shard{i, 5});
    CHECK(part.size() >= all.size() / 5);
    CHECK(part.size() <= all.size() / 5 + 1);
    for (const auto& l : part) CHECK(seen.insert(layout_id(l)).second);
  }
  CHECK(seen.size() == all.size());
  CHECK(parse_shard("2/5").index == 2);
  CHECK(parse_shard("2/5").parts == 5);
  CHECK_THROWS_AS(parse_shard("5/5"), std::invalid_argument);
  CHECK_THROWS_AS(parse_shard("1"), std::invalid_argument);
  CHECK_THROWS_AS(parse_shard("a/3"), std::invalid_argument);
}

TEST_CASE("planner rejections: batch divisibility and interleaving") {
  SweepSpec spec = toy_spec();
  Layout l;
  l.nodes = 2;
  l.tp = 1;
  l.pp = 1;
  l.dp = 8;
  l.micro_batch = 4;   // 8 x 4 = 32 does not divide 16
  CHECK(layout_problem(spec, l) == "global batch 16 is not a multiple of dp x micro-batch = 8 x 4");
  l.micro_batch = 1;
  CHECK(layout_problem(spec, l).empty());
  l.pp = 8;
  l.dp = 1;
  l.virtual_stages = 2;   // 8 layers over 8 stages x 2 chunks
  CHECK(layout_problem(spec, l) == "8 layers do not split into pp x virtual stages = 8 x 2 chunks");
}

TEST_CASE("a sweep ranks by throughput, rejects the planted OOM, and sharded-then-merged equals unsharded") {
  const SweepSpec spec = toy_spec();
  const auto whole_csv = scratch("whole.csv");
  SweepOptions options = writing_to(whole_csv);
  const SweepOutcome whole = run_sweep(spec, options, fake_evaluate);
  CHECK(whole.total == 92);
  CHECK(whole.evaluated == 92);
  REQUIRE(whole.ranked.size() == 92);

  // Best by closed form: no recompute, the fewest bubbles and stalls. tp1 pp4 dp2 mb1 v2 has
  // m = 8, bubble 3/8/2 of compute 1 -> 1.1875 s; tp4 pp1 dp2 mb2 with SP: 1 + 0.0075 s = 1.0075 s.
  const LayoutResult& best = whole.ranked.front();
  CHECK(layout_id(best.layout) == "n2-tp4-pp1-dp2-mb2-sp-rnone-v1");
  CHECK(best.step_time_s == rel(1.0075, 1e-5));
  CHECK(best.tokens_per_s == rel(16.0 * 512 / 1.0075, 1e-5));
  CHECK(best.gpu_hours == rel(1.0075 * 8 / 3600, 1e-5));
  CHECK(best.cost == rel(2 * best.gpu_hours, 1e-5));
  for (std::size_t i = 1; i < whole.ranked.size(); ++i)
    if (whole.ranked[i].verdict == Verdict::ok) CHECK(whole.ranked[i - 1].tokens_per_s >= whole.ranked[i].tokens_per_s);

  int oom = 0;
  for (const auto& r : whole.ranked)
    if (r.verdict == Verdict::oom) {
      ++oom;
      CHECK(r.layout.tp * r.layout.pp < 4);
      CHECK(r.reason.find("weights overflow") != std::string::npos);
    }
  CHECK(oom == 4 * (1 + 2 + 2));   // tp1 pp1, tp1 pp2 (v1, v2), tp2 pp1 (SP on/off); x mb x recompute

  // Three shards, each its own file and its own process pool, merged.
  std::vector<std::string> parts;
  for (int i = 0; i < 3; ++i) {
    const auto part = scratch("part" + std::to_string(i) + ".csv");
    SweepOptions o;
    o.jobs = 1;
    o.shard = Shard{i, 3};
    o.csv = part.string();
    const SweepOutcome outcome = run_sweep(spec, o, fake_evaluate);
    CHECK(outcome.total == (i < 2 ? 31 : 30));
    parts.push_back(part.string());
  }
  const Merged merged = merge_csv_files(parts);
  const auto merged_csv = scratch("merged.csv");
  write_ranked_csv(merged_csv.string(), merged.ranked, merged.tag);
  const std::string whole_text = read_text(whole_csv), merged_text = read_text(merged_csv);
  CHECK(std::count(whole_text.begin(), whole_text.end(), '\n') == 93);
  CHECK(merged_text == whole_text);
  CHECK(results_json(merged.ranked, merged.tag) == results_json(whole.ranked, sweep_tag(spec)));
}

TEST_CASE("a re-run resumes: finished layouts are skipped, a half-written row is redone") {
  const SweepSpec spec = toy_spec();
  const auto csv = scratch("resume.csv");
  SweepOptions options = writing_to(csv);
  run_sweep(spec, options, fake_evaluate);
  const std::string complete = read_text(csv);

  const SweepOutcome again = run_sweep(spec, options, fake_evaluate);
  CHECK(again.resumed == 92);
  CHECK(again.evaluated == 0);
  CHECK(read_text(csv) == complete);

  // Keep the header and 10 rows, then half of the 11th, as a sweep killed mid-write leaves it.
  std::size_t pos = 0;
  for (int line = 0; line < 11; ++line) pos = complete.find('\n', pos) + 1;
  const std::size_t half = pos + (complete.find('\n', pos) - pos) / 2;
  { std::ofstream(csv, std::ios::binary | std::ios::trunc) << complete.substr(0, half); }
  const SweepOutcome resumed = run_sweep(spec, options, fake_evaluate);
  CHECK(resumed.resumed == 10);
  CHECK(resumed.evaluated == 82);
  CHECK(read_text(csv) == complete);

  // The file belongs to this sweep: another target is refused rather than mixed in.
  SweepSpec other = spec;
  other.training.global_batch = 32;
  CHECK_THROWS_AS(run_sweep(other, options, fake_evaluate), InputError);
}

TEST_CASE("a worker that crashes or throws costs one layout, with the reason") {
  SweepSpec spec = toy_spec();
  spec.micro_batches = {1};
  spec.recomputes = {Recompute::none};
  auto evaluate = [](const Scenario& s) -> LayoutResult {
    if (s.plan.tp == 4 && s.plan.pp == 2) std::raise(SIGKILL);
    if (s.plan.tp == 2 && s.plan.pp == 4) throw std::runtime_error("engine gave up");
    return fake_evaluate(s);
  };
  SweepOptions options;
  options.jobs = 2;
  const SweepOutcome out = run_sweep(spec, options, evaluate);
  int killed = 0, thrown = 0, ok = 0;
  for (const auto& r : out.ranked) {
    if (r.verdict == Verdict::ok) ++ok;
    if (r.verdict != Verdict::error) continue;
    if (r.layout.tp == 4) {
      ++killed;
      CHECK(r.reason.find("signal 9") != std::string::npos);
    } else {
      ++thrown;
      CHECK(r.reason == "engine gave up");
    }
  }
  CHECK(killed == 4);   // tp4 pp2: v 1 and 2, SP on and off
  CHECK(thrown == 4);   // tp2 pp4: the same four
  CHECK(ok > 0);
}

TEST_CASE("the sweep's description says its targets as a person writes them") {
  SweepSpec spec = toy_spec();
  CHECK(sweep_context(spec) == "toy on toy-cluster (4 GPUs/node); training gb 16 seq 512, no token target, no deadline");
  spec.training.tokens = 2e12;
  spec.training.deadline_s = 30 * 86400.0;
  CHECK(sweep_context(spec) == "toy on toy-cluster (4 GPUs/node); training gb 16 seq 512, 2T tokens to train, deadline 30 days");
  spec.training.tokens = 1.5e9;
  CHECK(sweep_context(spec).find(", 1.5B tokens to train,") != std::string::npos);
}
