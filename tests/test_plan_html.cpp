// The sweep's page (tpsim/plan_html.hpp): the Pareto front and the rejection groups against
// hand-worked answers, the page self-contained and deterministic, and every chart drawn in headless
// Chromium (the Debian `chromium` package): the page's own script counts the marks the browser laid
// out with a non-zero size and any script error, and --dump-dom shows the counts.
#include <doctest/doctest.h>

#include "headless_browser.hpp"
#include "plan_toy.hpp"

#include <unistd.h>
#include <filesystem>

#include "tpsim/plan_html.hpp"

using namespace tpsim;
using namespace tpsim_test;

namespace {

// The part of the page from `<svg id="ID"` to its `</svg>`.
std::string svg_of(const std::string& html, const std::string& id) {
  const size_t a = html.find("<svg id=\"" + id + "\"");
  if (a == std::string::npos) return "";
  return html.substr(a, html.find("</svg>", a) - a);
}

Layout training(int nodes, int tp, int pp, int dp) {
  Layout l;
  l.nodes = nodes;
  l.tp = tp;
  l.pp = pp;
  l.dp = dp;
  l.sp = tp > 1;
  l.recompute = Recompute::selective;
  return l;
}

LayoutResult ran(const Layout& l, double days, double tokens_per_s) {
  LayoutResult r;
  r.layout = l;
  r.time_to_train_s = days * 86400;
  r.step_time_s = 10;
  r.compute_s = 8;
  r.tokens_per_s = tokens_per_s;
  r.gpu_hours = days * 24 * l.gpus();
  r.cost = 2 * r.gpu_hours;   // at 2 per GPU-hour
  r.memory_bytes = 40e9;
  return r;
}

LayoutResult rejected(const Layout& l, Verdict v, const std::string& reason) {
  LayoutResult r;
  r.layout = l;
  r.verdict = v;
  r.reason = reason;
  return r;
}

// Four layouts that ran (in rank order by throughput) and six rejected, on 1 and 2 nodes of 4 GPUs.
// Time (days), cost (2 x days x 24 x GPUs):
//   A n2 8 GPUs 10 d 3840   B n2 8 GPUs 12 d 4608   C n1 4 GPUs 15 d 2880   D n1 4 GPUs 20 d 3840
// Front: A (fastest); B is slower and dearer than A; C (cheapest); D is slower than C at a higher
// cost. So {A, C}. Megatron's choice (TP4, SP, selective, mb 1, v1, smallest PP, on 2 nodes) is B.
std::vector<LayoutResult> hand_made() {
  return {ran(training(2, 4, 2, 1), 10, 40000),
          ran(training(2, 4, 1, 2), 12, 30000),
          ran(training(1, 4, 1, 1), 15, 20000),
          ran(training(1, 2, 2, 1), 20, 10000),
          rejected(training(2, 1, 1, 8), Verdict::oom, "OOM: optimizer overflow HBM (80.0 GiB) by 9.0 GiB on stage 0"),
          rejected(training(2, 2, 1, 4), Verdict::oom, "OOM: activations overflow HBM (80.0 GiB) by 3.0 GiB on stage 0"),
          rejected(training(1, 1, 1, 4), Verdict::oom, "OOM: optimizer overflow HBM (80.0 GiB) by 1.0 GiB on stage 0"),
          rejected(training(1, 1, 4, 1), Verdict::invalid,
                   "8 layers do not split over 3 stages, evenly or with Megatron's smaller first and last stages"),
          rejected(training(2, 2, 2, 2), Verdict::invalid, "a mixture of experts with tp > 1 needs sequence parallelism"),
          rejected(training(2, 1, 2, 4), Verdict::deadline, "trains 1e+12 tokens in 40.0 days, past the 30.0 days deadline")};
}

PlanPage hand_made_page() {
  PlanPage page;
  page.context = "toy <model> & co on toy-cluster (4 GPUs/node); training gb 16 seq 512 tokens 1e+12 deadline 2.59e+06";
  page.objective = Objective::throughput;
  page.ranked = hand_made();
  page.megatron_tp = 4;
  page.csv = "plan.csv";
  return page;
}

// A step on two GPUs: a GEMM, an all-reduce the next GEMM waits for, then that GEMM.
RunResult two_gpu_step() {
  RunResult r;
  r.scenario.name = "plan n2-tp4-pp2-dp1-mb1-sp-rsel-v1";
  r.scope = "step";
  Timeline& t = r.timeline;
  t.makespan = 4e-3;
  auto add = [&](int rank, Stream stream, const std::string& kind, double a, double b) {
    Span s;
    s.rank = rank;
    s.stream = stream;
    s.name = "layer0.mlp.fc2.fwd";
    s.kind = kind;
    s.start = a * 1e-3;
    s.end = b * 1e-3;
    t.spans.push_back(s);
  };
  for (int g = 0; g < 2; ++g) {
    add(g, Stream::compute, "gemm", 0, 1);
    add(g, Stream::tp_comm, "collective", 1, 3);
    add(g, Stream::compute, "stall", 1, 3);
    add(g, Stream::compute, "gemm", 3, 4);
  }
  return r;
}

// The front by its definition, in O(n^2): no other point at most as slow and as dear, better in one.
std::vector<std::size_t> front_by_definition(const std::vector<TimeCost>& p) {
  std::vector<std::size_t> out;
  for (std::size_t i = 0; i < p.size(); ++i) {
    bool beaten = false;
    for (std::size_t j = 0; j < p.size(); ++j) {
      const bool no_worse = p[j].time <= p[i].time && p[j].cost <= p[i].cost;
      const bool better = p[j].time < p[i].time || p[j].cost < p[i].cost;
      beaten = beaten || (no_worse && (better || j < i));   // of equal points, the first stays
    }
    if (!beaten) out.push_back(i);
  }
  return out;
}

struct PageRendered {
  std::string html, dom, log;   // the page as written, --dump-dom, and the browser's log (console messages)
};

// The page written by write_plan_html() and loaded in headless Chromium, offline.
PageRendered render(const std::string& browser, const std::filesystem::path& dir, const PlanPage& plan) {
  std::filesystem::create_directories(dir);
  const auto page = dir / "plan.html";
  write_plan_html(page.string(), plan);
  const Rendered r = render_page(browser, dir, page);
  return {read_text(page), r.dom, r.log};
}

}  // namespace

