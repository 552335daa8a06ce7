// `tpsim calibrate`'s fit, checked where it was not fitted: fitted on the one-node H100 ring
// all-reduce log (together-nccl-tests, NCCL 2.26), the constants predict the same machine's ring
// all-gather and reduce-scatter logs; fitted on all-reduce and all-gather together (which tells
// the launch latency from the per-step one), it predicts reduce-scatter. Errors are checked per
// regime of the held-out log (latency floor, bandwidth-bound sizes, mid sizes), as the fit splits
// them. The bounds are the errors measured on 2026-12-01 (README "Calibration").
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

// Signed time errors of `topology` on the rows of `set` in `regime`, the regimes decided by the
// log's own measured times (as the fit decides them: row_regimes); RowRegime::noise: every row the
// fit would keep (not 0 B, not slower than a larger size by 5%).
std::vector<double> time_errors(const Topology& topology, const CalibrationSet& set, RowRegime regime) {
  const std::vector<double> us = predicted_times_us(topology, set);
  const std::vector<RowRegime> r = row_regimes(set.log);
  std::vector<double> e;
  for (size_t i = 0; i < us.size(); ++i)
    if (r[i] != RowRegime::noise && (regime == RowRegime::noise || r[i] == regime)) e.push_back(us[i] / set.log.rows[i].time_us - 1);
  return e;
}

const char* name(RowRegime r) { return r == RowRegime::noise ? "all sizes" : to_string(r); }

}  // namespace

