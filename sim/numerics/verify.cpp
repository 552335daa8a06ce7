// verify(): run the reference (tp = 1), keep every tensor that names a global tensor, run the
// sharded programs and compare each such tensor, when its final value is written, with the slice
// of the reference it stands for.
#include <fmt/core.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

#include "numerics/executor.hpp"
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

NumericsReport verify(const ProgramSet& sharded, const ProgramSet& reference, const NumericsOptions& options) {
  using numerics::Mat;
  NumericsReport report;
  report.dtype = options.dtype;

  std::map<std::string, Mat> ref;
  numerics::ExecOptions ref_options;
  ref_options.dtype = options.dtype;
  ref_options.seed = options.seed;
  ref_options.on_final = [&](int, const Op&, const TensorDesc& d, const Mat& m) {
    if (d.parts == 1) ref.emplace(d.global_name, m);
  };
  numerics::execute(reference, ref_options);

  const auto budgets = numerics::error_budgets(sharded, options.dtype);

  numerics::ExecOptions run;
  run.dtype = options.dtype;
  run.seed = options.seed;
  run.schedule_hook = options.schedule_hook;
  run.on_collective = [&](const Op& op, const CollectiveInstance& instance) {
    report.instances.push_back(instance_key(op.collective.op, instance));
  };
  run.on_final = [&](int rank, const Op& op, const TensorDesc& d, const Mat& m) {
    auto it = ref.find(d.global_name);
    if (it == ref.end()) return;   // nothing to compare with (a tensor only the sharded plan has)
    const bool whole = it->second.rows() == d.rows && it->second.cols() == d.cols && d.parts == 1;
    const Mat expect = whole ? it->second : numerics::slice_of(it->second, d);
    TensorCheck c;
    c.op = op.name;
    c.tensor = d.global_name;
    c.rank = rank;
    const double scale = expect.size() ? double(expect.cwiseAbs().maxCoeff()) : 0.0;
    c.max_abs = expect.size() ? double((m - expect).cwiseAbs().maxCoeff()) : 0.0;
    if (!m.allFinite() && expect.allFinite()) c.max_abs = std::numeric_limits<double>::infinity();
    c.max_rel = scale > 0 ? c.max_abs / scale : c.max_abs;
    const numerics::ErrorBudget& b = budgets[rank].at(d.name);
    c.tolerance = numerics::tolerance(b);
    c.rule = numerics::rule(b, options.dtype);
    c.ok = c.tolerance == 0 ? c.max_abs == 0 : c.max_rel <= c.tolerance;
    report.ok = report.ok && c.ok;
    report.max_abs = std::max(report.max_abs, c.max_abs);
    report.max_rel = std::max(report.max_rel, c.max_rel);
    report.checks.push_back(std::move(c));
  };
  numerics::execute(sharded, run);
  std::sort(report.instances.begin(), report.instances.end());
  report.instances.erase(std::unique(report.instances.begin(), report.instances.end()), report.instances.end());
  return report;
}

}  // namespace tpsim
