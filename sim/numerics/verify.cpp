// verify(): run the reference (tp = 1), keep every tensor that names a global tensor, run the
// sharded programs and compare each such tensor, when its final value is written, with the slice
// of the reference it stands for.
#include <fmt/core.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <map>

#include "numerics/executor.hpp"
#include "numerics/parallel.hpp"
#include "numerics/tolerance.hpp"
#include "tpsim/numerics.hpp"

namespace tpsim {

const TensorCheck* NumericsReport::first_failure() const {
  for (const auto& c : checks)
    if (!c.ok) return &c;
  return nullptr;
}

std::string instance_key(CollectiveOp op, const std::string& described) {
  return std::string(to_string(op)) + " " + described;
}

std::string instance_key(CollectiveOp op, const CollectiveInstance& instance) {
  return instance_key(op, describe(instance));
}

std::string describe(const TensorCheck& c) {
  return fmt::format("op {} wrote {} (rank {}): max abs {:.3e}, max rel {:.3e} {} tol {:.3e} [{}]", c.op, c.tensor, c.rank,
                     c.max_abs, c.max_rel, c.ok ? "<=" : ">", c.tolerance, c.rule);
}

namespace {

// How far a shard is from the slice of the reference it stands for, read in place (no slice is
// copied out): the largest |shard - reference| and |reference|, over rows split across cores (a
// maximum does not depend on the split). An element finite on one side and not on the other, or
// non-finite on both but not the same value, counts as an infinite difference.
struct Distance {
  double max_abs = 0, scale = 0;
};
Distance distance(const numerics::Mat& m, const numerics::Mat& full, const TensorDesc& d, bool whole) {
  if (!whole) numerics::check_reference_shape(full, d);
  std::vector<int64_t> gj(m.cols());
  for (int64_t j = 0; j < m.cols(); ++j) gj[j] = whole ? j : numerics::global_col(d, j);
  const int parts = numerics::worker_count();
  std::vector<Distance> part(parts);
  std::atomic<int> next_part{0};
  numerics::parallel_for(m.rows(), [&](int64_t begin, int64_t end) {
    Distance& out = part[next_part.fetch_add(1)];
    for (int64_t i = begin; i < end; ++i) {
      const float* got = m.data() + i * m.cols();
      const float* want = full.data() + (whole ? i : numerics::global_row(d, i)) * full.cols();
      float worst = 0, biggest = 0;
      bool mismatch = false;
      for (int64_t j = 0; j < m.cols(); ++j) {
        const float a = got[j], b = want[gj[j]];
        if (std::isfinite(a) && std::isfinite(b)) {
          worst = std::max(worst, std::abs(a - b));
          biggest = std::max(biggest, std::abs(b));
        } else {
          mismatch = mismatch || !(a == b || (std::isnan(a) && std::isnan(b)));
        }
      }
      out.max_abs = std::max({out.max_abs, double(worst), mismatch ? INFINITY : 0.0});
      out.scale = std::max(out.scale, double(biggest));
    }
  }, 1, double(m.size()));
  Distance all;
  for (const Distance& x : part) all.max_abs = std::max(all.max_abs, x.max_abs), all.scale = std::max(all.scale, x.scale);
  return all;
}

}  // namespace

NumericsReport verify(const ProgramSet& sharded, const ProgramSet& reference, const NumericsOptions& options) {
  using numerics::Mat;
  NumericsReport report;
  report.dtype = options.dtype;

  std::map<std::string, Mat> ref;
  numerics::ExecOptions ref_options;
  ref_options.dtype = options.dtype;
  ref_options.seed = options.seed;
  ref_options.keep_finals = &ref;
  if (options.progress) ref_options.progress = options.progress("running the unsharded reference", "ops");
  numerics::execute(reference, ref_options);

  const auto budgets = numerics::error_budgets(sharded, options.dtype);

  numerics::ExecOptions run;
  run.dtype = options.dtype;
  run.seed = options.seed;
  run.schedule_hook = options.schedule_hook;
  if (options.progress)
    run.progress = options.progress(fmt::format("running the sharded plan on {} GPUs", sharded.ranks.size()), "ops");
  run.on_collective = [&](const Op& op, const CollectiveInstance& instance) {
    report.instances.push_back(instance_key(op.collective.op, instance));
  };
  run.on_final = [&](int rank, const Op& op, const TensorDesc& d, const Mat& m) {
    auto it = ref.find(d.global_name);
    if (it == ref.end()) return;   // nothing to compare with (a tensor only the sharded plan has)
    const bool whole = it->second.rows() == d.rows && it->second.cols() == d.cols && d.parts == 1 && d.row_parts == 1 && d.cp_parts == 1;
    const Distance far = distance(m, it->second, d, whole);
    TensorCheck c;
    c.op = op.name;
    c.tensor = d.global_name;
    c.rank = rank;
    c.max_abs = far.max_abs;
    c.max_rel = far.scale > 0 ? c.max_abs / far.scale : c.max_abs;
    const numerics::ErrorBudget& b = budgets[rank].at(d.name);
    c.tolerance = numerics::tolerance(b);
    c.rule = numerics::rule(b, options.dtype);
    c.ok = c.tolerance == 0 ? c.max_abs == 0 : c.max_rel <= c.tolerance;
    report.ok = report.ok && c.ok;
    report.max_abs = std::max(report.max_abs, c.max_abs);
    report.max_rel = std::max(report.max_rel, c.max_rel);
    report.checks.push_back(std::move(c));
  };
  // A router's choice may differ from the reference's where two logits are closer than the
  // logits' own tolerance (bf16 rounding after a TP reduction): such near-ties take the
  // reference's choice, so the experts after them compare like with like; any other difference is
  // a failure (a router that differs across ranks).
  run.on_decision = [&](int rank, const Op& op, const TensorDesc& d, const std::vector<const Mat*>& in, Mat& out) {
    auto it = ref.find(d.global_name);
    if (it == ref.end()) return;
    const Mat& want = it->second;
    const Mat& logits = *in.at(0);
    const double tol = numerics::tolerance(budgets[rank].at(op.inputs.at(0)));
    const double scale = logits.size() ? double(logits.cwiseAbs().maxCoeff()) : 0.0;
    int ties = 0;
    double worst = 0;   // largest logit gap behind a differing choice
    bool ok = true;
    for (int64_t i = 0; i < out.rows(); ++i) {
      const int64_t g = numerics::global_row(d, i);
      bool differs = false, tie_only = true;
      for (int64_t j = 0; j < out.cols(); ++j) {
        const float mine = out(i, j), theirs = want(g, j);
        if (mine == theirs) continue;
        differs = true;
        const bool valid = theirs >= 0 && theirs < logits.cols() && mine >= 0 && mine < logits.cols();
        const double gap = valid ? std::abs(double(logits(i, int64_t(mine))) - double(logits(i, int64_t(theirs)))) : INFINITY;
        worst = std::max(worst, gap);
        tie_only = tie_only && gap <= 2 * tol * scale;
      }
      if (!differs) continue;
      if (tie_only) {
        out.row(i) = want.row(g);
        ++ties;
      } else {
        ok = false;
      }
    }
    TensorCheck c;
    c.op = op.name;
    c.tensor = d.global_name + " (choices)";
    c.rank = rank;
    c.max_abs = worst;
    c.max_rel = scale > 0 ? worst / scale : worst;
    c.tolerance = 2 * tol;
    c.ok = ok;
    c.rule = fmt::format("top-k as the reference's: a differing choice needs a logit gap <= 2 x the logits' tolerance "
                         "(near-tie); {} near-tie row{} held to the reference's choice", ties, ties == 1 ? "" : "s");
    report.ok = report.ok && ok;
    report.checks.push_back(std::move(c));
  };
  numerics::execute(sharded, run);
  std::sort(report.instances.begin(), report.instances.end());
  report.instances.erase(std::unique(report.instances.begin(), report.instances.end()), report.instances.end());
  return report;
}

}  // namespace tpsim