TEST_CASE("the Pareto front of hand-made points is the hand-worked one") {
  // (time, cost):   0 (10,100)   1 (20,50)   2 (15,120)   3 (30,50)   4 (40,20)
  //                 5 (20,50)    6 (25,60)   7 (10,100)   8 (50,20)
  // 2 is beaten by 0 (faster and cheaper); 3 by 1 (faster, same cost); 6 by 1; 8 by 4 (faster, same
  // cost); 5 and 7 repeat 1 and 0, which come first. Front by time: 0, 1, 4.
  const std::vector<TimeCost> points = {{10, 100}, {20, 50}, {15, 120}, {30, 50}, {40, 20},
                                        {20, 50},  {25, 60}, {10, 100}, {50, 20}};
  CHECK(pareto_front(points) == std::vector<std::size_t>{0, 1, 4});
  CHECK(front_by_definition(points) == std::vector<std::size_t>{0, 1, 4});
  CHECK(pareto_front({}).empty());
  CHECK(pareto_front({{3, 3}}) == std::vector<std::size_t>{0});
  // A strict trade-off: every point is on the front, fastest first.
  CHECK(pareto_front({{3, 1}, {1, 3}, {2, 2}}) == std::vector<std::size_t>{1, 2, 0});
}

TEST_CASE("rejection reasons fall into the groups a reader counts") {
  auto group = [](Verdict v, const std::string& reason) { return rejection_category(rejected(Layout{}, v, reason)); };
  CHECK(group(Verdict::ok, "") == "");
  CHECK(group(Verdict::oom, "OOM: activations overflow HBM (74.5 GiB) by 9.0 GiB on stage 0") == "out of memory");
  // The planner's own checks (layout_problem) and validate()'s messages, as they are worded.
  CHECK(group(Verdict::invalid, "80 layers do not split over 32 stages, evenly or with Megatron's smaller first and "
                                "last stages") == "does not divide");
  CHECK(group(Verdict::invalid, "80 layers do not split into pp x virtual stages = 16 x 2 chunks") == "does not divide");
  CHECK(group(Verdict::invalid, "global batch 1000 is not a multiple of dp x micro-batch = 16 x 1") == "does not divide");
  CHECK(group(Verdict::invalid, "interleaved 1F1B needs micro-batches (6) to be a multiple of pp (4)") ==
        "does not divide");
  CHECK(group(Verdict::invalid, "seq 4096 does not cut into 2 x cp = 6 chunks") == "does not divide");
  CHECK(group(Verdict::invalid, "workload.seq: seq 4095 is not divisible by tp 2 (sequence parallelism splits the "
                                "sequence over tp)") == "does not divide");
  CHECK(group(Verdict::invalid, "a mixture of experts with tp > 1 needs sequence parallelism") ==
        "unsupported combination");
  CHECK(group(Verdict::invalid, "context parallelism with a mixture of experts is not modelled yet") ==
        "unsupported combination");
  CHECK(group(Verdict::invalid, "workload.seq: seq 9000 exceeds model.max_seq 4096 of 'toy'") == "invalid (other)");
  CHECK(group(Verdict::deadline, "trains 2e+12 tokens in 40.0 days, past the 30.0 days deadline") == "past the deadline");
  CHECK(group(Verdict::latency, "a request takes 3 s, over the 2 s latency bound") == "over the latency bound");
  CHECK(group(Verdict::error, "the worker died of signal 11 (Segmentation fault)") == "simulation failed");
}

