// Honest calibration: every fitted constant is refitted here on part of the reference data and
// checked on rows it was not fitted on. The in-sample checks (test_engine_calibration.cpp,
// test_accuracy_narayanan.cpp) say the presets reproduce their own fitting rows; these say the
// constants carry physics, not rows.
//
//   intra.efficiency (dgx-h100): fitted on one collective's rows >= 1 MiB (minimax busbw error),
//     checked on the other two collectives' rows >= 1 MiB (together_h100_1node_ring.csv).
//   collectives.launch_latency (dgx-h100): fitted on all-reduce rows < 1 MiB, checked on the
//     all-gather and reduce-scatter rows < 1 MiB.
//   intra.efficiency (dgx-a100): fitted on the rows >= 256 MiB of oci_a100_bm_gpu4_8.csv,
//     checked on the rows from 1 to 128 MiB.
//   Megatron-LM on A100 (cluster-a100-hdr): attention score bytes, fitted (minimax relative
//     error) on Narayanan et al. Table 1 rows 1-5 and Korthikanti et al. Table 4 with one row (or
//     experiment, or whole table) held out, checked on what was held out (megatron_a100.hpp).
//   gpu.hbm_efficiency (hgx-h200): fitted to a zero median time error on the decode GEMMs of the
//     GPT models in h200_kernels_2026-11-30/gemm_h200.csv, checked on those of the Llama models.
// The collective bounds are the in-sample ones (10% busbw >= 1 MiB, 25% time below): a constant
// that only fits its own rows fails them out of sample.
#include <doctest/doctest.h>

#include "megatron_a100.hpp"
#include "nccl_tables.hpp"
#include "relative.hpp"

#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <fstream>
#include <functional>
#include <map>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "tpsim/cost.hpp"
#include "tpsim/engine.hpp"
#include "tpsim/report.hpp"
#include "tpsim/run.hpp"

using namespace tpsim;

namespace {

// Megatron entries held out: the goal, 5% (the largest error achieved: GPT 18.4B, 4.7%,
// 2026-12-02). A whole table held out is reported, not bounded: 7.7%.
constexpr double kHeldOutBound = 0.05;

using Row = NcclRow;

// The rows of `tag` at or above 1 MiB (`large`) or below it.
std::vector<Row> collective_rows(const std::string& file, const std::string& tag, bool large) {
  std::vector<Row> rows;
  for (const Row& r : nccl_rows(file, tag))
    if ((r.bytes >= (1 << 20)) == large) rows.push_back(r);
  REQUIRE_MESSAGE(!rows.empty(), "no '" << tag << "' rows " << (large ? ">=" : "<") << " 1 MiB in " << file);
  return rows;
}

// Signed relative errors of the model on `rows`: busbw for large rows, time for small ones.
std::vector<double> errors(const Topology& t, CollectiveOp op, const std::vector<Row>& rows) {
  std::vector<int> group(8);
  std::iota(group.begin(), group.end(), 0);
  std::vector<double> e;
  for (const Row& r : rows) {
    const CollectiveTiming c = time_collective(t, op, Algorithm::ring, group, r.bytes, EngineOptions{Fidelity::flow});
    e.push_back(r.bytes >= (1 << 20) ? c.busbw / 1e9 / r.busbw - 1 : c.seconds * 1e6 / r.time_us - 1);
  }
  return e;
}

double worst(const std::vector<double>& e) {
  double w = 0;
  for (double x : e) w = std::max(w, std::fabs(x));
  return w;
}

// The value in [lo, hi] that minimises the largest |error| of `error_of(value)`, where every row's
// error moves one way with the value: bisect on the balance of the most positive and most negative
// error (the minimax point of monotone functions).
double minimax_fit(double lo, double hi, bool increasing, const std::function<std::vector<double>(double)>& error_of) {
  for (int i = 0; i < 40; ++i) {
    const double mid = 0.5 * (lo + hi);
    const std::vector<double> e = error_of(mid);
    const double balance = *std::max_element(e.begin(), e.end()) + *std::min_element(e.begin(), e.end());
    // balance > 0: predictions too high overall; move the value the way that lowers them.
    if ((balance > 0) == increasing) hi = mid;
    else lo = mid;
  }
  return 0.5 * (lo + hi);
}

const char* op_tag(CollectiveOp op) {
  return op == CollectiveOp::all_reduce ? "allreduce_ring" : op == CollectiveOp::all_gather ? "allgather_ring" : "reducescatter_ring";
}

}  // namespace

