// Result rows and the report: CSV fields survive quoting, numbers are stable under read -> write,
// ranking by each objective, Megatron's usual choice and the sentence saying why the best beats it.
#include <doctest/doctest.h>

#include "plan_toy.hpp"
#include "relative.hpp"

#include <limits>

#include "tpsim/planner.hpp"

using namespace tpsim;
using namespace tpsim_test;

namespace {

LayoutResult ran(const std::string& id, double step, double compute, double exposed, double bubble) {
  LayoutResult r;
  r.layout = parse_layout_id(id);
  r.step_time_s = step;
  r.compute_s = compute;
  r.exposed_comm_s = exposed;
  r.bubble_s = bubble;
  r.tokens_per_s = 1000 / step;
  r.gpu_hours = step * r.layout.gpus() / 3600;
  return r;
}

LayoutResult rejected(const std::string& id, Verdict v, const std::string& reason) {
  LayoutResult r;
  r.layout = parse_layout_id(id);
  r.verdict = v;
  r.reason = reason;
  return r;
}

}  // namespace

TEST_CASE("a CSV row with commas and quotes in its reason reads back as the same row") {
  LayoutResult r = rejected("n8-tp2-pp1-dp32-mb1-sp-rsel-v1", Verdict::invalid,
                            "plan.tp: \"2\" does not divide kv_heads, heads = 64, kv_heads = 8");
  r.memory_bytes = 1.5 * 1024 * 1024 * 1024;
  r.step_time_s = 1.0 / 3.0;
  SweepTag tag;
  tag.context = "m on t (8 GPUs/node); training gb 1024";
  tag.id = "0123456789abcdef";
  tag.objective = Objective::cost;
  tag.shard = Shard{2, 3};
  tag.layouts = 95;
  const std::string row = csv_row(r, 0, tag);
  CHECK(row.ends_with(",cost,m on t (8 GPUs/node); training gb 1024,0123456789abcdef,2/3,95"));
  const CsvRecord back = parse_csv_row(row);
  CHECK(back.result.reason == r.reason);
  CHECK(back.result.layout == r.layout);
  CHECK(back.result.verdict == Verdict::invalid);
  CHECK(back.result.step_time_s == 0.333333);          // six significant digits, as written
  CHECK(back.result.memory_bytes == rel(r.memory_bytes));
  CHECK(back.tag.objective == Objective::cost);
  CHECK(back.tag.context == tag.context);
  CHECK(back.tag.id == tag.id);
  CHECK(back.tag.shard.index == 2);
  CHECK(back.tag.shard.parts == 3);
  CHECK(back.tag.layouts == 95);
  CHECK(csv_row(back.result, 0, back.tag) == row);   // read -> write is the identity
  CHECK_THROWS_AS(parse_csv_row("1,2,3"), std::invalid_argument);
  CHECK_THROWS_AS(parse_layout_id("n8-tp2-pp1"), std::invalid_argument);
  CHECK_THROWS_AS(parse_layout_id("n8-tp02-pp1-dp32-mb1-sp-rsel-v1"), std::invalid_argument);
}

TEST_CASE("ranking orders ok layouts by the objective, ties and rejects by layout") {
  std::vector<LayoutResult> rs = {
      rejected("n1-tp1-pp1-dp8-mb1-nosp-rnone-v1", Verdict::oom, "OOM: weights overflow"),
      ran("n1-tp8-pp1-dp1-mb1-sp-rsel-v1", 2.0, 1.5, 0.5, 0),
      ran("n1-tp4-pp2-dp1-mb1-sp-rsel-v1", 1.0, 0.8, 0.1, 0.1),
      ran("n1-tp2-pp4-dp1-mb1-sp-rsel-v1", 1.0, 0.7, 0.0, 0.3),
      rejected("n1-tp1-pp8-dp1-mb1-nosp-rnone-v2", Verdict::invalid, "x"),
  };
  rank_results(rs, Objective::throughput);
  CHECK(layout_id(rs[0].layout) == "n1-tp2-pp4-dp1-mb1-sp-rsel-v1");   // tie at 1.0 s: layout order
  CHECK(layout_id(rs[1].layout) == "n1-tp4-pp2-dp1-mb1-sp-rsel-v1");
  CHECK(layout_id(rs[2].layout) == "n1-tp8-pp1-dp1-mb1-sp-rsel-v1");
  CHECK(rs[3].verdict == Verdict::oom);                                  // n1-tp1-pp1 < n1-tp1-pp8
  CHECK(rs[4].verdict == Verdict::invalid);
  rank_results(rs, Objective::latency);
  CHECK(layout_id(rs[2].layout) == "n1-tp8-pp1-dp1-mb1-sp-rsel-v1");
}

