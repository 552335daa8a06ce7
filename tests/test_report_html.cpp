// The HTML report: self-contained, and it draws. The drawing is checked in headless Chromium (the
// Debian `chromium` package): the page's own script counts the span rectangles the browser laid out
// with a non-zero size, and --dump-dom shows that count.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <regex>

#include "headless_browser.hpp"
#include "tpsim/html.hpp"

using namespace tpsim;
using namespace tpsim_test;

namespace {

RunResult run_with_spans() {
  RunResult r;
  r.scenario.name = "two <GPUs> & a stall";
  r.scope = "layer";
  Timeline& t = r.timeline;
  t.makespan = 4e-3;
  auto add = [&](int rank, Stream stream, const std::string& name, const std::string& kind, double a, double b,
                 const std::string& waited = "") {
    Span s;
    s.rank = rank;
    s.stream = stream;
    s.name = name;
    s.kind = kind;
    s.start = a * 1e-3;
    s.end = b * 1e-3;
    s.waited_for = waited;
    t.spans.push_back(s);
  };
  for (int g = 0; g < 2; ++g) {
    add(g, Stream::compute, "layer0.mlp.fc1.fwd", "gemm", 0, 1);
    add(g, Stream::tp_comm, "layer0.mlp.fc2.fwd.all_reduce", "collective", 1, 3);
    add(g, Stream::compute, "layer0.mlp.fc2.fwd", "stall", 1, 3, "layer0.mlp.fc2.fwd.all_reduce");
    add(g, Stream::compute, "layer0.mlp.fc2.fwd", "gemm", 3, 4);
  }
  t.links = {LinkUse{"node0.nic3.up", 97e6, 2e-3, 50e9, {}}};
  return r;
}


}  // namespace

TEST_CASE("the page is self-contained and holds every section") {
  const RunResult r = run_with_spans();
  const Attribution a = attribute(r.timeline);
  HtmlOptions options;
  options.memory = {MemoryBar{0, {{"weights", 10e9}, {"activations", 30e9}}, 80e9},
                    MemoryBar{1, {{"weights", 10e9}, {"activations", 20e9}}, 80e9}};
  const std::string html = html_report(r, a, options);
  CHECK(html.find("http://") == html.rfind("http://www.w3.org/2000/svg"));   // only the SVG namespace
  CHECK(html.find("https://") == std::string::npos);
  CHECK(html.find("<link") == std::string::npos);
  CHECK(html.find("two &lt;GPUs&gt; &amp; a stall") != std::string::npos);
  // Per GPU, 960 columns of 4 ms / 960 each: the two 1 ms forward gemms (columns 0-239 and
  // 720-959) on the main lane, the 2 ms stall (columns 240-719) in the wait lane under it, the
  // all-reduce in the comm lane.
  CHECK(count(html, "<rect class=\"span forward\"") == 4);
  CHECK(count(html, "<rect class=\"span stall\"") == 2);
  CHECK(count(html, "<rect class=\"span comm\"") == 2);
  CHECK(count(html, "<rect class=\"span forward\" x=\"120\" y=\"0\" width=\"240\" height=\"12\">") == 2);
  CHECK(count(html, "<rect class=\"span stall\" x=\"360\" y=\"13\" width=\"480\" height=\"4\">") == 2);
  CHECK(count(html, "<rect class=\"span comm\" x=\"360\" y=\"18\" width=\"480\" height=\"4\">") == 2);
  // Ticks every 0.5 ms (4 ms / 10 ticks = 0.4 ms, rounded up to 1-2-5), one unit on the axis.
  CHECK(html.find(">0.5 ms</text>") != std::string::npos);
  CHECK(html.find(">4.0 ms</text>") != std::string::npos);
  CHECK(html.find(">4.5 ms</text>") == std::string::npos);
  CHECK(html.find("Memory per GPU") != std::string::npos);
  CHECK(html.find("40.0 GiB") == std::string::npos);   // 40e9 B is 37.3 GiB
  CHECK(html.find("37.3 GiB") != std::string::npos);
  CHECK(html.find("waiting for layer0.mlp.fc2.fwd.all_reduce") != std::string::npos);
  CHECK(html.find("node0 NIC rail 3 (up): 97% busy during 50% of the step") != std::string::npos);
  CHECK(html_report(r, a, options) == html);   // deterministic
}