TEST_CASE("fitted on the 1-node H100 ring all-reduce, calibrate predicts all-gather and reduce-scatter") {
  const Topology preset = load_topology("dgx-h100");
  const CalibrationSet fitted_on = ring_set("together-h100-1node-all-reduce-ring.log");
  const Calibration cal = calibrate(preset, {fitted_on});
  REQUIRE(cal.parameters.size() == 2);
  CHECK(cal.parameters[0].key == "collectives.launch_latency");
  CHECK(cal.parameters[1].key == "intra.efficiency");
  // The regimes of the log (see fit.cpp): 15 rows at most 1.3 x its 34.79 us floor (8 B - 256 KiB
  // less the noise rows, and 2 MiB's 42.06 us), 7 from 128 MiB up whose time doubles with the size
  // (64 MiB -> 128 MiB: ln(702.55/368.67)/ln 2 = 0.93; 32 -> 64 MiB: 0.785 < 0.8), 5 between.
  CHECK(cal.latency.rows == 15);
  CHECK(cal.bandwidth.rows == 7);
  CHECK(cal.mid.rows == 5);
  CHECK(cal.parameters[0].rows == 15);
  CHECK(cal.parameters[1].rows == 7);
  const double launch = cal.after.collectives.launch_latency, eff = cal.after.intra.efficiency;
  // Physical: a launch latency under the ~35 us floor every small row shows, an efficiency in (0, 1].
  CHECK(launch >= 0);
  CHECK(launch < 35e-6);
  CHECK(eff > 0);
  CHECK(eff <= 1);
  // The preset's constants were fitted to the same table by hand (22 us, 0.818): the fit lands near them.
  CHECK(launch == rel(22e-6, 0.15));
  CHECK(eff == rel(0.818, 0.03));
  // In sample, per regime, measured 2026-12-01: latency rows median 1.1%, max 4.0%; bandwidth rows
  // median 0.3%, max 1.2%; the mid-size rows, predicted only, 5.1% / 6.9%.
  CHECK(cal.latency.median_after <= 0.012);
  CHECK(cal.latency.max_after <= 0.041);
  CHECK(cal.bandwidth.median_after <= 0.004);
  CHECK(cal.bandwidth.max_after <= 0.013);
  CHECK(cal.mid.max_after <= 0.07);
  CHECK(cal.median_after <= cal.median_before + 1e-12);

  std::string table = fmt::format("fitted on all_reduce: launch {:.2f} us, intra.efficiency {:.4f} ({} trials, {} timings); in sample "
                                  "latency median {:.1f}% -> {:.1f}%, max {:.1f}% -> {:.1f}%; bandwidth median {:.1f}% -> "
                                  "{:.1f}%, max {:.1f}% -> {:.1f}%; mid-size median {:.1f}% -> {:.1f}%, max {:.1f}% -> {:.1f}%\n",
                                  launch * 1e6, eff, cal.evaluations, cal.timings, 100 * cal.latency.median_before,
                                  100 * cal.latency.median_after, 100 * cal.latency.max_before, 100 * cal.latency.max_after,
                                  100 * cal.bandwidth.median_before, 100 * cal.bandwidth.median_after, 100 * cal.bandwidth.max_before,
                                  100 * cal.bandwidth.max_after, 100 * cal.mid.median_before, 100 * cal.mid.median_after,
                                  100 * cal.mid.max_before, 100 * cal.mid.max_after);
  // Held out, per regime of the held-out log; bounds: the errors measured 2026-12-01 (in the comments).
  struct Bound {
    const char* file;
    RowRegime regime;
    double median, max;
  };
  for (const Bound& b : {
           // The bandwidth rows: 4.5% / 6.6% (all-gather), 3.6% / 4.8% (reduce-scatter); the preset
           // misses them as much (4.6% / 3.7% median): the model's ring all-gather and reduce-scatter
           // come out ~4% faster than its all-reduce at the same efficiency, a bias of the model no
           // all-reduce fit can see. (The previous all-rows fit, 0.8074, got 3.4% / 2.6% here only
           // because the mid sizes had pulled its efficiency down by 1.1%.)
           Bound{"together-h100-1node-all-gather-ring.log", RowRegime::bandwidth, 0.046, 0.067},
           Bound{"together-h100-1node-reduce-scatter-ring.log", RowRegime::bandwidth, 0.037, 0.049},
           // The latency floor, 11.0% / 14.5% and 10.6% / 13.7%: all-reduce's 14 ring steps fit a
           // launch latency 1.7 us under the preset's, while all-gather's and reduce-scatter's 7 steps
           // measure the same ~35 us floor: one collective cannot tell a launch latency from a
           // per-step one (the next case can).
           Bound{"together-h100-1node-all-gather-ring.log", RowRegime::latency, 0.111, 0.146},
           Bound{"together-h100-1node-reduce-scatter-ring.log", RowRegime::latency, 0.107, 0.138},
           // Mid sizes: 5.8% / 9.4% and 2.5% / 4.3%.
           Bound{"together-h100-1node-all-gather-ring.log", RowRegime::mid, 0.059, 0.095},
           Bound{"together-h100-1node-reduce-scatter-ring.log", RowRegime::mid, 0.026, 0.044},
       }) {
    const CalibrationSet held_out = ring_set(b.file);
    const auto [median_before, max_before] = median_and_max_abs(time_errors(preset, held_out, b.regime));
    const auto [median_after, max_after] = median_and_max_abs(time_errors(cal.after, held_out, b.regime));
    table += fmt::format("  held out {} ({} rows): median {:.1f}% -> {:.1f}%, max {:.1f}% -> {:.1f}%\n", b.file, name(b.regime),
                         100 * median_before, 100 * median_after, 100 * max_before, 100 * max_after);
    CAPTURE(b.file);
    CAPTURE(name(b.regime));
    CHECK(median_after <= b.median);
    CHECK(max_after <= b.max);
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
                                  "({} trials, {} timings); in sample latency median {:.1f}% -> {:.1f}%, max {:.1f}% -> {:.1f}%; "
                                  "bandwidth median {:.1f}% -> {:.1f}%, max {:.1f}% -> {:.1f}%\n",
                                  cal.after.collectives.launch_latency * 1e6, cal.after.intra.efficiency,
                                  cal.after.intra.latency * 1e6, cal.evaluations, cal.timings, 100 * cal.latency.median_before,
                                  100 * cal.latency.median_after, 100 * cal.latency.max_before, 100 * cal.latency.max_after,
                                  100 * cal.bandwidth.median_before, 100 * cal.bandwidth.median_after, 100 * cal.bandwidth.max_before,
                                  100 * cal.bandwidth.max_after);
  const CalibrationSet held_out = ring_set("together-h100-1node-reduce-scatter-ring.log");
  // Physical, and the per-step latency near 0: both collectives floor at ~35 us with 14 and 7 steps.
  const double fastest = 34.28e-6;   // all-gather's 256 B row, the fastest fitted row
  CHECK(cal.after.collectives.launch_latency >= 0);
  CHECK(cal.after.collectives.launch_latency <= fastest);
  CHECK(cal.after.intra.latency >= 0);
  CHECK(cal.after.intra.latency < 0.6e-6);   // below the preset's NCCL hwLat
  CHECK(cal.after.intra.efficiency > 0);
  CHECK(cal.after.intra.efficiency <= 1);
  struct Bound {
    RowRegime regime;
    double median, max;
  };
  // Measured 2026-12-01, held-out reduce-scatter: all sizes 1.7% / 7.5%, latency rows 1.8% / 3.9%,
  // bandwidth rows 1.4% / 2.5%, mid sizes (its 16 MiB row) 3.1% / 7.5%.
  for (const Bound& b : {Bound{RowRegime::noise, 0.018, 0.076}, Bound{RowRegime::latency, 0.019, 0.040},
                         Bound{RowRegime::bandwidth, 0.015, 0.026}, Bound{RowRegime::mid, 0.032, 0.076}}) {
    const auto [median_before, max_before] = median_and_max_abs(time_errors(preset, held_out, b.regime));
    const auto [median_after, max_after] = median_and_max_abs(time_errors(cal.after, held_out, b.regime));
    table += fmt::format("  held out reduce_scatter ({} rows): median {:.1f}% -> {:.1f}%, max {:.1f}% -> {:.1f}%\n", name(b.regime),
                         100 * median_before, 100 * median_after, 100 * max_before, 100 * max_after);
    CAPTURE(name(b.regime));
    CHECK(median_after <= b.median);
    CHECK(max_after <= b.max);
    if (b.regime != RowRegime::mid) CHECK(median_after < median_before);
  }
  MESSAGE(table);
}

