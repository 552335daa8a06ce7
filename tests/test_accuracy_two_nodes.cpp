// Accuracy across two nodes of 8x H100 (16 GPUs), against two measured nccl-tests all-reduce tables,
// leave-one-table-out:
//   dgx_h100_2node.txt (InfiniBand NDR, preset cluster-h100-ndr): NVLS-tree's NVLink rate
//     (collectives.nvls_tree_efficiency, 0.905 of one node's NVLS) is fitted on its rows >= 2 GiB
//     (minimax); its rows below 2 GiB are the log's noisy ones (1 MiB in 764 us, 6x the EFA time)
//     and are not checked.
//   aws_p5_2node.csv (EFA, preset aws-p5-efa): held out from that fit; its NIC latency is fitted on
//     the 8 B row, which is latency alone and not scored here; every row >= 1 MiB is checked.
// A table is what NCCL picked, so the rows run NCCL 2.23's pick (collectives.nccl_version); the
// preset's own `auto` (tpsim's fastest) is held at what it reaches. Bounds: the goal, busbw
// within 10%, or the error reached where it is missed (README "Calibration and accuracy").
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <numeric>
#include <string>
#include <vector>

#include "tpsim/engine.hpp"
#include "tpsim/spec.hpp"
#include "csv_cells.hpp"
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
    const std::vector<std::string> cell = csv_cells(line);
    REQUIRE(cell.size() == 4);
    out.push_back({std::stod(cell[0]), std::stod(cell[3])});
  }
  return out;
}

CollectiveTiming timed(const Topology& topo, double bytes, Algorithm algorithm, Fidelity fidelity = Fidelity::flow) {
  std::vector<int> group(16);
  std::iota(group.begin(), group.end(), 0);
  return time_collective(topo, CollectiveOp::all_reduce, algorithm, group, bytes, EngineOptions{fidelity});
}

double predicted_busbw(const Topology& topo, double bytes, Algorithm algorithm = Algorithm::automatic) {
  return timed(topo, bytes, algorithm).busbw / 1e9;
}

const std::vector<Override> kNccl223 = {{"topology.nodes", "2"}, {"topology.collectives.nccl_version", "2.23"}};

}  // namespace

TEST_CASE("2 nodes of H100 over EFA (AWS p5): all-reduce busbw >= 1 MiB within 10%, NCCL 2.23's pick") {
  // NCCL's pick is NVLS-tree at every size (the p5's four EFA per GPU reach NCCL as one 400 Gb/s
  // device); the worst rows are 1 MiB (+8.1%) and 64 MiB (-7.6%, four pipeline steps).
  const Topology topo = load_topology("aws-p5-efa", kNccl223);
  int checked = 0;
  for (const Row& r : rows("aws_p5_2node.csv")) {
    if (r.bytes < (1 << 20)) continue;
    const CollectiveTiming t = timed(topo, r.bytes, Algorithm::automatic);
    const double error = t.busbw / 1e9 / r.busbw - 1;
    INFO(r.bytes << " B: measured " << r.busbw << " GB/s, error " << 100 * error << "%");
    CHECK(t.algorithm == Algorithm::nvls_tree);
    CHECK(std::fabs(error) < 0.10);
    ++checked;
  }
  CHECK(checked == 12);
}

TEST_CASE("2 nodes of H100 over EFA: the preset's own pick within 10% but at 16 MiB, where it runs the tree") {
  // tpsim's fastest at 16 MiB is the tree (+17.2%): its chained NVLink stages are not priced as
  // NVLS-tree's roles are (collective_price.cpp), so it is optimistic where NCCL's own model puts it
  // 38% slower than NVLS-tree. At 64 and 128 MiB it is the ring, within 3%.
  const Topology topo = load_topology("aws-p5-efa", {{"topology.nodes", "2"}});
  int within_10 = 0, checked = 0;
  for (const Row& r : rows("aws_p5_2node.csv")) {
    if (r.bytes < (1 << 20)) continue;
    const CollectiveTiming t = timed(topo, r.bytes, Algorithm::automatic);
    const double error = t.busbw / 1e9 / r.busbw - 1;
    INFO(r.bytes << " B: measured " << r.busbw << " GB/s, error " << 100 * error << "% (" << to_string(t.algorithm) << ")");
    CHECK(std::fabs(error) < (r.bytes == 16.0 * (1 << 20) ? 0.18 : 0.10));
    within_10 += std::fabs(error) < 0.10;
    ++checked;
  }
  CHECK(checked == 12);
  CHECK(within_10 == 11);
}

TEST_CASE("NVLS-tree: each NVLink stage takes the pipeline's step, so one step's chunk crosses four of them") {
  // One pipeline step (sizes up to 4 MiB here): from 2 to 4 MiB the time grows by the four NVLink
  // stages' step times (each S (1 + 1/L) per GPU at (1 + 1/L) x the one-node NVLS rate x 0.905, i.e.
  // S / (480 GB/s / 1.75 x 0.905)) and the two network hops' (S / 2L per head at 4 x 100 Gb/s x
  // 0.97): 39.2 us, where the stages at their own rates would add 22 us. Flow and step agree.
  const Topology topo = load_topology("aws-p5-efa", {{"topology.nodes", "2"}});
  const double ds = 2.0 * (1 << 20);
  const double stage = ds / (480e9 / 1.75 * 0.905), hop = ds / 16 / (4 * 100e9 / 8 * 0.97);
  for (Fidelity fidelity : {Fidelity::flow, Fidelity::step}) {
    const CollectiveTiming two = timed(topo, ds, Algorithm::nvls_tree, fidelity);
    const CollectiveTiming four = timed(topo, 2 * ds, Algorithm::nvls_tree, fidelity);
    REQUIRE(two.instance.pipeline == 1);
    REQUIRE(four.instance.pipeline == 1);
    CHECK(four.seconds - two.seconds == rel(4 * stage + 2 * hop, 0.01));
  }
}