TEST_CASE("thousands of tiny ops merge into few rectangles") {
  RunResult r;
  r.timeline.makespan = 1.0;
  for (int i = 0; i < 10000; ++i) {
    Span s;
    s.kind = "kernel";
    s.name = "k";
    s.start = i * 1e-4;
    s.end = s.start + 0.9e-4;   // 10000 ops 0.01 px apart on a 1010 px wide plot
    r.timeline.spans.push_back(s);
  }
  const std::string html = html_report(r, attribute(r.timeline));
  // Every column is 90% busy (rounded up to the full colour): one rectangle across the plot.
  CHECK(count(html, "<rect class=\"span forward\"") == 1);
  CHECK(html.find("<rect class=\"span forward\" x=\"120\" y=\"0\" width=\"960\" height=\"12\">") != std::string::npos);
  CHECK(html.find("10000 spans starting here") != std::string::npos);
}

Span compute_span(int rank, double start, double end, Pass pass = Pass::forward, int stage = 0) {
  Span s;
  s.rank = rank;
  s.kind = "gemm";
  s.name = "layer0.op";
  s.start = start;
  s.end = end;
  s.pass = pass;
  s.stage = stage;
  return s;
}

std::string between(const std::string& text, const std::string& from, const std::string& to) {
  const size_t a = text.find(from);
  if (a == std::string::npos) return "";
  const size_t b = text.find(to, a);
  return text.substr(a, b == std::string::npos ? std::string::npos : b - a);
}

TEST_CASE("compute is never drawn under a wait: waits have their own lane") {
  // 1000 cycles of 0.8 ms forward and 0.2 ms stall in a 1 s step: each 1/960 s column is 80%
  // compute (full colour: rounded up to quarters) and 20% stall (a quarter). Before, the stalls,
  // 0.4 px apart, merged into one rectangle over the whole row and hid the compute.
  RunResult r;
  r.timeline.makespan = 1.0;
  for (int i = 0; i < 1000; ++i) {
    r.timeline.spans.push_back(compute_span(0, i * 1e-3, i * 1e-3 + 0.8e-3));
    Span w;
    w.kind = "stall";
    w.name = "stall: layer0.ar";
    w.waited_for = "layer0.ar";
    w.start = i * 1e-3 + 0.8e-3;
    w.end = (i + 1) * 1e-3;
    r.timeline.spans.push_back(w);
  }
  const std::string html = html_report(r, attribute(r.timeline));
  CHECK(html.find("<rect class=\"span forward\" x=\"120\" y=\"0\" width=\"960\" height=\"12\">") != std::string::npos);
  CHECK(count(html, "<rect class=\"span stall\"") == 1);
  CHECK(html.find("<rect class=\"span stall\" x=\"120\" y=\"13\" width=\"960\" height=\"4\" fill-opacity=\"0.25\">") !=
        std::string::npos);
  CHECK(count(html, "class=\"span stall\" x=\"120\" y=\"0\"") == 0);
}

TEST_CASE("a merged 1F1B unit's spans are drawn by their own pass: no merged stripes") {
  // Under folded TP the engine splits a merged backward-then-forward op into a span per pass run
  // (test_engine_fused_split.cpp): backward 0-3 ms, forward 3-4 ms, 720 and 240 columns.
  RunResult r;
  r.timeline.makespan = 4e-3;
  r.timeline.spans = {compute_span(0, 0, 3e-3, Pass::backward), compute_span(0, 3e-3, 4e-3)};
  r.timeline.spans[0].name = "layer39.bwd .. embedding.bwd (41 pieces)";
  r.timeline.spans[1].name = "embedding.fwd .. layer39.fwd (41 pieces)";
  const std::string html = html_report(r, attribute(r.timeline));
  CHECK(html.find("<rect class=\"span backward\" x=\"120\" y=\"0\" width=\"720\"") != std::string::npos);
  CHECK(html.find("<rect class=\"span forward\" x=\"840\" y=\"0\" width=\"240\"") != std::string::npos);
  CHECK(html.find("merged") == std::string::npos);   // no striped class, pattern or legend entry
  CHECK(html.find("split not timed") == std::string::npos);
}

