// Accuracy against Megatron-LM: Narayanan et al. SC'21 Table 1 rows 1-5 (GPT 1.7B ... 39.1B on
// Selene, A100 80 GB + 8x HDR per node), each row's TP, PP, GPUs and batch with sequence 2048,
// micro-batch 1 and full activation recomputation, simulated on topologies/cluster-a100-hdr.yaml.
// Asserts predicted TFLOP/s per GPU within 10% of the paper's for every row.
//
// Constants (the only ones fitted to these rows; everything else comes from datasheets.md and
// the NCCL facts in data/reference, through the topology preset):
//   kMegatron2021ScoreBytes = 40 B of HBM traffic per causal attention score element per forward
//     pass (backward twice). Megatron-LM in 2021 ran attention unfused: the QK^T GEMM writes the
//     full s x s scores, the fused scale-mask-softmax reads and writes them, attention dropout reads
//     them and writes them and a mask, and the PV GEMM reads them again: ~13 B per element of the
//     full matrix per pass = ~26 B per element of its causal half, more with the batched GEMMs'
//     inefficiency at k = head_dim. Fitted as one constant over the five rows, with the presets'
//     calibrated NCCL protocol model on (topology.collectives): 40 B puts every row within 6.1%
//     (1.7B +3.0%, 3.6B -3.0%, 7.5B -5.2%, 18.4B -6.0%, 39.1B +6.1%). The spread that is left is
//     systematic: rows 3-4 (TP 4-8 inside a node) come out slow, row 5 (the only PP = 2 row) fast;
//     we do not fudge either per row. A fused flash attention (the presets' default, 0 B) keeps the
//     scores on chip.
//   GEMM ceiling: not fitted, the A100 MAMF fraction 0.869 from datasheets.md (in the preset).
#include <doctest/doctest.h>

#include "narayanan_rows.hpp"

#include <cmath>
#include <fmt/format.h>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tpsim/report.hpp"
#include "tpsim/run.hpp"

using namespace tpsim;

namespace {

constexpr double kMegatron2021ScoreBytes = 40;

}  // namespace

TEST_CASE("Narayanan et al. 2021 Table 1 rows 1-5: TFLOP/s per GPU within 10% of Megatron-LM") {
  const std::vector<NarayananRow> rows = narayanan_rows();
  REQUIRE(rows.size() == 5);
  std::string table = "model     TP PP GPUs batch  paper TF/s  predicted TF/s  error   step time\n";
  for (const NarayananRow& r : rows) {
    // What `tpsim run -t cluster-a100-hdr -m gpt-<N>b --set ... --numerics off` runs: no other flag.
    RunOptions options;
    options.numerics = "off";
    const RunResult result = run_scenario(narayanan_scenario(r, kMegatron2021ScoreBytes), options);
    REQUIRE(result.step);
    const double predicted = result.step->tflops_per_gpu;
    const double error = predicted / r.tflops - 1;
    table += fmt::format("{:<9} {:>2} {:>2} {:>4} {:>5} {:>11.0f} {:>15.1f} {:>+6.1f}% {:>9.3f} s\n", r.params + "B", r.tp,
                         r.pp, r.gpus, r.batch, r.tflops, predicted, 100 * error, result.step->step_time_s);
    CHECK_MESSAGE(std::fabs(error) < 0.10, "GPT ", r.params, "B: predicted ", predicted, " vs paper ", r.tflops);
  }
  MESSAGE(table);
}
