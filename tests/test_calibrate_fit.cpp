// The fit recovers constants it was not told (the launch latency on the latency rows, the
// efficiency on the bandwidth rows): a log printed from a topology with known constants
// (intra.efficiency 0.70, launch latency 30 us, against the dgx-h100 preset's 0.818 and 22 us),
// fitted from the preset, gives them back. And the calibrated YAML keeps the original's comments
// (in their column), loads, and times exactly what the fit reported.
#include <doctest/doctest.h>

#include "relative.hpp"

#include <fmt/core.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tpsim/calibrate.hpp"
#include "tpsim/engine.hpp"

using namespace tpsim;

namespace {

const std::vector<int> kNode = {0, 1, 2, 3, 4, 5, 6, 7};

// An all_reduce_perf log of `t`'s ring all-reduce over one node, 8 B to 1 GiB x4, times printed
// as nccl-tests prints them (2 decimals).
std::string log_of(const Topology& t) {
  std::string text = "# Collective test starting: all_reduce_perf\n"
                     "#       size         count      type   redop    root     time   algbw   busbw #wrong     time   algbw   busbw #wrong\n";
  for (double bytes = 8; bytes <= (1 << 30); bytes *= 4) {
    const CollectiveTiming c = time_collective(t, CollectiveOp::all_reduce, Algorithm::ring, kNode, bytes, EngineOptions{Fidelity::flow});
    const std::string cols = fmt::format("{:8.2f} {:7.2f} {:7.2f}      0", c.seconds * 1e6, c.algbw / 1e9, c.busbw / 1e9);
    text += fmt::format("{:12.0f} {:13.0f}     float     sum      -1 {} {}\n", bytes, bytes / 4, cols, cols);
  }
  return text;
}

CalibrationSet set_of(const std::string& text) {
  CalibrationSet s;
  s.log = parse_nccl_tests_log(text, "synthetic.log");
  s.op = CollectiveOp::all_reduce;
  s.algorithm = Algorithm::ring;
  s.group = kNode;
  return s;
}

}  // namespace

TEST_CASE("the fit gives back the constants a log was printed from") {
  const Topology preset = load_topology("dgx-h100");
  Topology truth = preset;
  truth.intra.efficiency = 0.70;
  truth.collectives.launch_latency = 30e-6;
  const Calibration cal = calibrate(preset, {set_of(log_of(truth))});
  REQUIRE(cal.parameters.size() == 2);
  CHECK(cal.parameters[0].before == rel(22e-6, 1e-9));
  CHECK(cal.parameters[1].before == rel(0.818, 1e-9));
  // The printed times carry 2 decimals (0.005 us in ~35 us): the fit lands within the written precision.
  CHECK(std::fabs(cal.after.collectives.launch_latency - 30e-6) < 0.02e-6);
  CHECK(std::fabs(cal.after.intra.efficiency - 0.70) < 2e-4);
  CHECK(cal.max_after < 1e-3);
  CHECK(cal.max_before > 0.10);   // the preset was far off this "cluster"
  CHECK(cal.parameters[1].yaml_value == "0.7000");
  CHECK(cal.parameters[0].yaml_value == "30.00 us");
}

TEST_CASE("rows that are 0 B or slower than a larger size are shown, not fitted") {
  const std::string header =
      "#       size         count      type   redop    root     time   algbw   busbw #wrong     time   algbw   busbw #wrong\n";
  const std::string text = header +
                           "           0             0     float     sum      -1     0.89    0.00    0.00       0     1.27    0.00    0.00       0\n"
                           "         128            32     float     sum      -1    41.94    0.00    0.01       0    34.65    0.00    0.01       0\n"
                           "        1024           256     float     sum      -1    39.50    0.03    0.05       0    35.41    0.03    0.05       0\n"
                           "        4096          1024     float     sum      -1    38.00    0.11    0.19       0    36.44    0.11    0.20       0\n";
  const Calibration cal = calibrate(load_topology("dgx-h100"), {set_of(text)}, CalibrationOptions{{"collectives.launch_latency"}});
  REQUIRE(cal.rows.size() == 4);
  CHECK(cal.rows[0].skipped == "0 B: nothing moves");
  // 41.94 us > 1.05 x 39.50 us: noise. 39.50 us is within 5% of 38.00 us: fitted.
  CHECK(cal.rows[1].skipped == "noise: slower than 1024 B (39.50 us)");   // the first larger row it loses to
  CHECK(cal.rows[2].skipped.empty());
  CHECK(cal.rows[3].skipped.empty());
  // Launch latency alone on two rows: both within 2.5% of the fit. Both are latency rows (39.50 us
  // <= 1.3 x 38.00 us); no row is bandwidth-bound (the time falls from 1 KiB to 4 KiB).
  CHECK(cal.max_after < 0.025);
  CHECK(cal.rows[2].regime == RowRegime::latency);
  CHECK(cal.rows[3].regime == RowRegime::latency);
  CHECK(cal.latency.rows == 2);
  CHECK(cal.bandwidth.rows == 0);
  // Asked for an efficiency as well, there is no row to fit it on: left as it was, and said so.
  const Calibration both = calibrate(load_topology("dgx-h100"), {set_of(text)},
                                     CalibrationOptions{{"collectives.launch_latency", "intra.efficiency"}});
  REQUIRE(both.parameters.size() == 2);
  CHECK(both.parameters[1].unfitted == "no bandwidth-bound row in the logs");
  CHECK(both.parameters[1].after == 0.818);   // the preset's
  CHECK(both.after.intra.efficiency == 0.818);
  CHECK(both.notes.back() == "intra.efficiency not fitted: no bandwidth-bound row in the logs; left at 0.8180");

  CHECK_THROWS_WITH_AS(calibrate(load_topology("dgx-h100"), {set_of(header +
                               "           0             0     float     sum      -1     0.89    0.00    0.00       0     1.27    0.00    0.00       0\n")}),
                       doctest::Contains("no row left to fit"), InputError);
  CHECK_THROWS_WITH_AS(calibrate(load_topology("dgx-h100"), {set_of(text)}, CalibrationOptions{{"nic.latency"}}),
                       doctest::Contains("no log spans nodes"), InputError);
  CHECK_THROWS_WITH_AS(calibrate(load_topology("dgx-h100"), {set_of(text)}, CalibrationOptions{{"intra.bandwidth"}}),
                       doctest::Contains("not a constant calibrate fits"), InputError);
}

