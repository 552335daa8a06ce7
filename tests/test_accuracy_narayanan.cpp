// Accuracy against Megatron-LM: Narayanan et al. SC'21 Table 1 rows 1-5 (GPT 1.7B ... 39.1B on
// Selene, A100 80 GB + 8x HDR per node), each row's TP, PP, GPUs and batch with sequence 2048,
// full activation recomputation, and the micro-batch, DDP and fp16 of the paper's run script
// (narayanan_rows.hpp), with Megatron-LM 2021's scheduling (weight gradients added to the main
// gradient by a kernel, the TP input-gradient all-reduce after the weight gradient), simulated on
// cluster-a100-hdr.
//
// In sample: the one constant fitted to these rows and Korthikanti et al.'s Table 4 together
// (megatron_a100.hpp: the attention score bytes); test_calibration_holdout.cpp has the
// held-out figures. GEMMs: the A100's sustained ceiling (its MAMF, datasheets.md, x the sustained
// ratio measured on an H200) with the shape model fitted on the measured H200 table; memory-bound
// kernels at their H200-measured HBM efficiency. Goal and bound 5% per row.
#include <doctest/doctest.h>

#include "megatron_a100.hpp"

#include <cmath>
#include <fmt/format.h>
#include <string>
#include <vector>

using namespace tpsim;

TEST_CASE("Narayanan et al. 2021 Table 1 rows 1-5: TFLOP/s per GPU against Megatron-LM") {
  const std::vector<NarayananRow> rows = narayanan_rows();
  REQUIRE(rows.size() == 5);
  std::string table = "model     TP PP GPUs batch  paper TF/s  predicted TF/s  error   step time\n";
  for (const NarayananRow& r : rows) {
    // What `tpsim run -t cluster-a100-hdr -m gpt-<N>b --set ... --numerics off` runs: no other flag.
    RunOptions options;
    options.numerics = "off";
    const RunResult result = run_scenario(narayanan_scenario(r, kMegatronScoreBytes), options);
    REQUIRE(result.step);
    const double predicted = result.step->tflops_per_gpu;
    const double error = predicted / r.tflops - 1;
    table += fmt::format("{:<9} {:>2} {:>2} {:>4} {:>5} {:>11.0f} {:>15.1f} {:>+6.1f}% {:>9.3f} s\n", r.params + "B", r.tp,
                         r.pp, r.gpus, r.batch, r.tflops, predicted, 100 * error, result.step->step_time_s);
    CHECK_MESSAGE(std::fabs(error) < kInSampleBound, "GPT ", r.params, "B: predicted ", predicted, " vs paper ", r.tflops);
  }
  MESSAGE(table);
}
