// Link utilisation over time in the reports: one hand-worked transfer (two GPUs, S bytes over a
// B/s port, S/B seconds from the end of a GEMM) through the engine, then its Perfetto counter
// track and its chart under the HTML timeline, drawn by headless Chromium.
#include <doctest/doctest.h>

#include "headless_browser.hpp"
#include "relative.hpp"
#include "toy_gpu.hpp"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <regex>

#include "tpsim/cost.hpp"
#include "tpsim/engine.hpp"
#include "tpsim/html.hpp"
#include "tpsim/trace.hpp"

using namespace tpsim;
using namespace tpsim_test;

namespace {

constexpr double kB = 100e9;                     // B/s per GPU port and direction
constexpr int64_t kS = int64_t(1) << 26;         // bytes: 671 us at kB

Op op(int id, OpKind kind, std::vector<int> deps) {
  Op o;
  o.id = id;
  o.kind = kind;
  o.deps = std::move(deps);
  if (kind == OpKind::gemm) {
    o.name = "fc1";
    o.gemm = {4096, 4096, 4096};
    o.flops = 2.0 * 4096 * 4096 * 4096;
    o.hbm_bytes = 3.0 * 4096 * 4096 * 2;
  } else {
    o.name = kind == OpKind::send ? "send_act" : "recv_act";
    o.stream = Stream::pp_comm;
    o.p2p = {kind == OpKind::send ? 1 : 0, kS, 7};
  }
  return o;
}

struct OneTransfer {
  Topology topo;
  double g = 0, d = 0;   // the transfer: [g, g + d]
  RunResult run;
  OneTransfer() {
    topo.name = "ideal";
    topo.gpus_per_node = 2;
    topo.nodes = 1;
    topo.intra.bandwidth = kB;
    topo.intra.latency = 0;
    topo.nic.count = 2;
    topo.nic.bandwidth = kB / 8;
    topo.gpu = toy_gpu();
    g = gemm_cost(topo.gpu, GemmInfo{4096, 4096, 4096}, DType::bf16).seconds;
    d = double(kS) / kB;
    Program a, b;
    a.rank = 0;
    a.ops = {op(0, OpKind::gemm, {}), op(1, OpKind::send, {0})};
    b.rank = 1;
    b.ops = {op(0, OpKind::recv, {})};
    ProgramSet set;
    set.ranks = {a, b};
    run.scenario.name = "one transfer";
    run.scope = "step";
    run.timeline = simulate(topo, set, EngineOptions{});
  }
};


}  // namespace

TEST_CASE("the trace's link counter rises at the transfer's start bin and falls to 0 at its end") {
  const OneTransfer f;
  const Timeline& t = f.run.timeline;
  REQUIRE(t.makespan == rel(f.g + f.d));
  const double w = t.link_bin;
  REQUIRE(w > 0);
  const nlohmann::json trace = chrome_trace(t, {.gpus_per_node = 2});
  const std::string name = "link node0 GPU 0 NVLink (up) % (" + format_seconds(w) + " bins)";
  std::vector<std::pair<double, double>> c;   // (ts us, utilisation %)
  for (const auto& e : trace["traceEvents"]) {
    if (e["ph"] != "C") continue;
    CHECK(e["name"].get<std::string>().find("step mean") == std::string::npos);   // every link has its bins
    if (e["name"] == name) c.push_back({e["ts"].get<double>(), e["args"]["utilisation"].get<double>()});
  }
  REQUIRE(c.size() >= 3);
  // First value at the start of the bin the transfer starts in: 100 x (bin end - g) / w percent.
  const double edge = std::floor(f.g / w) * w;
  CHECK(c.front().first == rel(1e6 * edge));
  CHECK(c.front().first <= 1e6 * f.g);
  CHECK(c.front().second == rel(100 * (edge + w - f.g) / w));
  // Then 100% through the transfer, and a final 0 at its end (g + S/B).
  CHECK(c[1].second == rel(100.0));
  CHECK(c.back().first == rel(1e6 * (f.g + f.d)));
  CHECK(c.back().second == 0);
  // Times increase, and the counter integrates to the transfer's bytes.
  double bytes = 0;
  for (size_t k = 0; k + 1 < c.size(); ++k) {
    CHECK(c[k + 1].first > c[k].first);
    bytes += c[k].second / 100 * kB * (c[k + 1].first - c[k].first) * 1e-6;
  }
  CHECK(bytes == rel(double(kS)));
}

TEST_CASE("the HTML draws link utilisation under the timeline, a path per link group, and says what a bin is") {
  const OneTransfer f;
  const Attribution a = attribute(f.run.timeline);
  // GPU 0's port up and GPU 1's port down carried the same bytes over the same time: one group.
  REQUIRE(a.link_groups.size() == 1);
  const std::string html = html_report(f.run, a);
  CHECK(count(html, "<svg id=\"link-timeline\"") == 1);
  CHECK(html.find("<svg id=\"link-timeline\"") > html.find("<svg id=\"timeline\""));   // under the timeline
  CHECK(count(html, "<path class=\"linkutil\"") == 1);
  // The strip's 100% line is at y = 30 + 16 = 46: the path climbs to it (the transfer at full rate).
  CHECK(html.find("V46.00H") != std::string::npos);
  CHECK(html.find("peak 100%") != std::string::npos);
  CHECK(html.find("One bin is " + format_seconds(f.run.timeline.link_bin) + " of the step") != std::string::npos);
  CHECK(html.find("mean rate") != std::string::npos);
  CHECK(html_report(f.run, a) == html);   // deterministic

  // Totals only (no intervals): one line instead of a chart.
  RunResult totals = f.run;
  for (LinkUse& l : totals.timeline.links) l.intervals.clear();
  totals.timeline.link_bin = 0;
  const std::string plain = html_report(totals, attribute(totals.timeline));
  CHECK(plain.find("<svg id=\"link-timeline\"") == std::string::npos);
  CHECK(plain.find("Link utilisation over the step</h3>\n<p class=\"note\">Not recorded for this run") != std::string::npos);
}

TEST_CASE("headless Chromium draws the link utilisation path, and no script fails") {
  const std::string browser = chromium();
  REQUIRE_MESSAGE(!browser.empty(), "chromium is not installed (scripts/test.sh installs Debian's chromium)");
  const auto dir = std::filesystem::temp_directory_path() / "tpsim_test_link_timeline";
  std::filesystem::remove_all(dir);
  const OneTransfer f;
  const auto page = dir / "page.html";
  std::filesystem::create_directories(dir);
  write_html(page.string(), f.run, attribute(f.run.timeline));
  const Rendered r = render_page(browser, dir, page);
  const std::string& dom = r.dom;
  std::smatch m;
  REQUIRE_MESSAGE(std::regex_search(dom, m, std::regex("data-drawn-links=\"([0-9]+)\"")),
                  "no data-drawn-links in: " << dom.substr(0, 300));
  CHECK(std::stoi(m[1]) == 1);
  CHECK(dom.find("data-errors=\"") == std::string::npos);   // the attribute, not the script's text
  CHECK(r.log.find("Uncaught") == std::string::npos);
  std::filesystem::remove_all(dir);
}
