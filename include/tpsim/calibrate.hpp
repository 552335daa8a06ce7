// Calibration from a user's own nccl-tests logs: read the logs as nccl-tests prints them, time the
// same collective, sizes and ranks on a topology with the engine, fit a few physical constants of
// the topology (a bandwidth fraction and a latency per fabric tier, the launch latency) by
// least squares of log time, and write the topology back with those constants set.
// `tpsim calibrate LOG... -t TOPOLOGY` is the command; this is the library under it.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "tpsim/collective.hpp"
#include "tpsim/spec.hpp"

namespace tpsim {

// ---------------------------------------------------------------------------------------------
// nccl-tests output (all_reduce_perf & co.)

// One result row; only the out-of-place columns are kept (in-place repeats the measurement on a
// buffer that is its own output, which is not what a collective in a model does).
struct NcclTestsRow {
  int line = 0;          // 1-based line in the log
  double bytes = 0;      // size (B)
  double count = 0;      // elements
  std::string type;      // "float", ...
  std::string redop;     // "sum", "none", ... ("" in layouts without the column)
  int root = -1;         // -1 where the layout has no root column
  double time_us = 0;    // out-of-place time
  double algbw = 0;      // GB/s
  double busbw = 0;      // GB/s
};

struct NcclTestsRank {
  int rank = 0;
  std::string host;      // "on HOST"
  int device = 0;
  std::string gpu;       // "NVIDIA H100 80GB HBM3"
};

struct NcclTestsLog {
  std::string file;
  // The *_perf program named in the log ("# Collective test starting: all_reduce_perf", a command
  // line, or tpsim collective's first line); unset when the log names none.
  std::optional<CollectiveOp> named_op;
  int named_op_line = 0;
  int threads = 0, gpus_per_thread = 0;   // "# nThread T nGpus G" (0 = line absent)
  std::vector<NcclTestsRank> ranks;       // "#  Rank  r Group ... on HOST device d [...] GPU"
  std::vector<NcclTestsRow> rows;
  std::optional<double> avg_busbw;        // "# Avg bus bandwidth : X"
  // Hosts in order of first appearance, and ranks per host (0 when the hosts differ in rank count).
  std::vector<std::string> hosts() const;
  int ranks_per_host() const;
};

// Reads nccl-tests stdout: '#' lines (the preamble, the column header, which fixes the layout:
// with or without redop and root, #wrong or error), result rows, NCCL's own INFO/WARN lines, blank
// lines and a command line naming a *_perf program. Any other line is an InputError at its line
// saying what was expected; so is a log with no result rows.
NcclTestsLog parse_nccl_tests_log(const std::string& text, const std::string& file);
NcclTestsLog read_nccl_tests_log(const std::string& path);

// The collective the log measured: `named_op` if present, else inferred from the header (redop,
// root) and the busbw / algbw ratio of its largest row over `ranks` GPUs. Unset when neither tells
// (e.g. redop none, root -1: all_gather and alltoall print the same columns and ratio).
std::optional<CollectiveOp> infer_collective(const NcclTestsLog& log, int ranks);

// ---------------------------------------------------------------------------------------------
// The fit

// One log ready to be fitted: which collective, which algorithm to time (auto: tpsim's selector,
// or NCCL's where the topology names a version; ring for an NCCL_ALGO=Ring log), over which GPUs.
struct CalibrationSet {
  NcclTestsLog log;
  CollectiveOp op = CollectiveOp::all_reduce;
  Algorithm algorithm = Algorithm::automatic;
  std::vector<int> group;   // global GPU indices, node by node
};

// The constants a fit may move, as their topology YAML keys.
//   collectives.launch_latency  once per collective (kernel launch, host overhead)
//   intra.efficiency            fraction of the NVLink / PCIe line rate a bulk transfer achieves
//   intra.latency               per intra-node step
//   nic.efficiency, nic.latency the same for the network tier (per NIC traversal)
const std::vector<std::string>& calibration_keys();
// The default keys for these sets: launch latency and intra efficiency when a log stays in one
// node, NIC efficiency and latency when one spans nodes. (Per-step and launch latency add the same
// constant to every row of one collective on one group, so fitting both needs logs of different
// step counts: ask for intra.latency with --fit.)
std::vector<std::string> default_calibration_keys(const Topology& topology, const std::vector<CalibrationSet>& sets);

struct CalibrationOptions {
  std::vector<std::string> keys;   // empty = default_calibration_keys
  // A row slower than a larger size of the same log by more than this fraction is noise (the
  // engine's time never falls with size): shown, not fitted.
  double noise_margin = 0.05;
  // Latency-bound rows: measured time <= latency_ratio x the log's fastest fitted row.
  double latency_ratio = 1.3;
  // Bandwidth-bound rows: the largest sizes of a log whose measured time grows at least this fast
  // with the size (d ln t / d ln bytes against the next smaller row; see fit.cpp).
  double bandwidth_share = 0.8;
};

// Which physics a row's measured time is governed by, decided per log from its measured times
// alone (fit.cpp says how). Latency constants are fitted on the latency rows, efficiencies on the
// bandwidth rows; mid-size rows are predicted, not fitted; noise rows are shown only.
enum class RowRegime { noise, latency, mid, bandwidth };
const char* to_string(RowRegime r);   // "noise", "latency", "mid-size", "bandwidth"
// Each row's regime, as the fit decides it (noise: 0 B, or slower than a larger size).
std::vector<RowRegime> row_regimes(const NcclTestsLog& log, const CalibrationOptions& options = {});

struct FittedParameter {
  std::string key;          // "intra.efficiency"
  double before = 0, after = 0;   // SI units (s for latencies)
  double lower = 0, upper = 0;    // the physical range searched
  std::string yaml_value;   // how it is written: "0.8201", "21.93 us"
  int rows = 0;             // rows it was fitted on (its regime's rows whose time depends on it)
  std::string unfitted;     // why it was left at `before` ("" = fitted); not written to the YAML
};

struct CalibrationRow {
  size_t set = 0;           // index into the sets
  int line = 0;
  double bytes = 0;
  double measured_us = 0, before_us = 0, after_us = 0;
  std::string skipped;      // why the row was not fitted: noise ("" = not noise; see regime)
  RowRegime regime = RowRegime::noise;
  Algorithm fit_algorithm = Algorithm::ring;     // the algorithm the fit timed (auto: resolved with the starting constants)
  Algorithm after_algorithm = Algorithm::ring;   // the one the "after" column ran (auto re-resolved on the fitted topology)
  double error_before() const { return before_us / measured_us - 1; }
  double error_after() const { return after_us / measured_us - 1; }
};

// |time error| over a set of rows, before and after the fit.
struct RegimeErrors {
  int rows = 0;
  double median_before = 0, max_before = 0, median_after = 0, max_after = 0;
};

struct Calibration {
  Topology before, after;   // after: before with the fitted values, exactly as written to YAML
  std::vector<FittedParameter> parameters;
  std::vector<CalibrationRow> rows;
  int evaluations = 0;      // trial topologies the fit timed
  int timings = 0;          // collectives it timed for them (one per row in the regime fitted)
  // Over the fitted rows (latency and bandwidth): median and largest |time error|.
  double median_before = 0, max_before = 0, median_after = 0, max_after = 0;
  RegimeErrors latency, mid, bandwidth;   // per regime (mid: predicted only)
  std::vector<std::string> notes;         // what the fit held fixed or could not fit, one sentence each
};

// Fits `options.keys` of `topology` to the sets' rows by regime: the efficiencies on the
// bandwidth-bound rows first, then the latencies on the latency-bound rows with the efficiencies
// fixed, then once more each if the first moved (log-space least squares of time, each key searched
// within its physical range by a grid scan and golden section). An `automatic` algorithm is
// resolved per size once, on the starting constants, and held fixed during the fit. A key with no
// row in its regime is left as it was (FittedParameter::unfitted says why). Deterministic.
// Throws InputError for an unknown key or a set with no row left to fit.
Calibration calibrate(const Topology& topology, const std::vector<CalibrationSet>& sets,
                      const CalibrationOptions& options = {});

// The engine's time (us) for every row of `set` on `topology`, at flow fidelity (the fit's timing).
std::vector<double> predicted_times_us(const Topology& topology, const CalibrationSet& set);

// Median and largest |x| (0, 0 for none).
std::pair<double, double> median_and_max_abs(std::vector<double> x);

// ---------------------------------------------------------------------------------------------
// The calibrated topology

// The text of `original_yaml` (the topology file) with the fitted keys set, each with a comment
// naming its old value, the name suffixed "-calibrated", and `header` (comment lines) on top.
// Comments and layout of everything else are kept.
std::string calibrated_topology_yaml(const std::string& original_yaml, const Calibration& calibration,
                                     const std::string& header);

}  // namespace tpsim