TEST_CASE("the page draws every layout that ran, the front, and the rejections counted by hand") {
  PlanPage page = hand_made_page();
  page.best_run = two_gpu_step();
  const std::string html = plan_html(page);

  // Self-contained: the SVG namespace is the only address, nothing linked or fetched.
  CHECK(count(html, "http://") == count(html, "http://www.w3.org/2000/svg"));
  CHECK(html.find("https://") == std::string::npos);
  CHECK(html.find("<link") == std::string::npos);
  CHECK(html.find("<script src") == std::string::npos);
  CHECK(html.find("@import") == std::string::npos);
  CHECK(count(html, "url(") == count(html, "url(#"));   // fragments of the page itself only
  CHECK(html.find("toy &lt;model&gt; &amp; co") != std::string::npos);   // user text escaped
  CHECK(plan_html(page) == html);                                         // deterministic

  // 1. One bar per layout that ran; the best (A) and Megatron's (B, rank 2) marked.
  const std::string metric = svg_of(html, "plan-metric");
  CHECK(count(metric, "data-layout=") == 4);
  CHECK(metric.find(R"(class="p-best" data-layout="n2-tp4-pp2-dp1-mb1-sp-rsel-v1")") != std::string::npos);
  CHECK(metric.find(R"(class="p-meg" data-layout="n2-tp4-pp1-dp2-mb1-sp-rsel-v1")") != std::string::npos);
  CHECK(metric.find("Megatron's usual choice (#2): n2-tp4-pp1-dp2-mb1-sp-rsel-v1") != std::string::npos);
  // 40000 tokens/s at most over at most 6 intervals: 6667 rounds up to a step of 10k, the axis ends at 40k.
  for (const char* tick : {">0</text>", ">10k</text>", ">20k</text>", ">40k</text>"})
    CHECK(metric.find(tick) != std::string::npos);
  CHECK(metric.find(">50k</text>") == std::string::npos);
  CHECK(metric.find("training tokens/s") != std::string::npos);

  // 2. Every point drawn; the front is A and C (worked in hand_made()), ringed and listed.
  const std::string pareto = svg_of(html, "plan-pareto");
  CHECK(count(pareto, "data-layout=") == 4);
  CHECK(count(pareto, "class=\"p-ring\"") == 2);
  CHECK(pareto.find("time to train (days)") != std::string::npos);
  CHECK(pareto.find("cost to train (currency units, at 2 per GPU-hour)") != std::string::npos);
  const size_t table = html.find("layout on the front");
  REQUIRE(table != std::string::npos);
  const std::string front_table = html.substr(table, html.find("</table>", table) - table);
  CHECK(count(front_table, "<tr>") == 2);
  CHECK(front_table.find("n2-tp4-pp2-dp1-mb1-sp-rsel-v1") != std::string::npos);
  CHECK(front_table.find("n1-tp4-pp1-dp1-mb1-sp-rsel-v1") != std::string::npos);

  // 3. By hand: 1 node: ran 2 (C, D), out of memory 1, does not divide 1 -> 3 segments; 2 nodes: ran
  // 2 (A, B), out of memory 2, unsupported 1, deadline 1 -> 4 segments.
  const std::string rejections = svg_of(html, "plan-rejections");
  CHECK(count(rejections, "class=\"p-seg\"") == 7);
  CHECK(rejections.find("<title>1 node: 1 layout does not divide</title>") != std::string::npos);
  CHECK(rejections.find("<title>2 nodes: 2 layouts out of memory</title>") != std::string::npos);
  CHECK(rejections.find("<title>2 nodes: 1 layout unsupported combination</title>") != std::string::npos);
  for (const char* legend : {"ran (4)", "out of memory (3)", "does not divide (1)", "unsupported combination (1)",
                             "past the deadline (1)"})
    CHECK(html.find(legend) != std::string::npos);
  CHECK(html.find("over the latency bound") == std::string::npos);   // no such rejection, no such group
  CHECK(html.find("overflowing: activations 1, optimizer 2. ") != std::string::npos);

  // 4. The best layout's step, said to be one step of A.
  const size_t timeline = html.find("<div id=\"plan-timeline\">");
  REQUIRE(timeline != std::string::npos);
  CHECK(html.find("The best layout, n2-tp4-pp2-dp1-mb1-sp-rsel-v1, simulated again", timeline) != std::string::npos);
  CHECK(html.find("<svg id=\"timeline\"", timeline) != std::string::npos);

  CHECK(html.find("10 on this page: 4 ran, 6 rejected") != std::string::npos);
  CHECK(html.find("n2-tp4-pp1-dp2-mb1-sp-rsel-v1: rank 2 of 4") != std::string::npos);
}