TEST_CASE("dgx-h100 link efficiency fitted on one collective predicts the other two (>= 1 MiB, 10% busbw)") {
  const std::vector<CollectiveOp> ops = {CollectiveOp::all_reduce, CollectiveOp::all_gather, CollectiveOp::reduce_scatter};
  const Topology preset = load_topology("dgx-h100");
  std::string table = "fitted on        efficiency   held-out worst error\n";
  std::vector<double> fits;
  for (CollectiveOp fit_on : ops) {
    const std::vector<Row> fit_rows = collective_rows("together_h100_1node_ring.csv", op_tag(fit_on), true);
    const double eff = minimax_fit(0.5, 1.0, /*increasing=*/true, [&](double x) {
      Topology t = preset;
      t.intra.efficiency = x;
      return errors(t, fit_on, fit_rows);
    });
    fits.push_back(eff);
    Topology t = preset;
    t.intra.efficiency = eff;
    double held_out_worst = 0;
    for (CollectiveOp check : ops) {
      if (check == fit_on) continue;
      const std::vector<double> e = errors(t, check, collective_rows("together_h100_1node_ring.csv", op_tag(check), true));
      CAPTURE(to_string(fit_on));
      CAPTURE(to_string(check));
      CHECK(worst(e) < 0.10);
      held_out_worst = std::max(held_out_worst, worst(e));
    }
    table += fmt::format("{:<16} {:>10.4f}   {:>6.1f}%\n", to_string(fit_on), eff, 100 * held_out_worst);
  }
  // A physical constant: the three fits agree, and the preset's value is among them.
  const auto [lo, hi] = std::minmax_element(fits.begin(), fits.end());
  CHECK(*hi == rel(*lo, 0.05));
  CHECK(preset.intra.efficiency >= *lo * 0.98);
  CHECK(preset.intra.efficiency <= *hi * 1.02);
  MESSAGE(table);
}

TEST_CASE("dgx-h100 launch latency fitted on small all-reduces predicts small all-gathers and reduce-scatters (25% time)") {
  const Topology preset = load_topology("dgx-h100");
  const std::vector<Row> fit_rows = collective_rows("together_h100_1node_ring.csv", "allreduce_ring", false);
  const double latency = minimax_fit(0.0, 60e-6, /*increasing=*/true, [&](double x) {
    Topology t = preset;
    t.collectives.launch_latency = x;
    return errors(t, CollectiveOp::all_reduce, fit_rows);
  });
  Topology t = preset;
  t.collectives.launch_latency = latency;
  for (CollectiveOp check : {CollectiveOp::all_gather, CollectiveOp::reduce_scatter}) {
    const std::vector<double> e = errors(t, check, collective_rows("together_h100_1node_ring.csv", op_tag(check), false));
    CAPTURE(to_string(check));
    CAPTURE(latency * 1e6);
    CHECK(worst(e) < 0.25);
  }
  MESSAGE(fmt::format("launch latency fitted on all-reduce < 1 MiB: {:.1f} us (preset {:.1f} us)", latency * 1e6,
                      preset.collectives.launch_latency * 1e6));
}

TEST_CASE("dgx-a100 link efficiency fitted on the bulk rows (>= 256 MiB) predicts 1-128 MiB (10% busbw)") {
  // The efficiency is the large-message asymptote (protocol overhead on the wire); the mid sizes
  // are the protocol and latency model's, with no constant of their own. An interleaved split
  // (fit the even rows, check the odd) gives 10.3% on the 32 MiB row: the measured table dips
  // from 199 to 197 GB/s between 64 and 128 MiB, and the model is optimistic at 32 MiB (issue 12).
  const Topology preset = load_topology("dgx-a100");
  const std::vector<Row> all = collective_rows("oci_a100_bm_gpu4_8.csv", "a100_1node", true);
  std::vector<Row> bulk, mid;
  for (const Row& r : all) (r.bytes >= (256 << 20) ? bulk : mid).push_back(r);
  REQUIRE(!mid.empty());
  const double eff = minimax_fit(0.5, 1.0, /*increasing=*/true, [&](double x) {
    Topology t = preset;
    t.intra.efficiency = x;
    return errors(t, CollectiveOp::all_reduce, bulk);
  });
  Topology t = preset;
  t.intra.efficiency = eff;
  const std::vector<double> e = errors(t, CollectiveOp::all_reduce, mid);
  CAPTURE(eff);
  CHECK(worst(e) < 0.10);
  CHECK(preset.intra.efficiency == rel(eff, 0.02));   // the preset's constant is this fit
  MESSAGE(fmt::format("a100 efficiency fitted on {} rows >= 256 MiB: {:.4f} (preset {:.4f}); worst on {} rows 1-128 MiB {:.1f}%",
                      bulk.size(), eff, preset.intra.efficiency, mid.size(), 100 * worst(e)));
}

