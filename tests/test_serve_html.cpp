// The serving HTML report on schedules small enough to work out by hand: the real serve() with a
// timer whose iterations take a fixed time, then summarize() and serve_html(), and the page read
// back as text (rows, polyline points, marks, escaping, downsampling).
#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "serve_fixtures.hpp"
#include "relative.hpp"
#include "serve/serve_html.hpp"
#include "tpsim/serving.hpp"

using namespace tpsim;

namespace {

struct Page {
  ServeResult result;
  std::string html;
};

Page page_of(const ServingSpec& spec, const std::vector<Request>& requests, int64_t kv_tokens,
             const std::string& name = "tiny") {
  FixedTimer timer;
  Scenario sc;
  sc.name = name;
  Page p;
  p.result = serve(spec, requests, capacity_of(kv_tokens), timer);
  const ServeSummary s = summarize(p.result, spec.slo, 1);
  p.html = serve_html(sc, spec, p.result, s, timer.describe());
  return p;
}

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
  return n;
}

// The text between `after` (its first occurrence at or past `from`) and the next `until`.
std::string between(const std::string& text, const std::string& after, const std::string& until, size_t from = 0) {
  const size_t a = text.find(after, from);
  if (a == std::string::npos) return "";
  const size_t b = text.find(until, a + after.size());
  return text.substr(a + after.size(), b == std::string::npos ? std::string::npos : b - a - after.size());
}

// The (x, y) px points of the polyline that starts with `head`.
std::vector<std::pair<double, double>> points_of(const std::string& html, const std::string& head) {
  const size_t at = html.find(head);
  REQUIRE(at != std::string::npos);
  std::vector<std::pair<double, double>> out;
  const std::string list = between(html, "points=\"", "\"", at);
  for (size_t i = 0; i < list.size();) {
    size_t used = 0;
    const double x = std::stod(list.substr(i), &used);
    i += used + 1;   // past the comma
    const double y = std::stod(list.substr(i), &used);
    i += used + 1;   // past the space
    out.push_back({x, y});
  }
  return out;
}

// The highest KV occupancy the chart draws for a replica, in %, read back through the chart's
// data-y0 / data-y100 (the px rows of 0% and 100%).
double kv_peak_drawn(const std::string& html, int replica) {
  const double y0 = std::stod(between(html, "data-y0=\"", "\""));
  const double y100 = std::stod(between(html, "data-y100=\"", "\""));
  double top = y0;
  for (const auto& [x, y] : points_of(html, "<polyline class=\"line kv\" data-replica=\"" + std::to_string(replica) + "\""))
    top = std::min(top, y);
  return 100 * (y0 - top) / (y0 - y100);
}

void check_well_formed(const std::string& html) {
  CHECK(html.rfind("<!DOCTYPE html>", 0) == 0);
  CHECK(count(html, "<svg") == count(html, "</svg>"));
  CHECK(count(html, "<svg") == 5);   // timeline, KV, running, two CDFs
  CHECK(html.find("<script") == std::string::npos);
  CHECK(html.find("src=") == std::string::npos);
  CHECK(html.find("href=") == std::string::npos);
  REQUIRE(html.size() > 20);
  CHECK(html.substr(html.size() - 15) == "</body></html>\n");
}

// A (t 0, prompt 4, output 3), B and C (t 0.5, prompts 2 and 3, outputs 1 and 2).
const std::vector<Request> kThree = {{0, 0.0, 4, 3}, {1, 0.5, 2, 1}, {2, 0.5, 3, 2}};

}  // namespace

TEST_CASE("serve html: a row per request, the KV peak where the schedule puts it, the TTFT SLO line") {
  // Orca, max 2 sequences, KV reserved for prompt + output (A 7, B 3, C 5 tokens) out of 20:
  //   [0,1) A: 7; [1,2) A + B: 10; [2,3) A + C: 12 (B left at 2); [3,4) C: 5. Peak 12/20 = 60%.
  const Page p = page_of(spec_of("orca", 2), kThree, 20);
  check_well_formed(p.html);
  CHECK(count(p.html, "<g class=\"req\"") == 3);
  for (int id = 0; id < 3; ++id) CHECK(count(p.html, "data-id=\"" + std::to_string(id) + "\"") == 1);
  CHECK(p.html.find("timeline-caption") == std::string::npos);
  CHECK(kv_peak_drawn(p.html, 0) == rel(60, 1e-3));
  // The step line holds 60% from 2 s to 3 s: two points at the peak.
  const auto kv = points_of(p.html, "<polyline class=\"line kv\"");
  const double top = std::min_element(kv.begin(), kv.end(), [](auto& a, auto& b) { return a.second < b.second; })->second;
  CHECK(std::count_if(kv.begin(), kv.end(), [&](auto& q) { return q.second == top; }) == 2);
  // Nothing preempted.
  CHECK(count(p.html, "class=\"preempt-tick\"") == 0);
  CHECK(count(p.html, "class=\"preempt-mark\"") == 0);
  // TTFTs 1, 1.5, 2.5 s: the axis ends at 2.5 s (0.5 s ticks) and the 2 s SLO sits at 50 + 460 x 2 / 2.5 px.
  const std::string ttft_chart = between(p.html, "<svg id=\"ttft-cdf\"", "</svg>");
  CHECK(ttft_chart.find("<line class=\"slo\" x1=\"418.00\"") != std::string::npos);
  CHECK(between(p.html, "<svg id=\"latency-cdf\"", "</svg>").find("class=\"slo\"") == std::string::npos);
  // Three values drawn exactly: a staircase up a third at 1, 1.5 and 2.5 s, 6 corners.
  const auto cdf = points_of(ttft_chart, "<polyline class=\"cdf\"");
  REQUIRE(cdf.size() == 6);
  CHECK(cdf[0].first == rel(50 + 460 * 1 / 2.5, 1e-6));
  CHECK(cdf[0].first == cdf[1].first);
  CHECK(cdf[1].second == cdf[2].second);
  CHECK(cdf[2].first == rel(50 + 460 * 1.5 / 2.5, 1e-6));
  CHECK(cdf[5].first == rel(50 + 460.0, 1e-6));   // 2.5 s, the axis end
  CHECK(cdf[5].second < cdf[0].second);           // up (smaller px y) to 100%
  // The summary: the timing line verbatim and the SLO verdict (TTFT p90 2.3 s > 2 s).
  CHECK(p.html.find("fixed 1 s per iteration") != std::string::npos);
  CHECK(p.html.find("<span class=\"missed\">MISSED</span>") != std::string::npos);
  // Deterministic.
  CHECK(page_of(spec_of("orca", 2), kThree, 20).html == p.html);
}