TEST_CASE("the calibrated YAML keeps the original's comments, loads, and times what the fit reported") {
  const Topology preset = load_topology("dgx-h100");
  Topology truth = preset;
  truth.intra.efficiency = 0.75;
  truth.collectives.launch_latency = 25e-6;
  const CalibrationSet set = set_of(log_of(truth));
  const Calibration cal = calibrate(preset, {set});

  std::ifstream in(preset.source);
  std::stringstream original;
  original << in.rdbuf();
  const std::string yaml = calibrated_topology_yaml(original.str(), cal, "# fitted on synthetic.log\nsecond header line");
  CHECK(yaml.rfind("# fitted on synthetic.log\n# second header line\n", 0) == 0);
  CHECK(yaml.find("name: dgx-h100-calibrated\n") != std::string::npos);
  CHECK(yaml.find("  efficiency: 0.7500          # calibrated (was 0.818)\n") != std::string::npos);
  CHECK(yaml.find("  launch_latency: 25.00 us     # calibrated (was 22 us)\n") != std::string::npos);
  CHECK(yaml.find("# NVIDIA DGX H100: 8x H100 SXM 80GB") != std::string::npos);   // the original's comments stay
  CHECK(yaml.find("efficiency: 0.97            # 48.5 of 50 GB/s") != std::string::npos);   // nic.efficiency untouched

  char dir[] = "/tmp/tpsim-calibrate-XXXXXX";
  REQUIRE(mkdtemp(dir) != nullptr);
  const std::string path = std::string(dir) + "/calibrated.yaml";
  std::ofstream(path) << yaml;
  const Topology back = load_topology(path);
  std::filesystem::remove_all(dir);
  CHECK(back.name == "dgx-h100-calibrated");
  CHECK(back.intra.efficiency == cal.after.intra.efficiency);
  CHECK(back.collectives.launch_latency == cal.after.collectives.launch_latency);
  CHECK(back.nic.efficiency == preset.nic.efficiency);
  // Bit for bit: the file's topology times every row as the fit's "after" column says.
  const std::vector<double> again = predicted_times_us(back, set);
  for (const CalibrationRow& r : cal.rows) CHECK(again[&r - cal.rows.data()] == r.after_us);
}

TEST_CASE("keys missing from a flow-style or absent section are inserted") {
  Calibration cal;
  cal.parameters = {{"intra.efficiency", 1.0, 0.9, 0.05, 1, "0.9000", 7, ""},
                    {"intra.latency", 0, 1e-6, 0, 50e-6, "1.00 us", 15, ""},
                    {"collectives.launch_latency", 0, 2e-5, 0, 5e-4, "20.00 us", 15, ""},
                    {"nic.efficiency", 0.97, 0.97, 0.05, 1, "0.9700", 0, "no bandwidth-bound row in the logs"}};
  // nic.efficiency was not fitted: nothing is written for it (no nic section appears).
  const std::string original = "name: tiny\nintra: {fabric: nvswitch, bandwidth: 100 GB/s, efficiency: 1}\n";
  const std::string yaml = calibrated_topology_yaml(original, cal, "");
  CHECK(yaml == "name: tiny-calibrated\n"
                "intra: {latency: 1.00 us, fabric: nvswitch, bandwidth: 100 GB/s, efficiency: 0.9000}\n"
                "collectives:\n  launch_latency: 20.00 us   # calibrated (was the default, 0 us)\n");
}