TEST_CASE("Megatron on A100: the score bytes fitted with each row, experiment or table held out") {
  spdlog::set_level(spdlog::level::warn);   // 40 runs' progress lines would bury the table
  const MegatronFit m;
  const std::vector<MegatronEntry>& entries = m.entries;
  REQUIRE(entries.size() == 15);
  const double all = m.fit([](size_t) { return true; });
  CHECK(kMegatronScoreBytes == rel(all, 0.03));   // tpsim's constant is this fit

  std::vector<std::string> folds;
  for (const MegatronEntry& e : entries)
    if (std::find(folds.begin(), folds.end(), e.group) == folds.end()) folds.push_back(e.group);
  folds.push_back("narayanan");     // a whole table held out: fitted on the other paper alone
  folds.push_back("korthikanti");
  std::string table = fmt::format("all 15 entries: {:.1f} B/score\n", all);
  table += "held out                                  fitted B/score   held-out entry errors\n";
  std::vector<double> row_errors(entries.size());
  for (const std::string& fold : folds) {
    const double b = m.fit([&](size_t e) { return !m.in_fold(e, fold); });
    std::string errs;
    for (size_t e = 0; e < entries.size(); ++e) {
      if (!m.in_fold(e, fold)) continue;
      errs += fmt::format(" {:+.1f}%", 100 * m.error(e, b));
      if (fold != "narayanan" && fold != "korthikanti") row_errors[e] = m.error(e, b);
    }
    table += fmt::format("{:<42} {:>14.1f}  {}\n", fold, b, errs);
  }
  // Each entry's error when its own row (Narayanan) or experiment (Korthikanti) was held out.
  table += "leave-one-row-out errors per entry (goal and bound 5%)\n";
  for (size_t e = 0; e < entries.size(); ++e) {
    table += fmt::format("  {:<40} {:>+6.1f}%\n", entries[e].name, 100 * row_errors[e]);
    CAPTURE(entries[e].name);
    CHECK(std::fabs(row_errors[e]) < kHeldOutBound);
  }
  MESSAGE(table);
}

namespace {

// One measured GEMM of gemm_h200.csv: m,n,k,dtype,time_us,layout,tflops,source.
struct GemmRow {
  int64_t m = 0, n = 0, k = 0;
  double seconds = 0;
  std::string source;   // "llama2-7b tp8 decode b1 mlp.fc1 fwd"
};

// The decode-shape rows (m = 1, 8, 32, 128, 256 tokens) of the models whose name starts with `family`.
std::vector<GemmRow> decode_gemms(const std::string& family) {
  std::ifstream in(std::string(TPSIM_REFERENCE_DIR) + "/h200_kernels_2026-11-30/gemm_h200.csv");
  REQUIRE_MESSAGE(in.good(), "cannot read gemm_h200.csv");
  std::vector<GemmRow> rows;
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#' || line.rfind("m,", 0) == 0) continue;
    std::stringstream fields(line);
    std::string m, n, k, dtype, us, layout, tflops, source;
    std::getline(fields, m, ','), std::getline(fields, n, ','), std::getline(fields, k, ','), std::getline(fields, dtype, ',');
    std::getline(fields, us, ','), std::getline(fields, layout, ','), std::getline(fields, tflops, ',');
    std::getline(fields, source);
    if (dtype != "bf16" || source.find(" decode ") == std::string::npos || source.rfind(family, 0) != 0) continue;
    rows.push_back({std::stoll(m), std::stoll(n), std::stoll(k), std::stod(us) * 1e-6, source});
  }
  return rows;
}