TEST_CASE("serve html: a preempted request gets its red tick, its iteration a red mark") {
  // vLLM, 8 KV tokens in 2-token blocks (tests/test_serve_schedulers.cpp works it through): B is
  // preempted once at [2,3) to give A a third block; the blocks held run 8, 8, 6, 6, 6 tokens.
  ServingSpec spec = spec_of("vllm", 4);
  spec.block_size = 2;
  const Page p = page_of(spec, {{0, 0.0, 3, 4}, {1, 0.0, 3, 3}}, 8);
  check_well_formed(p.html);
  REQUIRE(p.result.requests[1].preemptions == 1);
  CHECK(between(p.html, "<g class=\"req\" data-id=\"1\">", "</g>").find("class=\"preempt-tick\"") != std::string::npos);
  CHECK(between(p.html, "<g class=\"req\" data-id=\"0\">", "</g>").find("preempt-tick") == std::string::npos);
  CHECK(count(p.html, "class=\"preempt-tick\"") == 1);
  CHECK(count(p.html, "class=\"preempt-mark\"") == 1);
  CHECK(kv_peak_drawn(p.html, 0) == rel(100, 1e-3));
}

TEST_CASE("serve html: user text is escaped") {
  ServingSpec spec = spec_of("orca", 2);
  spec.arrivals = "trace";
  spec.trace = "traces/<i>\"x\".csv";
  const Page p = page_of(spec, kThree, 20, "<b>& co");
  CHECK(p.html.find("<b>") == std::string::npos);
  CHECK(p.html.find("<i>") == std::string::npos);
  CHECK(p.html.find("<title>tpsim serve: &lt;b&gt;&amp; co</title>") != std::string::npos);
  CHECK(p.html.find("<h1>tpsim serve: &lt;b&gt;&amp; co</h1>") != std::string::npos);
  CHECK(p.html.find("traces/&lt;i&gt;&quot;x&quot;.csv") != std::string::npos);
}

TEST_CASE("serve html: long runs keep at most 200 timeline rows and 2000 points a line, peaks kept") {
  // Orca one sequence at a time: 2000 requests back to back, every iteration 1 s. Prompts cycle
  // through 4, 8 and 12 tokens (10 outputs: 14, 18 or 22 tokens reserved of 100), so the KV line
  // changes level at every request, about 4000 corners, too many to draw exactly; request 1000 alone
  // reserves 90 tokens (prompt 89, one output token) for a single 1 s iteration of the ~20000, and
  // the bucketed line must keep it.
  std::vector<Request> many;
  for (int64_t i = 0; i < 2000; ++i) many.push_back({i, 0.0, i == 1000 ? 89 : 4 + 4 * (i % 3), i == 1000 ? 1 : 10});
  const Page p = page_of(spec_of("orca", 1), many, 100);
  check_well_formed(p.html);
  CHECK(count(p.html, "<g class=\"req\"") == 200);
  CHECK(p.html.find("data-id=\"199\"") != std::string::npos);
  CHECK(p.html.find("data-id=\"200\"") == std::string::npos);
  CHECK(p.html.find("<p class=\"note\" id=\"timeline-caption\">Showing the first 200 requests (by id) of 2000.</p>") !=
        std::string::npos);
  int changes = 0;
  for (size_t k = 1; k < p.result.iterations.size(); ++k)
    changes += p.result.iterations[k].kv_tokens_used != p.result.iterations[k - 1].kv_tokens_used;
  CHECK(2 * changes > 3000);   // the exact step line's corners
  CHECK(points_of(p.html, "<polyline class=\"line kv\"").size() <= 2000);
  CHECK(points_of(p.html, "<polyline class=\"line running\"").size() <= 2000);
  CHECK(kv_peak_drawn(p.html, 0) == rel(90, 1e-3));
  CHECK(points_of(p.html, "<polyline class=\"cdf\"").size() <= 501);
  CHECK(p.html.size() < 400000);
}
