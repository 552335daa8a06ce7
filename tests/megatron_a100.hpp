// The two Megatron-LM on Selene (A100) reference sets as one list of entries, and the constant
// fitted to them. Shared by the in-sample accuracy tests (test_accuracy_narayanan.cpp,
// test_accuracy_korthikanti.cpp), the leave-one-out test (test_calibration_holdout.cpp) and the
// accuracy report (bench/bench_accuracy.cpp), so it asserts nothing itself.
//
// Entries: Narayanan et al. 2021 Table 1 rows 1-5 (TFLOP/s per GPU) and Korthikanti et al. 2022
// Table 4 (one 22B layer's forward and backward ms, five experiments): 15 numbers.
// The one constant fitted to them (everything else comes from datasheets, NCCL and the H200
// kernel measurements, through the presets and the cost model):
//   score_bytes  HBM bytes per causal attention-score element of Megatron-LM's unfused softmax and
//                dropout (gpu.attention_score_bytes). The kernel sequence alone moves 26 B (13 per
//                element of the whole s x s matrix: gpu_cost.cpp); the fit lands at 27.6 B. It was 19.8 B
//                while the Narayanan rows ran at micro-batch 1 (not the script's 16, 16, 16, 8, 4)
//                and 42.9 B with the A100's best-case MAMF as the GEMM ceiling (not the sustained
//                rate, README "GEMMs, by shape").
// The A100's per-kernel launch overhead (4 us, topologies/cluster-a100-hdr.yaml) and its GEMM
// ceiling (MAMF x the sustained ratio measured on an H200) are not fitted to these entries.
#pragma once

#include "korthikanti_rows.hpp"
#include "narayanan_rows.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "tpsim/report.hpp"
#include "tpsim/run.hpp"

// The fit on all 15 entries (test_calibration_holdout.cpp refits it with each row held out).
inline constexpr double kMegatronScoreBytes = 27.6;
// In sample, every entry: the goal, 5% (the worst achieved: GPT 18.4B and 22B sequence-parallel
// forward, 4.5%; 2026-12-02).
inline constexpr double kInSampleBound = 0.05;

struct MegatronEntry {
  std::string name;   // "GPT 1.7B TFLOP/s", "22B sequence_parallel fwd ms"
  double measured = 0;
  std::string group;  // "narayanan" | the Korthikanti experiment
};

inline std::vector<MegatronEntry> megatron_entries() {
  std::vector<MegatronEntry> out;
  for (const NarayananRow& r : narayanan_rows())
    out.push_back({fmt::format("GPT {}B TF/s per GPU", r.params), r.tflops, "narayanan " + r.params});
  for (const KorthikantiRow& r : korthikanti_rows()) {
    out.push_back({fmt::format("22B {} fwd ms", r.experiment), r.forward_ms, "korthikanti " + r.experiment});
    out.push_back({fmt::format("22B {} bwd ms", r.experiment), r.backward_ms, "korthikanti " + r.experiment});
  }
  return out;
}

// tpsim's figure for every entry, in megatron_entries() order, with `score_bytes`.
inline std::vector<double> megatron_predictions(double score_bytes) {
  tpsim::RunOptions options;
  options.numerics = "off";
  std::vector<double> out;
  for (const NarayananRow& r : narayanan_rows()) {
    out.push_back(tpsim::run_scenario(narayanan_scenario(r, score_bytes), options).step->tflops_per_gpu);
  }
  for (const KorthikantiRow& r : korthikanti_rows()) {
    const tpsim::StepMetrics m = *tpsim::run_scenario(korthikanti_scenario(r, score_bytes), options).step;
    if (m.layer_samples <= 0) throw std::runtime_error("Korthikanti " + r.experiment + ": no one-layer timing");
    out.push_back(m.layer_forward_s * 1e3);
    out.push_back(m.layer_backward_s * 1e3);
  }
  return out;
}

// The entries' predictions on a grid of the constant, interpolated linearly between grid points
// (each entry moves smoothly and monotonically with it), and the minimax fit over any subset.
struct MegatronFit {
  std::vector<MegatronEntry> entries = megatron_entries();
  std::vector<double> grid = {10, 25, 40, 55};
  std::vector<std::vector<double>> predicted;
  MegatronFit() {
    for (double b : grid) predicted.push_back(megatron_predictions(b));
  }
  // Entry e's relative error (predicted / measured - 1) at `score_bytes`.
  double error(size_t e, double score_bytes) const {
    const size_t k = std::min<size_t>(grid.size() - 2, size_t(std::upper_bound(grid.begin(), grid.end(), score_bytes) - grid.begin()) - 1);
    const double f = (score_bytes - grid[k]) / (grid[k + 1] - grid[k]);
    return ((1 - f) * predicted[k][e] + f * predicted[k + 1][e]) / entries[e].measured - 1;
  }
  // The value that minimises the largest |error| over the entries `in` keeps, on a 0.1 B grid.
  double fit(const std::function<bool(size_t)>& in) const {
    double best = 0, best_worst = 1e9;
    for (double b = grid.front(); b <= grid.back(); b += 0.1) {
      double w = 0;
      for (size_t e = 0; e < entries.size(); ++e)
        if (in(e)) w = std::max(w, std::fabs(error(e, b)));
      if (w < best_worst) best_worst = w, best = b;
    }
    return best;
  }
  // Whether entry e belongs to `fold`: a group ("narayanan 1.7") or a whole table ("narayanan").
  bool in_fold(size_t e, const std::string& fold) const {
    return entries[e].group == fold || entries[e].group.rfind(fold + " ", 0) == 0;
  }
};
