// `tpsim calibrate`: a user's nccl-tests logs become a topology's calibration. Each log is read as
// nccl-tests printed it (out-of-place times), the same collective is timed on the topology over
// the same GPUs and sizes, a few physical constants are fitted (sim/calibrate/fit.cpp), and the
// table shows every size before and after; -o writes the topology with the fitted values set.
//   tpsim calibrate all_reduce.log all_gather.log -t dgx-h100 --algo ring -o my-cluster.yaml
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <ctime>
#include <fstream>
#include <memory>
#include <sstream>

#include <fmt/core.h>
#include <spdlog/spdlog.h>

#include "cli/commands.hpp"
#include "cli/output_paths.hpp"
#include "tpsim/calibrate.hpp"

namespace tpsim::cli {

namespace {

struct CalibrateArgs {
  std::vector<std::string> logs;
  std::string topology;
  std::string output;
  std::string collective;   // for logs that name none
  std::string algo = "auto";
  std::string fit;          // comma-separated keys; "" = the default for the logs
  int gpus = 0, per_node = 0;
};

std::string size_text(double bytes) {
  const char* unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4 && std::fmod(bytes, 1024) == 0) bytes /= 1024, ++u;
  return fmt::format("{:g} {}", bytes, unit[u]);
}

std::string value_text(const FittedParameter& p, double v) {
  return p.key.find("efficiency") != std::string::npos ? fmt::format("{:.4g}", v) : fmt::format("{:.2f} us", v * 1e6);
}

// The GPUs a log ran on: its "# Rank" lines (hosts in order, ranks per host), or --gpus/--per-node;
// the first ranks-per-host GPUs of each node, as `tpsim collective` places them.
std::vector<int> group_for(const NcclTestsLog& log, const Topology& topo, const CalibrateArgs& a) {
  const int ranks = a.gpus > 0 ? a.gpus : int(log.ranks.size());
  if (ranks == 0)
    throw InputError(log.file, 0, 0, "", "no '# Rank' lines say how many GPUs ran this test: give --gpus N (and --per-node M)");
  int per = a.per_node > 0 ? a.per_node : a.gpus > 0 ? std::min(ranks, topo.gpus_per_node) : log.ranks_per_host();
  if (per == 0)
    throw InputError(log.file, 0, 0, "", "its hosts ran different numbers of ranks; give --per-node M to say how to place them");
  if (ranks % per != 0)
    throw InputError(log.file, 0, 0, "--per-node", fmt::format("{} ranks do not split into nodes of {}", ranks, per));
  const int nodes = ranks / per;
  if (per > topo.gpus_per_node || nodes > topo.nodes)
    throw InputError(log.file, 0, 0, "",
                     fmt::format("{} ranks ({} node{} x {}) do not fit on '{}' ({} node{} x {} GPUs); pick a topology "
                                 "that holds them", ranks, nodes, nodes == 1 ? "" : "s", per, topo.name, topo.nodes,
                                 topo.nodes == 1 ? "" : "s", topo.gpus_per_node));
  std::vector<int> group(ranks);
  for (int i = 0; i < ranks; ++i) group[i] = i / per * topo.gpus_per_node + i % per;
  return group;
}

std::string today() {
  std::time_t now = std::time(nullptr);
  if (const char* epoch = std::getenv("SOURCE_DATE_EPOCH")) now = std::time_t(std::strtoll(epoch, nullptr, 10));
  char buf[16];
  std::tm utc{};
  gmtime_r(&now, &utc);
  std::strftime(buf, sizeof buf, "%Y-%m-%d", &utc);
  return buf;
}

std::string describe_set(const CalibrationSet& s, const Topology& topo, const Calibration& cal, size_t index) {
  int latency = 0, bandwidth = 0, mid = 0, rows = 0;
  for (const CalibrationRow& r : cal.rows)
    if (r.set == index)
      ++rows, latency += r.regime == RowRegime::latency, bandwidth += r.regime == RowRegime::bandwidth, mid += r.regime == RowRegime::mid;
  const int first_node = s.group.front() / topo.gpus_per_node;
  const int per = int(std::count_if(s.group.begin(), s.group.end(), [&](int g) { return g / topo.gpus_per_node == first_node; }));
  const int nodes = int(s.group.size()) / std::max(1, per);
  return fmt::format("{}: {}, {}, {} GPUs ({} node{} x {}), {} of {} rows fitted ({} latency, {} bandwidth), {} mid-size "
                     "predicted", s.log.file, to_string(s.op), to_string(s.algorithm), s.group.size(), nodes,
                     nodes == 1 ? "" : "s", per, latency + bandwidth, rows, latency, bandwidth, mid);
}

std::string yaml_header(const std::vector<CalibrationSet>& sets, const Topology& topo, const Calibration& cal) {
  std::string h = fmt::format("# Calibrated by `tpsim calibrate` (tpsim {}) on {} from {}.\n", TPSIM_VERSION, today(), topo.source);
  h += "# Fitted on these nccl-tests logs (out-of-place times; log-space least squares of time):\n";
  bool inside = false, across = false;
  double lo = 1e300, hi = 0;
  for (size_t i = 0; i < sets.size(); ++i) {
    h += "#   " + describe_set(sets[i], topo, cal, i) + "\n";
    const bool spans = sets[i].group.front() / topo.gpus_per_node != sets[i].group.back() / topo.gpus_per_node;
    (spans ? across : inside) = true;
  }
  for (const CalibrationRow& r : cal.rows)
    if (r.skipped.empty()) lo = std::min(lo, r.bytes), hi = std::max(hi, r.bytes);
  std::string moved, kept;
  for (const FittedParameter& p : cal.parameters)
    if (p.unfitted.empty()) moved += fmt::format("{}{} {} -> {} (on {} rows)", moved.empty() ? "" : "; ", p.key, value_text(p, p.before), p.yaml_value, p.rows);
    else kept += fmt::format("{}{} ({})", kept.empty() ? "" : "; ", p.key, p.unfitted);
  h += "# Fitted by regime: efficiencies on the bandwidth-bound rows, latencies on the latency-bound rows.\n";
  h += "# Fitted: " + (moved.empty() ? std::string("nothing") : moved) + ".\n";
  if (!kept.empty()) h += "# Not fitted, the original's: " + kept + ".\n";
  for (auto [name, e] : {std::pair{"latency rows", &cal.latency}, {"bandwidth rows", &cal.bandwidth}, {"mid-size rows (predicted, not fitted)", &cal.mid}})
    if (e->rows > 0)
      h += fmt::format("# Time error on {} {}: median {:.1f}% -> {:.1f}%, max {:.1f}% -> {:.1f}%.\n", e->rows, name,
                       100 * e->median_before, 100 * e->median_after, 100 * e->max_before, 100 * e->max_after);
  h += "# Not measured, so extrapolated with these constants and unchecked:\n";
  h += fmt::format("#   sizes outside {} - {}; other collectives and group sizes\n", size_text(lo), size_text(hi));
  if (!across) h += "#   anything across nodes: no log spans nodes, so nic.* and network.* are the original's\n";
  if (!inside) h += "#   launch latency and NVLink (intra.*): the original's (fit them on a one-node log)\n";
  h += "# Every other key is the original's.\n";
  return h;
}

// -o, checked before any log is read: a topology YAML path (so `tpsim run -t FILE` reads it as a
// file, not a preset name) in a writable folder, and none of the command's inputs.
void check_calibrated_output(const CalibrateArgs& a, const Topology& topo) {
  if (a.output.empty()) return;
  check_output_file("-o", a.output);
  if (!a.output.ends_with(".yaml") && !a.output.ends_with(".yml"))
    throw InputError("", 0, 0, "-o", "'" + a.output + "': expected a topology path ending in .yaml or .yml");
  namespace fs = std::filesystem;
  std::error_code ec;
  std::vector<std::string> inputs = a.logs;
  inputs.push_back(topo.source);
  for (const std::string& in : inputs)
    if (fs::exists(in, ec) && fs::equivalent(in, a.output, ec))
      throw InputError("", 0, 0, "-o", "'" + a.output + "' is an input of this command (" + in + "): write the calibrated topology elsewhere");
}

void write_calibrated(const std::string& path, const Topology& topo, const Calibration& cal, const std::string& header) {
  std::ifstream in(topo.source, std::ios::binary);
  if (!in) throw InputError(topo.source, 0, 0, "--topology", "cannot read the topology file again to write its calibrated copy");
  std::ostringstream text;
  text << in.rdbuf();
  const std::string yaml = calibrated_topology_yaml(text.str(), cal, header);
  // Written beside the target and renamed onto it once it reads back: a failed write never leaves
  // half a topology where a good file was.
  const std::string partial = path + ".partial.yaml";
  {
    std::ofstream out(partial, std::ios::binary);
    if (!(out << yaml) || !out.flush()) {
      std::filesystem::remove(partial);
      throw InputError(path, 0, 0, "-o", "cannot write the calibrated topology here");
    }
  }
  // What was written must be what was fitted: the file loads, and holds exactly the fitted values.
  const Topology back = load_topology(partial);
  const double got[] = {back.collectives.launch_latency, back.intra.efficiency, back.intra.latency, back.nic.efficiency, back.nic.latency};
  const double want[] = {cal.after.collectives.launch_latency, cal.after.intra.efficiency, cal.after.intra.latency,
                         cal.after.nic.efficiency, cal.after.nic.latency};
  for (int i = 0; i < 5; ++i)
    if (got[i] != want[i]) {
      std::filesystem::remove(partial);
      throw std::logic_error(fmt::format("calibrate: {} reads back {} where the fit set {}", path, got[i], want[i]));
    }
  std::error_code ec;
  std::filesystem::rename(partial, path, ec);
  if (ec) throw InputError(path, 0, 0, "-o", "cannot write the calibrated topology here: " + ec.message());
}

void run(const CalibrateArgs& a) {
  const Topology topo = load_topology(a.topology);
  check_calibrated_output(a, topo);
  const Algorithm algo = parse_algorithm(a.algo);
  std::vector<CalibrationSet> sets;
  for (const std::string& path : a.logs) {
    CalibrationSet s;
    s.log = read_nccl_tests_log(path);
    s.group = group_for(s.log, topo, a);
    s.algorithm = algo;
    if (!a.collective.empty()) s.op = parse_collective_op(a.collective);
    else if (const auto op = infer_collective(s.log, int(s.group.size()))) s.op = *op;
    else throw InputError(path, 0, 0, "--collective", "the log names no *_perf program and its columns fit several collectives: "
                                                      "give --collective all_reduce|all_gather|...");
    if (!a.collective.empty() && s.log.named_op && *s.log.named_op != s.op)
      throw InputError(path, s.log.named_op_line, 0, "--collective",
                       fmt::format("the log says {}, --collective says {}", to_string(*s.log.named_op), to_string(s.op)));
    if (!s.log.ranks.empty() && topo.gpu.compute_capability != 0) {
      const int cc = gpu_compute_capability(s.log.ranks.front().gpu);
      if (cc != 0 && cc != topo.gpu.compute_capability)
        spdlog::warn("{} ran on {}, '{}' models {}: the fit will absorb the difference", path, s.log.ranks.front().gpu, topo.name, topo.gpu.name);
    }
    sets.push_back(std::move(s));
  }
  CalibrationOptions options;
  for (std::stringstream keys(a.fit); keys.good();) {
    std::string k;
    std::getline(keys, k, ',');
    if (!k.empty()) options.keys.push_back(k);
  }
  const Calibration cal = calibrate(topo, sets, options);

  std::printf("# tpsim calibrate: '%s' (%s), flow fidelity, %zu log%s\n", topo.name.c_str(), topo.source.c_str(), sets.size(),
              sets.size() == 1 ? "" : "s");
  for (size_t i = 0; i < sets.size(); ++i) std::printf("#   %s\n", describe_set(sets[i], topo, cal, i).c_str());
  std::printf("# fitted by regime (log-space least squares of time; %d trials, %d collectives timed):\n", cal.evaluations,
              cal.timings);
  std::printf("#   latency rows: time <= %.2gx the log's fastest; bandwidth rows: the largest sizes whose time grows\n"
              "#   >= %.2g as fast as the size; mid-size rows between them are predicted, not fitted\n",
              options.latency_ratio, options.bandwidth_share);
  for (const FittedParameter& p : cal.parameters) {
    if (!p.unfitted.empty()) {
      std::printf("#   %-28s %10s    not fitted: %s\n", p.key.c_str(), value_text(p, p.before).c_str(), p.unfitted.c_str());
      continue;
    }
    std::printf("#   %-28s %10s -> %-10s (range %s - %s; on %d %s rows)\n", p.key.c_str(), value_text(p, p.before).c_str(),
                p.yaml_value.c_str(), value_text(p, p.lower).c_str(), value_text(p, p.upper).c_str(), p.rows,
                p.key.find("efficiency") != std::string::npos ? "bandwidth" : "latency");
  }
  for (const std::string& n : cal.notes) std::printf("# note: %s\n", n.c_str());
  std::printf("#\n# %-44s %12s %14s %12s %8s %12s %8s  %s\n", "log:line", "size (B)", "measured (us)", "before (us)", "error",
              "after (us)", "error", "regime");
  for (const CalibrationRow& r : cal.rows) {
    const std::string where = fmt::format("{}:{}", std::filesystem::path(sets[r.set].log.file).filename().string(), r.line);
    if (r.bytes <= 0) {
      std::printf("  %-44s %12.0f %14.2f %12s %8s %12s %8s  skipped: %s\n", where.c_str(), r.bytes, r.measured_us, "-", "-", "-", "-",
                  r.skipped.c_str());
      continue;
    }
    const std::string mark = r.regime == RowRegime::noise ? "skipped: " + r.skipped
                             : r.regime == RowRegime::mid ? std::string("predicted, not fitted: mid-size")
                                                          : std::string("fitted: ") + to_string(r.regime);
    std::printf("  %-44s %12.0f %14.2f %12.2f %+7.1f%% %12.2f %+7.1f%%  %s\n", where.c_str(), r.bytes, r.measured_us, r.before_us,
                100 * r.error_before(), r.after_us, 100 * r.error_after(), mark.c_str());
  }
  std::printf("#\n# |time error|, median and max, before -> after:\n");
  for (auto [name, e] : {std::pair{"latency rows (fitted)", &cal.latency}, {"bandwidth rows (fitted)", &cal.bandwidth},
                         {"mid-size rows (predicted)", &cal.mid}}) {
    if (e->rows == 0) {
      std::printf("#   %-26s none\n", name);
      continue;
    }
    std::printf("#   %-26s %2d rows: median %.1f%% -> %.1f%%, max %.1f%% -> %.1f%%\n", name, e->rows, 100 * e->median_before,
                100 * e->median_after, 100 * e->max_before, 100 * e->max_after);
  }
  if (a.output.empty()) {
    std::printf("# not written: -o FILE writes the calibrated topology\n");
    return;
  }
  write_calibrated(a.output, topo, cal, yaml_header(sets, topo, cal));
  std::printf("# wrote %s (tpsim validate %s; tpsim run -t %s)\n", a.output.c_str(), a.output.c_str(), a.output.c_str());
}

}  // namespace

