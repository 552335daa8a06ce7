// `tpsim collective`: one collective swept over sizes on a topology, printed as nccl-tests prints
// it (all_reduce_perf & co., v2.13 layout: header, device lines, the out-of-place and in-place
// columns, the "# Avg bus bandwidth" footer), so scripts that parse nccl-tests logs read it
// unchanged and the numbers lie next to a real run. A simulation validates no data: #wrong is
// N/A, as nccl-tests prints it with validation off. After nccl-tests' columns one more field, as
// nccl-tests' own optional timestamp column sits there, names what the selector resolved and the
// engine timed (algorithm/protocol/channels); with topology.collectives.nccl_version set, another
// says what that NCCL's tuning model picks and the time it predicts (* where it is not what was
// timed), and --explain-selection lists, on # lines, every candidate NCCL's model weighed.
//   tpsim collective -t dgx-h100 --op all_reduce --algo ring -b 8 -e 8G -f 2 [--gpus N] [--csv]
//   tpsim collective -t cluster-h100-ndr --gpus 16 --set topology.collectives.nccl_version=2.23 --explain-selection
#include <cctype>
#include <cmath>
#include <algorithm>
#include <cstdio>
#include <memory>
#include <numeric>
#include <stdexcept>
#include <string>

#include <fmt/core.h>

#include "cli/commands.hpp"
#include "tpsim/engine.hpp"

