// Accuracy across two nodes of 8x H100 (16 GPUs), against two measured nccl-tests all-reduce tables
// that no constant of the scored rows was fitted on:
//   aws_p5_2node.csv (EFA, preset aws-p5-efa): its NIC latency is fitted on the 8 B row, which is
//     latency alone and not scored here; every row >= 1 MiB is checked.
//   dgx_h100_2node.txt (InfiniBand NDR, preset cluster-h100-ndr): nothing fitted on it; its rows
//     below 2 GiB are the log's noisy ones (1 MiB in 764 us, 6x the EFA time) and are not checked.
// Bounds: the goal, busbw within 10%, where it is met; the three EFA rows that miss it are
// held at the error reached (README "Calibration and accuracy"), so any drift shows.
#include <doctest/doctest.h>

#include <cmath>
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

// "size_B,time_us,algbw,busbw" rows; '#' lines are comments.
std::vector<Row> rows(const std::string& file) {
  std::ifstream in(std::string(TPSIM_REFERENCE_DIR) + "/" + file);
  REQUIRE_MESSAGE(in.good(), "cannot read " << file);
  std::vector<Row> out;
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::stringstream ss(line);
    std::vector<double> cell;
    for (std::string c; std::getline(ss, c, ',');) cell.push_back(std::stod(c));
    REQUIRE(cell.size() == 4);
    out.push_back({cell[0], cell[3]});
  }
  return out;
}

double predicted_busbw(const Topology& topo, double bytes) {
  std::vector<int> group(16);
  std::iota(group.begin(), group.end(), 0);
  return time_collective(topo, CollectiveOp::all_reduce, Algorithm::automatic, group, bytes, EngineOptions{Fidelity::flow})
             .busbw / 1e9;
}

}  // namespace

TEST_CASE("2 nodes of H100 over EFA (AWS p5): all-reduce busbw >= 1 MiB within 10%, three mid sizes within 18%") {
  const Topology topo = load_topology("aws-p5-efa", {{"topology.nodes", "2"}});
  int within_10 = 0, checked = 0;
  for (const Row& r : rows("aws_p5_2node.csv")) {
    if (r.bytes < (1 << 20)) continue;
    const double error = predicted_busbw(topo, r.bytes) / r.busbw - 1;
    INFO(r.bytes << " B: measured " << r.busbw << " GB/s, error " << 100 * error << "%");
    // 16 MiB (+17.2%), 64 MiB (+14.3%), 1 GiB (-12.1%): NCCL's proxy and pipelining costs at mid
    // sizes and the ring-to-NVLS-tree switch are not modelled yet.
    CHECK(std::fabs(error) < 0.18);
    within_10 += std::fabs(error) < 0.10;
    ++checked;
  }
  CHECK(checked == 12);
  CHECK(within_10 >= 9);
}

TEST_CASE("2 nodes of DGX H100 over NDR InfiniBand: all-reduce busbw >= 2 GiB within 10%") {
  const Topology topo = load_topology("cluster-h100-ndr", {{"topology.nodes", "2"}});
  int checked = 0;
  for (const Row& r : rows("dgx_h100_2node.txt")) {
    if (r.bytes < 2147483648.0) continue;
    const double error = predicted_busbw(topo, r.bytes) / r.busbw - 1;
    INFO(r.bytes << " B: measured " << r.busbw << " GB/s, error " << 100 * error << "%");
    CHECK(std::fabs(error) < 0.10);
    ++checked;
  }
  CHECK(checked == 4);
}