TEST_CASE("each compute column shows its pass: forward, backward, recomputation, optimizer") {
  // 4 ms: forward 0-1, recomputation 1-2 (a backward-pass op), backward 2-3, optimizer 3-4 ms:
  // 240 columns each.
  RunResult r;
  r.timeline.makespan = 4e-3;
  r.timeline.spans = {compute_span(0, 0, 1e-3), compute_span(0, 1e-3, 2e-3, Pass::backward),
                      compute_span(0, 2e-3, 3e-3, Pass::backward), compute_span(0, 3e-3, 4e-3, Pass::optimizer)};
  r.timeline.spans[1].recompute = true;
  const std::string html = html_report(r, attribute(r.timeline));
  CHECK(html.find("<rect class=\"span forward\" x=\"120\" y=\"0\" width=\"240\"") != std::string::npos);
  CHECK(html.find("<rect class=\"span recompute\" x=\"360\" y=\"0\" width=\"240\"") != std::string::npos);
  CHECK(html.find("<rect class=\"span backward\" x=\"600\" y=\"0\" width=\"240\"") != std::string::npos);
  CHECK(html.find("<rect class=\"span optimizer\" x=\"840\" y=\"0\" width=\"240\"") != std::string::npos);
  // The legend names the passes the run has and no others.
  const std::string legend = between(html, "<p class=\"legend\">", "</p>");
  CHECK(legend.find("recomputation (backward pass)") != std::string::npos);
  CHECK(legend.find("optimizer") != std::string::npos);
  CHECK(legend.find("prefill") == std::string::npos);
  CHECK(legend.find("pipeline bubble") == std::string::npos);
  // Back-to-back units of 240 columns are told apart by hairlines at 360, 600 and 840.
  CHECK(count(html, "<rect class=\"cut\"") == 3);
  CHECK(html.find("<rect class=\"cut\" x=\"600\"") != std::string::npos);
}

TEST_CASE("above max_rows GPUs, a row per pipeline stage and a drill-down per stage") {
  // 40 GPUs in 2 stages of 20: stage 0 computes 0-1 ms, stage 1 1-2 ms, except GPUs 30-39, 1-1.5 ms.
  RunResult r;
  r.scenario.plan.pp = 2;
  r.timeline.makespan = 2e-3;
  for (int g = 0; g < 40; ++g) {
    const int stage = g / 20;
    r.timeline.spans.push_back(compute_span(g, stage * 1e-3, g >= 30 ? 1.5e-3 : (stage + 1) * 1e-3, Pass::forward, stage));
  }
  const std::string html = html_report(r, attribute(r.timeline));
  const std::string main = between(html, "<svg id=\"timeline\"", "</svg>");
  CHECK(main.find(">stage 0</text>") != std::string::npos);
  CHECK(main.find(">stage 1</text>") != std::string::npos);
  CHECK(main.find(">GPU 0</text>") == std::string::npos);
  CHECK(html.find("40 GPUs: one row per pipeline stage") != std::string::npos);
  // Stage 1's mean: columns 480-719 (1-1.5 ms) all 20 GPUs busy, 720-959 (1.5-2 ms) 10 of 20 (50%,
  // half the colour).
  CHECK(main.find("<rect class=\"span forward\" x=\"600\" y=\"0\" width=\"240\" height=\"12\">") != std::string::npos);
  CHECK(main.find("<rect class=\"span forward\" x=\"840\" y=\"0\" width=\"240\" height=\"12\" fill-opacity=\"0.50\">") !=
        std::string::npos);
  CHECK(main.find("50% of the GPUs' time") != std::string::npos);
  // Drill-downs: identical GPUs share a row. Every GPU is accounted for.
  CHECK(count(html, "<details>") == 2);
  CHECK(html.find("<summary>stage 0: GPUs 0-19 (20 GPUs), 1 distinct row</summary>") != std::string::npos);
  CHECK(html.find("<summary>stage 1: GPUs 20-39 (20 GPUs), 2 distinct rows</summary>") != std::string::npos);
  CHECK(html.find(">GPUs 20-29</text>") != std::string::npos);
  CHECK(html.find(">GPUs 30-39</text>") != std::string::npos);
}