void register_calibrate(CLI::App& app) {
  auto args = std::make_shared<CalibrateArgs>();
  auto* cmd = app.add_subcommand("calibrate", "Fit a topology's link efficiencies and latencies to nccl-tests logs");
  cmd->add_option("logs", args->logs, "nccl-tests output (all_reduce_perf & co.), as it printed it")->required();
  cmd->add_option("-t,--topology", args->topology, "Topology preset or YAML path to calibrate")->required();
  cmd->add_option("-o,--output", args->output, "Write the calibrated topology YAML here");
  cmd->add_option("--collective", args->collective, "The collective, for logs that do not name their *_perf program");
  cmd->add_option("--algo", args->algo, "Algorithm to time: auto, or ring etc. for a log run with NCCL_ALGO")->capture_default_str();
  cmd->add_option("--fit", args->fit, "Constants to fit, comma-separated: collectives.launch_latency, intra.efficiency, "
                                      "intra.latency, nic.efficiency, nic.latency (default: by what the logs span)");
  cmd->add_option("--gpus", args->gpus, "GPUs that ran the logs (default: their '# Rank' lines)")->check(CLI::PositiveNumber);
  cmd->add_option("--per-node", args->per_node, "GPUs per node that ran the logs (default: from the '# Rank' hosts)")
      ->check(CLI::PositiveNumber);
  cmd->callback([args] { run(*args); });
}

}  // namespace tpsim::cli