TEST_CASE("a page without a best run or without any layout that ran says so") {
  PlanPage page = hand_made_page();
  page.best_run_note = "no model to simulate it with";
  const std::string html = plan_html(page);
  CHECK(html.find("No timeline: no model to simulate it with.") != std::string::npos);
  CHECK(html.find("<svg id=\"timeline\"") == std::string::npos);

  std::vector<LayoutResult> none;
  for (const LayoutResult& r : page.ranked)
    if (r.verdict != Verdict::ok) none.push_back(r);
  page.ranked = none;
  const std::string empty = plan_html(page);
  CHECK(empty.find("<svg id=\"plan-metric\"") == std::string::npos);
  CHECK(empty.find("No layout ran") != std::string::npos);
  CHECK(count(svg_of(empty, "plan-rejections"), "class=\"p-seg\"") == 5);   // no "ran" segments: 2 + 3
}

TEST_CASE("headless Chromium draws every chart, every layout, without a script error") {
  const std::string browser = chromium();
  REQUIRE_MESSAGE(!browser.empty(), "chromium is not installed (scripts/test.sh installs Debian's chromium)");
  const auto dir = std::filesystem::temp_directory_path() / ("tpsim_test_plan_html_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);

  // The hand-made page, with the best layout's step.
  PlanPage page = hand_made_page();
  page.best_run = two_gpu_step();
  const PageRendered r = render(browser, dir, page);
  const std::string& html = r.html;
  CHECK(html == plan_html(page));   // what write_plan_html wrote
  REQUIRE_MESSAGE(attribute_of(r.dom, "data-metric-drawn") >= 0, "no counts in: " << r.dom.substr(0, 300));
  CHECK(attribute_of(r.dom, "data-metric-drawn") == 4);
  CHECK(attribute_of(r.dom, "data-pareto-drawn") == 4);
  CHECK(attribute_of(r.dom, "data-rejection-drawn") == 7);
  const int spans = count(html, "<rect class=\"span");
  CHECK(spans > 0);
  CHECK(attribute_of(r.dom, "data-timeline-drawn") == spans);
  CHECK(attribute_of(r.dom, "data-errors") == 0);
  CHECK(r.log.find("Uncaught") == std::string::npos);
  CHECK(r.log.find(":CONSOLE") == std::string::npos);   // nothing written to the console at all

  // The toy sweep, 92 layouts: every one that ran is drawn in both charts.
  SweepSpec spec = toy_spec();
  spec.training.tokens = 1e9;
  SweepOptions options;
  options.jobs = 2;
  const SweepOutcome outcome = run_sweep(spec, options, fake_evaluate);
  int ok = 0;
  for (const LayoutResult& x : outcome.ranked) ok += x.verdict == Verdict::ok;
  REQUIRE(ok > 40);   // the planted OOM rejects tp x pp < 4 only
  PlanPage sweep;
  sweep.context = sweep_context(spec);
  sweep.ranked = outcome.ranked;
  sweep.megatron_tp = megatron_tp(spec.topology);
  const PageRendered s = render(browser, dir, sweep);
  CHECK(attribute_of(s.dom, "data-metric-drawn") == ok);
  CHECK(attribute_of(s.dom, "data-pareto-drawn") == ok);
  CHECK(attribute_of(s.dom, "data-errors") == 0);
  CHECK(s.log.find("Uncaught") == std::string::npos);
  std::filesystem::remove_all(dir);
}