namespace tpsim::cli {

namespace {

constexpr long kMaxRows = 10000;   // sizes one `tpsim collective` times (nccl-tests 8 B..16 GiB x2: 32)

struct CollectiveArgs {
  std::string topology = "dgx-h100";
  std::string op = "all_reduce";
  std::string algo = "auto";
  std::string fidelity = "flow";
  std::string min_bytes = "8", max_bytes = "8G";
  double factor = 2;
  int gpus = 0;
  int per_node = 0;   // GPUs taken from each node (0: all of them)
  bool csv = false;
  bool explain_selection = false;
  std::vector<std::string> sets;
};

// nccl-tests sizes: a whole number with an optional K/M/G/T suffix (powers of 1024).
double parse_size(const std::string& flag, const std::string& text) {
  size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  std::string suffix = text.substr(used);
  if (!suffix.empty() && (suffix.back() == 'B' || suffix.back() == 'b')) suffix.pop_back();
  double scale = 1;
  if (suffix.size() == 1) {
    const char c = static_cast<char>(std::toupper(static_cast<unsigned char>(suffix[0])));
    scale = c == 'K' ? 1024.0 : c == 'M' ? 1024.0 * 1024 : c == 'G' ? 1024.0 * 1024 * 1024 : c == 'T' ? std::pow(1024.0, 4) : 0;
  } else if (!suffix.empty()) {
    scale = 0;
  }
  if (used == 0 || scale == 0 || !(value >= 0) || !std::isfinite(value))
    throw InputError("", 0, 0, flag, "expected a size like 8, 64K, 128M or 8G, got '" + text + "'");
  // Past a petabyte no GPU holds the buffer, and byte counts stop being exact doubles.
  constexpr double kMaxBytes = 1125899906842624.0;   // 1 PiB = 2^50
  if (value * scale > kMaxBytes)
    throw InputError("", 0, 0, flag, "'" + text + "' is larger than 1024T (2^50 bytes), more than any GPU's memory");
  return std::floor(value * scale);
}

std::vector<Override> parse_sets(const std::vector<std::string>& sets) {
  std::vector<Override> out;
  for (const std::string& s : sets) {
    const auto eq = s.find('=');
    if (eq == std::string::npos || eq == 0) throw InputError("", 0, 0, "--set", "expected topology.KEY=VALUE, got '" + s + "'");
    if (s.rfind("topology.", 0) != 0)   // a plan or model key would be silently ignored: nothing here reads them
      throw InputError("", 0, 0, "--set", "collective reads only the topology: expected topology.KEY=VALUE, got '" + s + "'");
    out.push_back({s.substr(0, eq), s.substr(eq + 1)});
  }
  return out;
}

// nccl-tests' time column: two decimals under 100 us, one under 10 ms, none above (7 wide).
std::string nccl_tests_time(double us) {
  return us >= 10000 ? fmt::format("{:7.0f}", us) : us >= 100 ? fmt::format("{:7.1f}", us) : fmt::format("{:7.2f}", us);
}

// nccl-tests' redop column: the reduction for the reducing collectives, "none" for the others.
const char* redop_name(CollectiveOp op) {
  return op == CollectiveOp::all_reduce || op == CollectiveOp::reduce || op == CollectiveOp::reduce_scatter ? "sum"
                                                                                                             : "none";
}

// What was timed, as one whitespace-free field: "ring/LL/1ch", "nvls/Simple/16ch/4pipe".
std::string instance_token(const CollectiveTiming& t) {
  std::string s = fmt::format("{}/{}/{}ch", to_string(t.algorithm), t.protocol, t.channels);
  if (t.instance.pipeline > 1) s += fmt::format("/{}pipe", t.instance.pipeline);
  return s;
}

// nccl-tests' preamble: the run line, one device line per rank (the simulated GPU, node by node),
// and the column headers, each line as all_reduce_perf writes it.
void print_nccl_tests_header(const CollectiveArgs& a, const Topology& topo, CollectiveOp op, const std::vector<int>& group,
                             double lo, double hi) {
  std::printf("# tpsim collective: %s, %s, %zu GPUs on %s, %s fidelity: simulated, no GPU ran (nccl-tests layout)\n",
              to_string(op), a.algo.c_str(), group.size(), topo.name.c_str(), a.fidelity.c_str());
  if (!topo.collectives.nccl_version.empty())
    std::printf("# last field: NCCL %s's pick, algorithm/protocol/predicted time (* where tpsim timed another)\n",
                topo.collectives.nccl_version.c_str());
  std::printf("# nThread 1 nGpus 1 minBytes %.0f maxBytes %.0f step: %g(factor) warmup iters: 0 iters: 1 agg iters: 1 "
              "validation: 0 graph: 0\n#\n# Using devices\n",
              lo, hi, a.factor);
  const int per_node = std::max(1, topo.gpus_per_node);
  for (size_t r = 0; r < group.size(); ++r)
    std::printf("#  Rank %2zu Group  0 Pid %6d on %10s device %2d [0000:%02x:00] %s\n", r, 0,
                fmt::format("node{}", group[r] / per_node).c_str(), group[r] % per_node, group[r] % per_node,
                topo.gpu.name.c_str());
  std::printf("#\n");
  std::printf("# %10s  %12s  %8s  %6s  %6s           out-of-place                       in-place          \n", "", "", "", "", "");
  std::printf("# %10s  %12s  %8s  %6s  %6s  %7s  %6s  %6s %6s  %7s  %6s  %6s %6s\n", "size", "count", "type", "redop", "root",
              "time", "algbw", "busbw", "#wrong", "time", "algbw", "busbw", "#wrong");
  std::printf("# %10s  %12s  %8s  %6s  %6s  %7s  %6s  %6s  %5s  %7s  %6s  %6s  %5s\n", "(B)", "(elements)", "", "", "", "(us)",
              "(GB/s)", "(GB/s)", "", "(us)", "(GB/s)", "(GB/s)", "");
}

void run(const CollectiveArgs& a) {
  const Topology topo = load_topology(a.topology, parse_sets(a.sets));
  const CollectiveOp op = parse_collective_op(a.op);
  const Algorithm algo = parse_algorithm(a.algo);
  const Fidelity fidelity = a.fidelity == "step" ? Fidelity::step : Fidelity::flow;
  const double lo = parse_size("-b", a.min_bytes), hi = parse_size("-e", a.max_bytes);
  if (lo > hi) throw InputError("", 0, 0, "-b", "minimum size is above the maximum (-e)");
  if (!(a.factor > 1)) throw InputError("", 0, 0, "-f", "the size factor must be > 1");
  long rows = 0;   // the loop below, counted first: a factor near 1 would time millions of sizes
  for (double size = lo; size <= hi && rows <= kMaxRows; size = std::max(size + 1, std::floor(size * a.factor))) ++rows;
  if (rows > kMaxRows)
    throw InputError("", 0, 0, "-f", fmt::format("x{} from {} to {} B is more than {} sizes; use a larger factor",
                                                 a.factor, lo, hi, kMaxRows));
  if ((op == CollectiveOp::send_recv || op == CollectiveOp::all_to_all) && (a.gpus > 0 ? a.gpus : 2) < 2)
    throw InputError("", 0, 0, "--gpus", fmt::format("{} needs at least 2 GPUs (one GPU sends nothing)", to_string(op)));
  const int per = a.per_node > 0 ? a.per_node : topo.gpus_per_node;
  if (per > topo.gpus_per_node)
    throw InputError("", 0, 0, "--per-node", fmt::format("'{}' has {} GPUs per node, not {}", topo.name, topo.gpus_per_node, per));
  const int gpus = a.gpus > 0 ? a.gpus : per;
  if (gpus > per * topo.nodes)
    throw InputError("", 0, 0, "--gpus",
                     fmt::format("{} GPUs do not fit on '{}' ({} node{} x {}); add --set topology.nodes=N", gpus,
                                 topo.name, topo.nodes, topo.nodes == 1 ? "" : "s", per));
  // The first `per` GPUs of each node, node after node (PAT wants one per node: --per-node 1).
  std::vector<int> group(gpus);
  for (int i = 0; i < gpus; ++i) group[i] = i / per * topo.gpus_per_node + i % per;

  const std::string& nccl = topo.collectives.nccl_version;
  if (a.explain_selection && nccl.empty())
    throw InputError("", 0, 0, "--explain-selection",
                     "needs topology.collectives.nccl_version (e.g. --set topology.collectives.nccl_version=2.23)");
  constexpr double kTypeBytes = 4;   // nccl-tests' default type, float
  if (a.csv) {
    std::printf("size_B,count,type,time_us,algbw_GBps,busbw_GBps,algorithm,protocol,channels,pipeline%s\n",
                nccl.empty() ? "" : ",nccl_version,nccl_algorithm,nccl_protocol,nccl_time_us,nccl_pick_timed");
  } else {
    print_nccl_tests_header(a, topo, op, group, lo, hi);
  }
  double busbw_sum = 0;
  int sizes = 0;
  for (double size = lo; size <= hi; size = std::max(size + 1, std::floor(size * a.factor))) {
    const CollectiveTiming t = time_collective(topo, op, algo, group, size, EngineOptions{fidelity});
    const double count = std::floor(size / kTypeBytes);
    NcclSelection sel;
    if (!nccl.empty()) sel = nccl_selection(topo, op, group, size);
    const NcclCandidate* pick = sel.pick >= 0 ? &sel.candidates[sel.pick] : nullptr;
    const bool timed = pick && pick->modelled == t.instance.algorithm &&
                       (pick->protocol == t.protocol || t.protocol == "ideal");
    busbw_sum += t.busbw / 1e9;
    ++sizes;
    if (a.csv) {
      std::printf("%.0f,%.0f,float,%.2f,%.2f,%.2f,%s,%s,%d,%d", size, count, t.seconds * 1e6, t.algbw / 1e9, t.busbw / 1e9,
                  to_string(t.algorithm), t.protocol.c_str(), t.channels, t.instance.pipeline);
      if (!nccl.empty()) {
        if (pick) std::printf(",%s,%s,%s,%.2f,%d", nccl.c_str(), pick->algorithm.c_str(), pick->protocol.c_str(), pick->seconds * 1e6, timed ? 1 : 0);
        else std::printf(",%s,,,,", nccl.c_str());
      }
      std::printf("\n");
      continue;
    }
    // nccl-tests' row: size, count, type, redop, root, then out-of-place and in-place (the same
    // simulated time: the model moves the same bytes either way).
    const int root = op == CollectiveOp::broadcast || op == CollectiveOp::reduce ? 0 : -1;
    std::printf("%12.0f  %12.0f  %8s  %6s  %6i", size, count, "float", redop_name(op), root);
    for (int place = 0; place < 2; ++place)
      std::printf("  %7s  %6.2f  %6.2f  %5s", nccl_tests_time(t.seconds * 1e6).c_str(), t.algbw / 1e9, t.busbw / 1e9, "N/A");
    std::string extra = instance_token(t);
    if (!nccl.empty())
      extra += "  " + (pick ? fmt::format("NCCL-{}:{}/{}/{:.2f}us{}", nccl, pick->algorithm, pick->protocol,
                                          pick->seconds * 1e6, timed ? "" : "*")
                            : std::string("NCCL-") + nccl + ":untuned");
    std::printf("  %s\n", extra.c_str());
    if (!a.explain_selection) continue;
    for (int i = 0; i < static_cast<int>(sel.candidates.size()); ++i) {
      const NcclCandidate& c = sel.candidates[i];
      std::printf("#%11s   NCCL %-16s %2d channels  latency %8.2f us  bandwidth %8.2f GB/s  time %10.2f us%s%s\n", "",
                  (c.algorithm + "/" + c.protocol).c_str(), c.channels, c.latency * 1e6, c.bandwidth / 1e9,
                  c.seconds * 1e6, i == sel.pick ? "  <- NCCL's pick" : "",
                  i == sel.followed && i != sel.pick ? "  <- auto runs this (tpsim cannot run the pick)"
                  : c.modelled == Algorithm::automatic ? "  (not modelled)" : "");
    }
  }
  if (!a.csv) {
    std::printf("# Out of bounds values : 0 OK\n");
    std::printf("# Avg bus bandwidth    : %g \n", sizes > 0 ? busbw_sum / sizes : 0.0);
    std::printf("#\n");
  }
}

}  // namespace

void register_collective(CLI::App& app) {
  auto args = std::make_shared<CollectiveArgs>();
  auto* cmd = app.add_subcommand("collective", "Time one collective over a range of sizes, printed as nccl-tests prints it");
  cmd->add_option("-t,--topology", args->topology, "Topology preset or YAML path")->capture_default_str();
  cmd->add_option("--op", args->op, "all_reduce | all_gather | reduce_scatter | broadcast | reduce | all_to_all | send_recv")
      ->capture_default_str();
  cmd->add_option("--algo", args->algo, "ring | tree | halving_doubling | direct | nvls | hierarchical | nvls_tree | pat | one_shot | two_shot | auto")
      ->capture_default_str();
  cmd->add_option("--gpus", args->gpus, "GPUs taking part (default: one node); beyond a node uses topology.nodes")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--per-node", args->per_node, "GPUs taken from each node (default: all of them; pat: 1)")
      ->check(CLI::PositiveNumber);
  cmd->add_option("-b,--minbytes", args->min_bytes, "Smallest size (K/M/G suffixes)")->capture_default_str();
  cmd->add_option("-e,--maxbytes", args->max_bytes, "Largest size (K/M/G suffixes)")->capture_default_str();
  cmd->add_option("-f,--stepfactor", args->factor, "Multiply the size by this between rows")->capture_default_str();
  cmd->add_option("--fidelity", args->fidelity, "flow (fast) | step (every chunk a message)")
      ->check(CLI::IsMember({"flow", "step"}))
      ->capture_default_str();
  cmd->add_flag("--csv", args->csv, "CSV instead of the table");
  cmd->add_flag("--explain-selection", args->explain_selection,
                "Under each row, every (algorithm, protocol) NCCL's tuning model weighed: latency, bandwidth, time "
                "(needs topology.collectives.nccl_version)");
  cmd->add_option("--set", args->sets, "Override a topology field: topology.KEY=VALUE (e.g. topology.nodes=4)")->take_all();
  cmd->callback([args] { run(*args); });
}

}  // namespace tpsim::cli