TEST_CASE("fitted on the 2-node a3mega all-reduce, the bandwidth-bound sizes come out within 7%") {
  const Topology cluster = load_topology("cluster-h100-ndr");
  CalibrationSet s;
  s.log = read_nccl_tests_log(kLogs + "a3mega-2x8-h100-all-reduce.log");
  s.op = CollectiveOp::all_reduce;
  s.algorithm = Algorithm::ring;
  for (int i = 0; i < 16; ++i) s.group.push_back(i);   // 2 nodes x 8
  const Calibration cal = calibrate(cluster, {s});
  REQUIRE(cal.parameters.size() == 2);
  CHECK(cal.parameters[0].key == "nic.efficiency");
  CHECK(cal.parameters[1].key == "nic.latency");
  // Regimes of the log: 13 rows within 1.3 x its 123.0 us floor (16 B - 128 KiB, less the noisy
  // 1 KiB); 4 from 1 GiB up whose time doubles with the size (512 MiB -> 1 GiB:
  // ln(6759/3817.5)/ln 2 = 0.82; 256 -> 512 MiB: 0.69 < 0.8); 12 mid sizes on NCCL's network
  // pipelining plateau (16 MiB -> 32 MiB: 977.6 -> 1059.9 us), predicted only.
  CHECK(cal.latency.rows == 13);
  CHECK(cal.bandwidth.rows == 4);
  CHECK(cal.mid.rows == 12);
  // Physical: 8 rings, one per 400 Gb/s NIC, carry the bus bandwidth: the 8 GiB row's 338.8 GB/s
  // is 338.8 / (8 x 50) = 0.85 of the line rate, less the NVLink hops' and latency's share.
  CHECK(cal.after.nic.efficiency > 0.75);
  CHECK(cal.after.nic.efficiency < 0.85);
  // The bandwidth rows (1 - 8 GiB), measured 2026-12-01: -6.8%, -0.8%, +2.7%, +5.2%: median 4.0%,
  // max 6.8% (before: 16.1% / 22.6%). The fit over all rows got +68% .. +90% here (0.447).
  CHECK(cal.bandwidth.median_after <= 0.041);
  CHECK(cal.bandwidth.max_after <= 0.069);
  CHECK(cal.bandwidth.max_after < cal.bandwidth.max_before);
  // The latency floor (measured 7.7% / 16.1%: the 32 - 128 KiB rows at 155-159 us are within 1.3x
  // of the floor but already grow with the size, which the model's ring LL does not).
  CHECK(cal.latency.median_after <= 0.078);
  CHECK(cal.latency.max_after <= 0.162);
  // 256 MiB and 512 MiB, mid sizes here, stay 31% / 17% fast: the model has no term for the
  // ~1.1 ms the pipeline adds (4 and 8 GiB: t = 1187 us + bytes / 185 GB/s algbw).
  for (const CalibrationRow& r : cal.rows)
    if (r.bytes == 268435456) CHECK(r.error_after() == rel(-0.314, 0.01));
  // Fast by design, not by the clock (wall time is a benchmark's business): each trial times only
  // the rows of the regime it fits, fewer than every fitted row per trial as the first fit did.
  CHECK(cal.timings < cal.evaluations * (cal.latency.rows + cal.bandwidth.rows));
  MESSAGE(fmt::format("a3mega 2x8 ring: nic.efficiency {:.4f}, nic.latency {:.2f} us ({} trials, {} timings); latency rows "
                      "median {:.1f}% -> {:.1f}%, max {:.1f}% -> {:.1f}%; bandwidth rows median {:.1f}% -> {:.1f}%, max {:.1f}% -> "
                      "{:.1f}%; mid-size median {:.1f}% -> {:.1f}%, max {:.1f}% -> {:.1f}%",
                      cal.after.nic.efficiency, cal.after.nic.latency * 1e6, cal.evaluations, cal.timings,
                      100 * cal.latency.median_before, 100 * cal.latency.median_after, 100 * cal.latency.max_before,
                      100 * cal.latency.max_after, 100 * cal.bandwidth.median_before, 100 * cal.bandwidth.median_after,
                      100 * cal.bandwidth.max_before, 100 * cal.bandwidth.max_after, 100 * cal.mid.median_before,
                      100 * cal.mid.median_after, 100 * cal.mid.max_before, 100 * cal.mid.max_after));
}
