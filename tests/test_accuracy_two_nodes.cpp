// Accuracy across two nodes of 8x H100 (16 GPUs), against two measured nccl-tests all-reduce tables,
// leave-one-table-out:
//   dgx_h100_2node.txt (InfiniBand NDR, preset cluster-h100-ndr): NVLS-tree's per-step cost
//     (collectives.nvls_tree_step, 7 us) is fitted on its rows >= 2 GiB (minimax); its rows below
//     2 GiB are the log's noisy ones (1 MiB in 764 us, 6x the EFA time) and are not checked.
//   aws_p5_2node.csv (EFA, preset aws-p5-efa): held out from that fit; its NIC latency is fitted on
//     the 8 B row, which is latency alone and not scored here; every row >= 1 MiB is checked.
// Bounds: the goal, busbw within 10%, where it is met; the three EFA rows that miss it are
// held at the error reached (README "Calibration and accuracy"), so any drift shows.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "tpsim/engine.hpp"
#include "tpsim/spec.hpp"
#include "relative.hpp"

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

double predicted_busbw(const Topology& topo, double bytes, Algorithm algorithm = Algorithm::automatic) {
  std::vector<int> group(16);
  std::iota(group.begin(), group.end(), 0);
  return time_collective(topo, CollectiveOp::all_reduce, algorithm, group, bytes, EngineOptions{Fidelity::flow})
             .busbw / 1e9;
}

}  // namespace

TEST_CASE("2 nodes of H100 over EFA (AWS p5): all-reduce busbw >= 1 MiB within 10%, three mid sizes within 16%") {
  const Topology topo = load_topology("aws-p5-efa", {{"topology.nodes", "2"}});
  int within_10 = 0, checked = 0;
  for (const Row& r : rows("aws_p5_2node.csv")) {
    if (r.bytes < (1 << 20)) continue;
    const double error = predicted_busbw(topo, r.bytes) / r.busbw - 1;
    INFO(r.bytes << " B: measured " << r.busbw << " GB/s, error " << 100 * error << "%");
    // 4 MiB (+13.8%), 16 MiB (+15.6%) and 64 MiB (+10.2%): NVLS-tree in one, two and four pipeline
    // steps, faster than measured.
    CHECK(std::fabs(error) < 0.16);
    within_10 += std::fabs(error) < 0.10;
    ++checked;
  }
  CHECK(checked == 12);
  CHECK(within_10 >= 9);
}

TEST_CASE("2 nodes of H100 over EFA: the ring at 64 and 128 MiB within 5% with the AMD hosts' post overhead") {
  // NCCL charges every step of a ring across nodes at least the proxy's post overhead, 2 us on the
  // p5's AMD EPYC hosts, x3 with Simple (nothing here is fitted: NCCL's tuning constants). Without
  // it (an Intel host's 1 us, under the 3.4 us an NVLink Simple step already costs) the ring is
  // +14.3% and +5.0% at these sizes (printed beside each row). Which algorithm NCCL ran there the
  // log does not say; auto now runs NVLS-tree at both (the test above).
  const Topology amd = load_topology("aws-p5-efa", {{"topology.nodes", "2"}});
  const Topology intel = load_topology("aws-p5-efa", {{"topology.nodes", "2"}, {"topology.nic.host_cpu", "intel"}});
  int checked = 0;
  for (const Row& r : rows("aws_p5_2node.csv")) {
    if (r.bytes != 64.0 * (1 << 20) && r.bytes != 128.0 * (1 << 20)) continue;
    const double error = predicted_busbw(amd, r.bytes, Algorithm::ring) / r.busbw - 1;
    const double error_intel = predicted_busbw(intel, r.bytes, Algorithm::ring) / r.busbw - 1;
    INFO(r.bytes << " B: measured " << r.busbw << " GB/s, error " << 100 * error << "%, Intel host " << 100 * error_intel << "%");
    CHECK(std::fabs(error) < 0.05);
    ++checked;
  }
  CHECK(checked == 2);
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

TEST_CASE("NVLS-tree's step cost: the minimax fit on the InfiniBand rows >= 2 GiB is the presets' 7 us") {
  // Refit on a 0.5 us grid: the worst relative busbw error over the four rows, NVLS-tree forced (it
  // is what auto runs there). The EFA rows, held out, are the test above.
  Topology topo = load_topology("cluster-h100-ndr", {{"topology.nodes", "2"}});
  CHECK(topo.collectives.nvls_tree_step == rel(7e-6, 1e-12));
  std::vector<Row> big;
  for (const Row& r : rows("dgx_h100_2node.txt"))
    if (r.bytes >= 2147483648.0) big.push_back(r);
  REQUIRE(big.size() == 4);
  double best = -1, best_worst = 1e9;
  for (double us = 4; us <= 10; us += 0.5) {
    topo.collectives.nvls_tree_step = us * 1e-6;
    double worst = 0;
    for (const Row& r : big)
      worst = std::max(worst, std::fabs(predicted_busbw(topo, r.bytes, Algorithm::nvls_tree) / r.busbw - 1));
    if (worst < best_worst) best = us, best_worst = worst;
  }
  CHECK(best == rel(7.0, 1e-12));
  CHECK(best_worst < 0.03);   // 2.9% (+2.9% at 2 GiB, -2.7% at 16 GiB)
  // Without the step cost NVLS-tree is optimistic on every row, most at the smallest.
  topo.collectives.nvls_tree_step = 0;
  CHECK(predicted_busbw(topo, big[0].bytes, Algorithm::nvls_tree) / big[0].busbw - 1 > 0.10);
}
