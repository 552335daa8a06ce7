// Accuracy report: every measured nccl-tests table in data/reference against the preset that
// stands for its cluster, busbw error at sizes >= 1 MiB (the sizes TP/DP/PP messages have).
// Each table says whether the presets' constants were fitted on it (in-sample) or not
// (out-of-sample: the honest figure of what tpsim predicts on clusters it was not tuned to).
// Prints a table; asserts nothing (tests/test_engine_calibration.cpp holds the in-sample bounds).
#include <cmath>
#include <cstdio>
#include <fstream>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "tpsim/engine.hpp"
#include "tpsim/spec.hpp"

using namespace tpsim;

namespace {

struct Row {
  double bytes = 0, busbw = 0;   // B, GB/s
};

// Rows of a reference file: "tag,size_B,time_us,algbw,busbw" when `tag` is given, else
// "size_B,time_us,algbw,busbw". Lines starting with '#' are comments.
std::vector<Row> rows(const std::string& file, const std::string& tag) {
  std::ifstream in(std::string(TPSIM_SOURCE_DIR) + "/data/reference/" + file);
  std::vector<Row> out;
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> cell;
    std::stringstream ss(line);
    for (std::string c; std::getline(ss, c, ',');) cell.push_back(c);
    const size_t first = tag.empty() ? 0 : 1;
    if (!tag.empty() && cell[0] != tag) continue;
    if (cell.size() < first + 4) continue;
    const Row r{std::stod(cell[first]), std::stod(cell[first + 3])};
    if (r.bytes >= (1 << 20)) out.push_back(r);
  }
  return out;
}

struct Table {
  const char* label;
  const char* file;
  const char* tag;
  const char* preset;
  int nodes, gpus;
  CollectiveOp op;
  Algorithm algorithm;
  const char* fitted;   // what of it the presets were fitted on ("" = nothing: out-of-sample)
};

}  // namespace

int main(int argc, char** argv) {
  const bool per_row = argc > 1 && std::string(argv[1]) == "--rows";   // every row, not only the summary
  const Table tables[] = {
      {"H100 1 node all-reduce ring", "together_h100_1node_ring.csv", "allreduce_ring", "dgx-h100", 1, 8,
       CollectiveOp::all_reduce, Algorithm::ring, "in-sample: link efficiency (8 GiB row), launch latency"},
      {"H100 1 node all-gather ring", "together_h100_1node_ring.csv", "allgather_ring", "dgx-h100", 1, 8,
       CollectiveOp::all_gather, Algorithm::ring, "constants from the all-reduce rows"},
      {"H100 1 node reduce-scatter ring", "together_h100_1node_ring.csv", "reducescatter_ring", "dgx-h100", 1, 8,
       CollectiveOp::reduce_scatter, Algorithm::ring, "constants from the all-reduce rows"},
      {"H100 1 node all-reduce NVLS", "together_h100_1node_ring.csv", "allreduce_nvlsfile", "dgx-h100", 1, 8,
       CollectiveOp::all_reduce, Algorithm::nvls,
       "out-of-sample; its rows equal the ring table's within 0.5%: NVLS did not run there"},
      {"A100 1 node all-reduce", "oci_a100_bm_gpu4_8.csv", "a100_1node", "dgx-a100", 1, 8, CollectiveOp::all_reduce,
       Algorithm::automatic, "in-sample: link efficiency, launch latency"},
      {"A100 2 nodes all-reduce (old)", "oci_a100_bm_gpu4_8.csv", "a100_2node_old", "cluster-a100-hdr", 2, 16,
       CollectiveOp::all_reduce, Algorithm::automatic, ""},
      {"A100 2 nodes all-reduce (new)", "oci_a100_bm_gpu4_8.csv", "a100_2node_new", "cluster-a100-hdr", 2, 16,
       CollectiveOp::all_reduce, Algorithm::automatic, ""},
      {"H100 2 nodes all-reduce (IB)", "dgx_h100_2node.txt", "", "cluster-h100-ndr", 2, 16, CollectiveOp::all_reduce,
       Algorithm::automatic, "in-sample for rows >= 2 GiB: NVLS-tree step cost"},
      {"H100 2 nodes all-reduce (EFA)", "aws_p5_2node.csv", "", "aws-p5-efa", 2, 16, CollectiveOp::all_reduce,
       Algorithm::automatic, "EFA NIC latency from its 8 B row (not scored); step cost held out"},
      {"H100 2 nodes all-reduce (EFA; IB preset)", "aws_p5_2node.csv", "", "cluster-h100-ndr", 2, 16,
       CollectiveOp::all_reduce, Algorithm::automatic, ""},
  };
  std::printf("Collective accuracy, busbw at sizes >= 1 MiB, flow fidelity (error = predicted / measured - 1)\n");
  std::printf("%-42s %-17s %5s %10s %10s %10s  %s\n", "table", "preset", "rows", "mean |err|", "max |err|", "bias",
              "fitted on it");
  for (const Table& t : tables) {
    const std::vector<Row> measured = rows(t.file, t.tag);
    if (measured.empty()) {
      std::printf("%-42s (no rows read)\n", t.label);
      continue;
    }
    const Topology topo = load_topology(t.preset, {{"topology.nodes", std::to_string(t.nodes)}});
    std::vector<int> group(static_cast<size_t>(t.gpus));
    std::iota(group.begin(), group.end(), 0);
    double sum = 0, worst = 0, bias = 0;
    for (const Row& r : measured) {
      const CollectiveTiming c = time_collective(topo, t.op, t.algorithm, group, r.bytes, EngineOptions{Fidelity::flow});
      const double err = c.busbw / 1e9 / r.busbw - 1;
      if (per_row)
        std::printf("  %-40s %12.0f B  measured %7.1f GB/s  predicted %7.1f GB/s  %+6.1f%%  %s\n", t.label, r.bytes,
                    r.busbw, c.busbw / 1e9, 100 * err, describe(c.instance).c_str());
      sum += std::fabs(err);
      worst = std::max(worst, std::fabs(err));
      bias += err;
    }
    const double n = double(measured.size());
    std::printf("%-42s %-17s %5zu %9.1f%% %9.1f%% %+9.1f%%  %s\n", t.label, t.preset, measured.size(), 100 * sum / n,
                100 * worst, 100 * bias / n, *t.fitted ? t.fitted : "out-of-sample");
  }
  return 0;
}