TEST_CASE("2 nodes of H100 over EFA: the ring at 64 and 128 MiB within 5% with the AMD hosts' post overhead") {
  // NCCL charges every step of a ring across nodes at least the proxy's post overhead, 2 us on the
  // p5's AMD EPYC hosts, x3 with Simple (nothing here is fitted: NCCL's tuning constants). Without
  // it (an Intel host's 1 us, under the 3.4 us an NVLink Simple step already costs) the ring is
  // +14.3% and +5.0% at these sizes (printed beside each row). Which algorithm NCCL ran there the
  // log does not say: NCCL 2.23's model picks NVLS-tree (the first test), tpsim's own pick this ring.
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

TEST_CASE("NVLS-tree's NVLink rate: the minimax fit on the InfiniBand rows >= 2 GiB is the presets' 0.905") {
  // Refit on a 0.005 grid: the worst relative busbw error over the four rows, NVLS-tree forced (it
  // is what auto runs there). The EFA rows, held out, are the tests above.
  Topology topo = load_topology("cluster-h100-ndr", {{"topology.nodes", "2"}});
  CHECK(topo.collectives.nvls_tree_efficiency == rel(0.905, 1e-12));
  std::vector<Row> big;
  for (const Row& r : rows("dgx_h100_2node.txt"))
    if (r.bytes >= 2147483648.0) big.push_back(r);
  REQUIRE(big.size() == 4);
  double best = -1, best_worst = 1e9;
  for (int i = 160; i <= 200; ++i) {   // 0.800 .. 1.000
    topo.collectives.nvls_tree_efficiency = i * 0.005;
    double worst = 0;
    for (const Row& r : big)
      worst = std::max(worst, std::fabs(predicted_busbw(topo, r.bytes, Algorithm::nvls_tree) / r.busbw - 1));
    if (worst < best_worst) best = i * 0.005, best_worst = worst;
  }
  CHECK(best == rel(0.905, 1e-9));
  CHECK(best_worst < 0.026);   // 2.5% (+2.5% at 2 GiB, -2.0% at 16 GiB)
  // At the one-node NVLS rate NVLS-tree is optimistic on every row.
  topo.collectives.nvls_tree_efficiency = 1;
  for (const Row& r : big) CHECK(predicted_busbw(topo, r.bytes, Algorithm::nvls_tree) / r.busbw - 1 > 0.05);
}

TEST_CASE("NVLS-tree: flow fidelity runs each role apart, as step does, so both agree in two and four steps") {
  // A flow actor per schedule participant, not per GPU: a GPU's scatter no longer waits for the
  // network data its head role received (which had made flow 11% slower than step at 32 MiB).
  const Topology topo = load_topology("aws-p5-efa", {{"topology.nodes", "2"}});
  for (double mib : {16.0, 32.0}) {
    const CollectiveTiming flow = timed(topo, mib * (1 << 20), Algorithm::nvls_tree, Fidelity::flow);
    const CollectiveTiming step = timed(topo, mib * (1 << 20), Algorithm::nvls_tree, Fidelity::step);
    INFO(mib << " MiB: flow " << flow.seconds * 1e6 << " us, step " << step.seconds * 1e6 << " us");
    REQUIRE(flow.instance.pipeline >= 2);
    CHECK(flow.seconds == rel(step.seconds, 1e-3));
  }
}

TEST_CASE("The other way round: NVLS-tree's efficiency fitted on the EFA table predicts the InfiniBand rows >= 2 GiB") {
  // Minimax on a 0.01 grid over the EFA rows >= 1 MiB (NCCL's pick, as above): 0.90, worst 8.0%;
  // with it the InfiniBand rows >= 2 GiB, held out, come out within 2.6% (-2.6% at 16 GiB).
  Topology efa = load_topology("aws-p5-efa", kNccl223);
  std::vector<Row> efa_rows, ib_rows;
  for (const Row& r : rows("aws_p5_2node.csv"))
    if (r.bytes >= (1 << 20)) efa_rows.push_back(r);
  for (const Row& r : rows("dgx_h100_2node.txt"))
    if (r.bytes >= 2147483648.0) ib_rows.push_back(r);
  REQUIRE(efa_rows.size() == 12);
  REQUIRE(ib_rows.size() == 4);
  double best = -1, best_worst = 1e9;
  for (int i = 88; i <= 96; ++i) {
    efa.collectives.nvls_tree_efficiency = i * 0.01;
    double worst = 0;
    for (const Row& r : efa_rows) worst = std::max(worst, std::fabs(predicted_busbw(efa, r.bytes) / r.busbw - 1));
    if (worst < best_worst) best = i * 0.01, best_worst = worst;
  }
  CHECK(best == rel(0.90, 1e-9));
  CHECK(best_worst < 0.081);
  Topology ib = load_topology("cluster-h100-ndr", {{"topology.nodes", "2"}});
  ib.collectives.nvls_tree_efficiency = best;
  for (const Row& r : ib_rows) {
    const double error = predicted_busbw(ib, r.bytes) / r.busbw - 1;
    INFO(r.bytes << " B: measured " << r.busbw << " GB/s, error " << 100 * error << "%");
    CHECK(std::fabs(error) < 0.03);
  }
}