TEST_CASE("the table marks Megatron's usual choice (TP8, smallest PP that fits) and says why the best wins") {
  std::vector<LayoutResult> rs = {
      rejected("n8-tp8-pp1-dp8-mb1-sp-rsel-v1", Verdict::oom, "OOM: optimizer overflow HBM (80.0 GiB) by 9.0 GiB"),
      rejected("n8-tp8-pp2-dp4-mb1-sp-rsel-v1", Verdict::oom, "OOM: activations overflow HBM (80.0 GiB) by 1.0 GiB"),
      ran("n8-tp8-pp4-dp2-mb1-sp-rsel-v1", 10.0, 7.0, 1.5, 1.5),   // Megatron's: PP4 is the first that fits
      ran("n8-tp8-pp8-dp1-mb1-sp-rsel-v1", 11.0, 7.0, 1.0, 3.0),
      ran("n8-tp4-pp4-dp4-mb1-sp-rsel-v2", 8.0, 7.0, 0.5, 0.5),
  };
  rank_results(rs, Objective::throughput);
  const auto m = megatron_choice(rs, 8);
  REQUIRE(m.has_value());
  CHECK(layout_id(m->layout) == "n8-tp8-pp4-dp2-mb1-sp-rsel-v1");
  const std::string table = plan_table(rs, Objective::throughput, 8, 10);
  CHECK(table.find("n8-tp8-pp4-dp2-mb1-sp-rsel-v1") != std::string::npos);
  CHECK(table.find("<- Megatron's usual choice") != std::string::npos);
  CHECK(table.find("ranks 2 of 3: 20.0% fewer tokens/s than the best") != std::string::npos);
  // Largest difference first; stalls and bubble tie at 1 s and keep their order, compute is equal.
  CHECK(table.find("why (best vs Megatron's, per step, largest difference first): stalled on communication "
                   "500.000 ms vs 1.500 s; pipeline bubble 500.000 ms vs 1.500 s; compute 7.000 s vs 7.000 s; "
                   "TP communication 0 s vs 0 s.") !=
        std::string::npos);
  CHECK(table.find("oom (activations)") != std::string::npos);
  CHECK(table.find("oom (optimizer)") != std::string::npos);
  CHECK(table.find("5 layouts: 3 ran, 2 rejected") != std::string::npos);
}

TEST_CASE("a row with nan or inf, a bad sweep id or shard does not parse: tpsim never writes one") {
  SweepTag tag;
  tag.context = "m on t";
  tag.id = "0123456789abcdef";
  tag.layouts = 4;
  const std::string row = csv_row(ran("n1-tp8-pp1-dp1-mb1-sp-rsel-v1", 2.0, 1.5, 0.5, 0), 0, tag);
  CHECK_NOTHROW(parse_csv_row(row));
  auto with = [&](const std::string& from, const std::string& to) {
    std::string bad = row;
    const auto at = bad.find(from);
    REQUIRE(at != std::string::npos);
    return bad.replace(at, from.size(), to);
  };
  auto refusal = [](const std::string& line) {
    try {
      parse_csv_row(line);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("parsed");
  };
  CHECK(refusal(with(",2,1.5,", ",nan,1.5,")) == "column step_time_s: 'nan' is not a finite number (tpsim never writes one)");
  CHECK(refusal(with(",2,1.5,", ",2,inf,")) == "column compute_s: 'inf' is not a finite number (tpsim never writes one)");
  CHECK(refusal(with(",2,1.5,", ",2,-INF,")) == "column compute_s: '-INF' is not a finite number (tpsim never writes one)");
  CHECK(refusal(with("0123456789abcdef", "0123")) == "column sweep_id: expected 16 hex digits, got '0123'");
  CHECK(refusal(with(",0/1,", ",3/3,")) == "column shard: expected i/N (0 <= i < N), got '3/3'");
  CHECK(refusal(with(",0/1,4", ",0/1,0")) == "column sweep_layouts: expected a count of layouts, got '0'");
}

TEST_CASE("finish_result never leaves a non-finite number: it becomes an error verdict") {
  SweepSpec spec = toy_spec();
  spec.topology.gpus_per_node = 8;
  LayoutResult r = ran("n1-tp8-pp1-dp1-mb1-sp-rsel-v1", 2.0, 1.5, 0.5, 0);
  r.bubble_s = std::numeric_limits<double>::quiet_NaN();
  finish_result(spec, r);
  CHECK(r.verdict == Verdict::error);
  CHECK(r.reason == "the simulation reported a non-finite bubble");
  CHECK(r.bubble_s == 0);
  // A step so short that tokens/s overflows.
  r = ran("n1-tp8-pp1-dp1-mb1-sp-rsel-v1", 1e-320, 0, 0, 0);
  r.tokens_per_s = r.gpu_hours = 0;   // finish_result derives them
  finish_result(spec, r);
  CHECK(r.verdict == Verdict::error);
  CHECK(r.reason == "the simulation reported a non-finite tokens/s");
  CHECK_NOTHROW(parse_csv_row(csv_row(r, 0, SweepTag{"m", "0123456789abcdef", Objective::throughput, {}, 1})));
}
