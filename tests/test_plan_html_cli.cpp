// `tpsim plan --html` and `tpsim merge --html` as a user runs them: the page holds the four charts,
// a shard's page says it is one shard, the merged page draws every layout of the whole sweep, and
// the flag is refused where there is no page (serving) or no place to write it, before any work.
#include <doctest/doctest.h>

#include "cli_runner.hpp"
#include "headless_browser.hpp"
#include "plan_toy.hpp"

#include <regex>

using namespace tpsim_test;

namespace {

// "48 layouts: 45 ran, 3 rejected" in the terminal report: the layouts that ran.
int ran_in(const std::string& out) {
  std::smatch m;
  REQUIRE_MESSAGE(std::regex_search(out, m, std::regex("([0-9]+) layouts: ([0-9]+) ran")), out);
  return std::stoi(m[2]);
}

// The embedded Llama-2-7B on one DGX H100, cut to 48 layouts that take seconds.
const std::string kSweep = " plan -j 2 --micro-batches 1 --virtual-stages 1 --global-batch 16 --seq 1024";

}  // namespace

TEST_CASE("tpsim plan --html writes the four charts; a shard's page says so; merge --html draws the whole sweep") {
  const std::string tpsim = TPSIM_BINARY;
  const std::string page = scratch("plan.html").string();
  const Output whole = run_shell(tpsim + kSweep + " --html " + page);
  REQUIRE_MESSAGE(whole.status == 0, whole.out);
  const std::string html = read_text(page);
  for (const char* id : {"<svg id=\"plan-metric\"", "<svg id=\"plan-pareto\"", "<svg id=\"plan-rejections\"",
                         "<div id=\"plan-timeline\"", "<svg id=\"timeline\""})
    CHECK_MESSAGE(html.find(id) != std::string::npos, id);
  const int ran = ran_in(whole.out);
  const std::string metric = html.substr(html.find("<svg id=\"plan-metric\""));
  CHECK(count(metric.substr(0, metric.find("</svg>")), "data-layout=") == ran);
  CHECK(html.find("llama2-7b on dgx-h100") != std::string::npos);
  CHECK(html.find("The timeline is one optimizer step: ") != std::string::npos);

  const std::string part0 = scratch("part0.csv").string(), part1 = scratch("part1.csv").string();
  const std::string shard_page = scratch("shard.html").string(), merged_page = scratch("merged.html").string();
  const Output s0 = run_shell(tpsim + kSweep + " --shard 0/2 --csv " + part0 + " --html " + shard_page);
  REQUIRE_MESSAGE(s0.status == 0, s0.out);
  CHECK(read_text(shard_page).find("Shard 0/2: this page shows only this shard's 24 of the sweep's 48 layouts") !=
        std::string::npos);
  const Output s1 = run_shell(tpsim + kSweep + " --shard 1/2 --csv " + part1);
  REQUIRE_MESSAGE(s1.status == 0, s1.out);
  const Output merged = run_shell(tpsim + " merge " + part0 + " " + part1 + " --html " + merged_page);
  REQUIRE_MESSAGE(merged.status == 0, merged.out);
  const std::string m = read_text(merged_page);
  const std::string merged_metric = m.substr(m.find("<svg id=\"plan-metric\""));
  CHECK(count(merged_metric.substr(0, merged_metric.find("</svg>")), "data-layout=") == ran);   // as unsharded
  CHECK(m.find("48 on this page") != std::string::npos);
  CHECK(m.find("Shard") == std::string::npos);
  CHECK(m.find("No timeline: `tpsim merge` reads result files") != std::string::npos);
}

TEST_CASE("tpsim plan --html is refused for the serving search and for a path it cannot write, before any work") {
  const std::string tpsim = TPSIM_BINARY;
  const Output serving = run_shell(tpsim + " plan --workload serving --html " + scratch("serving.html").string());
  CHECK(serving.status == 2);
  CHECK(serving.out.find("--html: the serving capacity search has no page; `tpsim serve --html` is the page for one "
                         "serving run") != std::string::npos);
  const Output nowhere = run_shell(tpsim + kSweep + " --html /nonexistent-folder/plan.html");
  CHECK(nowhere.status == 2);
  CHECK(nowhere.out.find("--html: folder '/nonexistent-folder' does not exist") != std::string::npos);
  CHECK(nowhere.out.find("layouts") == std::string::npos);   // refused before the sweep started
  const Output merge_nowhere = run_shell(tpsim + " merge a.csv --html /nonexistent-folder/plan.html");
  CHECK(merge_nowhere.status == 2);
  CHECK(merge_nowhere.out.find("--html: folder '/nonexistent-folder' does not exist") != std::string::npos);
}
