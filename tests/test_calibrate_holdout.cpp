// `tpsim calibrate`'s fit, checked where it was not fitted: fitted on the one-node H100 ring
// all-reduce log (together-nccl-tests, NCCL 2.26), the constants predict the same machine's ring
// all-gather and reduce-scatter logs; fitted on all-reduce and all-gather together (which tells
// the launch latency from the per-step one), it predicts reduce-scatter. The bounds are the
// errors measured on 2026-12-01 (README "Calibration").
#include <doctest/doctest.h>

#include "relative.hpp"

#include <fmt/core.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "tpsim/calibrate.hpp"
#include "tpsim/engine.hpp"

using namespace tpsim;

namespace {

const std::string kLogs = std::string(TPSIM_TEST_DATA) + "/nccl-tests/";

CalibrationSet ring_set(const std::string& file) {
  CalibrationSet s;
  s.log = read_nccl_tests_log(kLogs + file);
  REQUIRE(s.log.named_op);
  s.op = *s.log.named_op;
  s.algorithm = Algorithm::ring;   // the logs ran with NCCL_ALGO=Ring
  s.group = {0, 1, 2, 3, 4, 5, 6, 7};
  return s;
}

// Signed time errors of `topology` on the rows of `set` at or above `min_bytes` that the fit
// would use (not 0 B, not slower than a larger size by 5%).
std::vector<double> time_errors(const Topology& topology, const CalibrationSet& set, double min_bytes) {
  const std::vector<double> us = predicted_times_us(topology, set);
  std::vector<double> e;
  for (size_t i = 0; i < us.size(); ++i) {
    const NcclTestsRow& r = set.log.rows[i];
    bool noise = r.bytes <= 0;
    for (const NcclTestsRow& larger : set.log.rows)
      if (larger.bytes > r.bytes && r.time_us > larger.time_us * 1.05) noise = true;
    if (!noise && r.bytes >= min_bytes) e.push_back(us[i] / r.time_us - 1);
  }
  return e;
}

}  // namespace

TEST_CASE("fitted on the 1-node H100 ring all-reduce, calibrate predicts all-gather and reduce-scatter") {
  const Topology preset = load_topology("dgx-h100");
  const Calibration cal = calibrate(preset, {ring_set("together-h100-1node-all-reduce-ring.log")});
  REQUIRE(cal.parameters.size() == 2);
  CHECK(cal.parameters[0].key == "collectives.launch_latency");
  CHECK(cal.parameters[1].key == "intra.efficiency");
  const double launch = cal.after.collectives.launch_latency, eff = cal.after.intra.efficiency;
  // Physical: a launch latency under the ~35 us floor every small row shows, an efficiency in (0, 1].
  CHECK(launch >= 0);
  CHECK(launch < 35e-6);
  CHECK(eff > 0);
  CHECK(eff <= 1);
  // The preset's constants were fitted to the same table by hand (22 us, 0.818): the fit lands near them.
  CHECK(launch == rel(22e-6, 0.15));
  CHECK(eff == rel(0.818, 0.03));
  // In sample, the fit is no worse than the preset.
  CHECK(cal.median_after <= cal.median_before + 1e-12);

  std::string table = fmt::format("fitted on all_reduce: launch {:.2f} us, intra.efficiency {:.4f}; in sample median "
                                  "{:.1f}% -> {:.1f}%, max {:.1f}% -> {:.1f}%\n",
                                  launch * 1e6, eff, 100 * cal.median_before, 100 * cal.median_after, 100 * cal.max_before,
                                  100 * cal.max_after);
  for (const char* file : {"together-h100-1node-all-gather-ring.log", "together-h100-1node-reduce-scatter-ring.log"}) {
    const CalibrationSet held_out = ring_set(file);
    for (double min_bytes : {0.0, double(1 << 20)}) {
      const auto [median_before, max_before] = median_and_max_abs(time_errors(preset, held_out, min_bytes));
      const auto [median_after, max_after] = median_and_max_abs(time_errors(cal.after, held_out, min_bytes));
      table += fmt::format("  held out {} (sizes >= {:.0f} B): median {:.1f}% -> {:.1f}%, max {:.1f}% -> {:.1f}%\n", file,
                           min_bytes, 100 * median_before, 100 * median_after, 100 * max_before, 100 * max_after);
      CAPTURE(file);
      CAPTURE(min_bytes);
      // From 1 MiB the bandwidth decides: README's held-out bound for link efficiency (10%).
      // Below, the launch latency fitted on all-reduce's 14 ring steps comes out 1.7 us under the
      // preset's, while all-gather's and reduce-scatter's 7 steps measure the same ~35 us floor:
      // one collective cannot tell a launch latency from a per-step one (the next case can), so
      // the held-out small sizes get worse than the preset's (measured 8.8% / 7.2% median).
      CHECK(median_after <= (min_bytes > 0 ? 0.05 : 0.09));
      CHECK(max_after <= (min_bytes > 0 ? 0.10 : 0.15));
    }
  }
  MESSAGE(table);
}

TEST_CASE("fitted on all-reduce and all-gather with the per-step latency, calibrate predicts reduce-scatter") {
  const Topology preset = load_topology("dgx-h100");
  CalibrationOptions options;
  options.keys = {"collectives.launch_latency", "intra.efficiency", "intra.latency"};
  const Calibration cal = calibrate(preset, {ring_set("together-h100-1node-all-reduce-ring.log"),
                                             ring_set("together-h100-1node-all-gather-ring.log")}, options);
  std::string table = fmt::format("fitted on all_reduce + all_gather: launch {:.2f} us, intra.efficiency {:.4f}, intra.latency {:.2f} us "
                                  "({} evaluations); in sample median {:.1f}% -> {:.1f}%, max {:.1f}% -> {:.1f}%\n",
                                  cal.after.collectives.launch_latency * 1e6, cal.after.intra.efficiency,
                                  cal.after.intra.latency * 1e6, cal.evaluations, 100 * cal.median_before,
                                  100 * cal.median_after, 100 * cal.max_before, 100 * cal.max_after);
  const CalibrationSet held_out = ring_set("together-h100-1node-reduce-scatter-ring.log");
  // Physical, and the per-step latency near 0: both collectives floor at ~35 us with 14 and 7 steps.
  const double fastest = 34.28e-6;   // all-gather's 256 B row, the fastest fitted row
  CHECK(cal.after.collectives.launch_latency >= 0);
  CHECK(cal.after.collectives.launch_latency <= fastest);
  CHECK(cal.after.intra.latency >= 0);
  CHECK(cal.after.intra.latency < 0.6e-6);   // below the preset's NCCL hwLat
  CHECK(cal.after.intra.efficiency > 0);
  CHECK(cal.after.intra.efficiency <= 1);
  for (double min_bytes : {0.0, double(1 << 20)}) {
    const auto [median_before, max_before] = median_and_max_abs(time_errors(preset, held_out, min_bytes));
    const auto [median_after, max_after] = median_and_max_abs(time_errors(cal.after, held_out, min_bytes));
    table += fmt::format("  held out reduce_scatter (sizes >= {:.0f} B): median {:.1f}% -> {:.1f}%, max {:.1f}% -> {:.1f}%\n",
                         min_bytes, 100 * median_before, 100 * median_after, 100 * max_before, 100 * max_after);
    CAPTURE(min_bytes);
    // Measured 2026-12-01: 1.4% / 6.9% over all sizes, 1.5% / 6.9% from 1 MiB.
    CHECK(median_after <= 0.02);
    CHECK(max_after <= 0.075);
    CHECK(median_after < median_before);
  }
  MESSAGE(table);
}