// Signed relative time errors of the GEMM model on `rows`, per shape and per (model, tp, batch):
// the sum of a decode step's GEMMs, which is what a step's time adds up.
struct GemmErrors {
  std::vector<double> shapes, layers;
};
GemmErrors gemm_errors(const GpuSpec& gpu, const std::vector<GemmRow>& rows) {
  GemmErrors e;
  std::map<std::string, std::pair<double, double>> sums;   // "model tp batch" -> (predicted, measured)
  for (const GemmRow& r : rows) {
    const double t = gemm_cost(gpu, GemmInfo{r.m, r.n, r.k}, DType::bf16).seconds;
    e.shapes.push_back(t / r.seconds - 1);
    std::stringstream words(r.source);
    std::string model, tp, phase, batch;
    words >> model >> tp >> phase >> batch;
    auto& [predicted, measured] = sums[model + " " + tp + " " + batch];
    predicted += t, measured += r.seconds;
  }
  for (const auto& [key, pm] : sums) e.layers.push_back(pm.first / pm.second - 1);
  return e;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double mean_abs(const std::vector<double>& v) {
  double sum = 0;
  for (double x : v) sum += std::fabs(x);
  return v.empty() ? 0 : sum / double(v.size());
}

std::string summary(const std::vector<double>& e) {
  return fmt::format("mean |error| {:.1f}%, median {:+.1f}%, worst {:.1f}% over {}", 100 * mean_abs(e), 100 * median(e),
                     100 * worst(e), e.size());
}

// The realised HBM fraction giving a zero median error on `rows` (predictions fall as it rises).
double fit_hbm_efficiency(const GpuSpec& preset, const std::vector<GemmRow>& rows) {
  double lo = 0.3, hi = 1.0;
  for (int i = 0; i < 40; ++i) {
    GpuSpec gpu = preset;
    gpu.hbm_efficiency = 0.5 * (lo + hi);
    if (median(gemm_errors(gpu, rows).shapes) > 0) lo = gpu.hbm_efficiency;
    else hi = gpu.hbm_efficiency;
  }
  return 0.5 * (lo + hi);
}

}  // namespace

TEST_CASE("hgx-h200 realised HBM fraction fitted on GPT decode GEMMs predicts the Llama ones") {
  const GpuSpec preset = load_topology("hgx-h200").gpu;
  const std::vector<GemmRow> gpt = decode_gemms("gpt"), llama = decode_gemms("llama");
  REQUIRE(gpt.size() == 240);
  REQUIRE(llama.size() == 160);
  // Fitted on top of the GEMM model's operand fraction (GemmShape::hbm_efficiency 0.84, fitted on
  // the same H200's whole table): the fit reaches its bound, 1 (unbounded it would be 1.04, the
  // library fraction being a little pessimistic on decode shapes), so hgx-h200 carries 1.
  const double fitted = fit_hbm_efficiency(preset, gpt);
  // The preset carries the fitted value, rounded.
  CHECK(preset.hbm_efficiency == rel(fitted, 0.01));
  GpuSpec gpu = preset;
  gpu.hbm_efficiency = fitted;
  const GemmErrors in_sample = gemm_errors(gpu, gpt), held_out = gemm_errors(gpu, llama);
  // Bounds a little above what the model reaches (11.9% per shape, 8.2% per decode step's GEMMs
  // held out; 11.8% and 6.9% under the roofline GEMM model this fraction was first fitted on,
  // before the merge with the per-shape model): a fraction that only fitted its own rows, or a
  // model change that loses the weight
  // bandwidth bound, fails them. The worst shapes are the smallest (2-3 us measured against the
  // preset's 4 us launch overhead) and m = 128 shapes where cuBLAS picks a slow kernel.
  CHECK(mean_abs(held_out.shapes) < 0.125);
  CHECK(mean_abs(held_out.layers) < 0.085);
  CHECK(std::fabs(median(held_out.shapes)) < 0.03);
  CHECK(worst(held_out.layers) < 0.32);
  // The other way round gives nearly the same constant: physics, not rows.
  const double reverse = fit_hbm_efficiency(preset, llama);
  CHECK(reverse == rel(fitted, 0.05));
  GpuSpec roofline = preset;
  roofline.hbm_efficiency = 1;
  MESSAGE(fmt::format("hbm_efficiency fitted on GPT decode GEMMs: {:.4f} (preset {:g}; fitted on Llama: {:.4f})\n"
                      "  in sample (GPT), per shape:        {}\n"
                      "  in sample (GPT), per step's GEMMs: {}\n"
                      "  held out (Llama), per shape:       {}\n"
                      "  held out (Llama), per step's GEMMs: {}\n"
                      "  at the roofline (1.0), Llama per shape: {}",
                      fitted, preset.hbm_efficiency, reverse, summary(in_sample.shapes), summary(in_sample.layers),
                      summary(held_out.shapes), summary(held_out.layers), summary(gemm_errors(roofline, llama).shapes)));
}
