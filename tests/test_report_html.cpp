// The HTML report: self-contained, and it draws. The drawing is checked in headless Chromium (the
// Debian `chromium` package): the page's own script counts the span rectangles the browser laid out
// with a non-zero size, and --dump-dom shows that count.
#include <doctest/doctest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>

#include "tpsim/html.hpp"

using namespace tpsim;

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

int count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) ++n;
  return n;
}

std::string run_command(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  pclose(p);
  return out;
}

std::string chromium() {
  for (const char* c : {"chromium", "chromium-browser", "google-chrome"})
    if (!run_command(std::string("command -v ") + c + " 2>/dev/null").empty()) return c;
  return "";
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
  // Per GPU: two compute rectangles (the gemms are 2 ms apart), one stall, one communication.
  CHECK(count(html, "<rect class=\"span compute\"") == 4);
  CHECK(count(html, "<rect class=\"span stall\"") == 2);
  CHECK(count(html, "<rect class=\"span comm\"") == 2);
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
  CHECK(count(html, "<rect class=\"span compute\"") == 1);
  CHECK(html.find("10000 ops") != std::string::npos);
}

TEST_CASE("headless Chromium draws the timeline") {
  const std::string browser = chromium();
  REQUIRE_MESSAGE(!browser.empty(), "chromium is not installed (scripts/test.sh installs Debian's chromium)");
  const RunResult r = run_with_spans();
  const auto dir = std::filesystem::temp_directory_path() / "tpsim_test_html";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir / "profile");
  const auto page = dir / "report.html";
  write_html(page.string(), r, attribute(r.timeline));
  const std::string cmd = browser +
                          " --headless --no-sandbox --disable-gpu --disable-quic --no-first-run"
                          " --disable-background-networking --disable-component-update --disable-sync"
                          " --user-data-dir=" + (dir / "profile").string() + " --dump-dom file://" + page.string() +
                          " 2>/dev/null";
  const std::string dom = run_command(cmd);
  std::smatch m;
  REQUIRE_MESSAGE(std::regex_search(dom, m, std::regex("data-drawn=\"([0-9]+)\"")), "no data-drawn in: " << dom.substr(0, 300));
  CHECK(std::stoi(m[1]) == 8);   // every span rectangle laid out with a size
  std::filesystem::remove_all(dir);
}