TEST_CASE("inference: the prefill and the decode step are separate labelled bands") {
  RunResult r;
  r.scenario.workload.generate = 128;
  r.step = StepMetrics{};
  r.step->training = false;
  r.step->prefill_s = 3e-3;
  r.step->decode_context = 576;
  r.timeline.makespan = 4e-3;
  r.timeline.spans = {compute_span(0, 0, 3e-3), compute_span(0, 3e-3, 4e-3)};
  const std::string html = html_report(r, attribute(r.timeline));
  // 720 columns of prefill, 240 of decode.
  CHECK(html.find("<rect class=\"span prefill\" x=\"120\" y=\"0\" width=\"720\"") != std::string::npos);
  CHECK(html.find("<rect class=\"span decode\" x=\"840\" y=\"0\" width=\"240\"") != std::string::npos);
  CHECK(html.find(">prefill: 3.000 ms</text>") != std::string::npos);
  CHECK(html.find(">one decode step (of 127): 1.000 ms</text>") != std::string::npos);
  CHECK(html.find("one decode step of 127, at the mean context of 576 tokens") != std::string::npos);
  // The decode step again on its own axis (1 ms over the 960 columns): the whole plot.
  CHECK(html.find("The decode step alone, 1.000 ms from the prefill's end") != std::string::npos);
  CHECK(html.find("<rect class=\"span decode\" x=\"120\" y=\"0\" width=\"960\"") != std::string::npos);
  CHECK(count(html, "<rect class=\"span prefill\"") == 1);
}

// Writes `html` to a page in `dir`, runs it in headless Chromium and returns its DOM after the
// page's scripts ran.
std::string dom_of(const std::string& browser, const std::filesystem::path& dir, const std::string& html) {
  const auto page = dir / "page.html";
  std::ofstream(page) << html;
  return render_page(browser, dir, page).dom;
}

TEST_CASE("headless Chromium draws the timeline, its drill-downs, and no script fails") {
  const std::string browser = chromium();
  REQUIRE_MESSAGE(!browser.empty(), "chromium is not installed (scripts/test.sh installs Debian's chromium)");
  const auto dir = std::filesystem::temp_directory_path() / "tpsim_test_html";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir / "profile");
  std::smatch m;

  // The written file (write_html), two GPUs: 8 span rectangles, each laid out with a size.
  const RunResult r = run_with_spans();
  write_html((dir / "report.html").string(), r, attribute(r.timeline));
  std::ifstream in(dir / "report.html");
  const std::string written((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::string dom = dom_of(browser, dir, written);
  REQUIRE_MESSAGE(std::regex_search(dom, m, std::regex("data-drawn=\"([0-9]+)\"")), "no data-drawn in: " << dom.substr(0, 300));
  CHECK(std::stoi(m[1]) == 8);
  CHECK(dom.find("data-errors=\"") == std::string::npos);   // the attribute, not the script's text

  // 40 GPUs in 2 stages: the main figure draws 2 rows (stage 0 one rectangle, stage 1 two: all
  // busy, half busy), the drill-downs 3 more (stage 0's shared row, stage 1's two).
  RunResult many;
  many.scenario.plan.pp = 2;
  many.timeline.makespan = 2e-3;
  for (int g = 0; g < 40; ++g)
    many.timeline.spans.push_back(compute_span(g, g / 20 * 1e-3, g >= 30 ? 1.5e-3 : (g / 20 + 1) * 1e-3, Pass::forward, g / 20));
  dom = dom_of(browser, dir, html_report(many, attribute(many.timeline)));
  REQUIRE(std::regex_search(dom, m, std::regex("data-drawn=\"([0-9]+)\"")));
  CHECK(std::stoi(m[1]) == 3);
  REQUIRE(std::regex_search(dom, m, std::regex("data-drawn-all=\"([0-9]+)\"")));
  CHECK(std::stoi(m[1]) == 6);
  CHECK(dom.find("data-errors=\"") == std::string::npos);   // the attribute, not the script's text

  // The error hook catches a failing script (so the checks above can fail).
  std::string broken = html_report(r, attribute(r.timeline));
  broken.insert(broken.rfind("</body>"), "<script>no_such_function();</script>");
  dom = dom_of(browser, dir, broken);
  CHECK(std::regex_search(dom, m, std::regex("data-errors=\"[^\"]*no_such_function")));
  std::filesystem::remove_all(dir);
}
