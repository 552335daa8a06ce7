// How far a sharded tensor may be from its unsharded reference, derived from the program.
//
// A sharded program does the reference's arithmetic except where it sums partial results over
// the group (all-reduce, reduce-scatter): a k-long sum split over p ranks is added in another
// order, a reassociation whose relative error is about sqrt(k) * u (u = 2^-24 for fp32: random-
// walk rounding of a k-term sum). Everything downstream inherits the difference; with bf16 storage
// every op that re-rounds a value that already differs may round it the other way (u = 2^-8), and
// a reduction of p bf16 partials adds p roundings. Independent errors add in quadrature:
//   e^2(out) = max over inputs e^2(in) + [reassociation: k p u32^2 + (bf16: p u16^2)] + [bf16 and e > 0: u16^2]
// and a tensor is judged by rel tol = kSafety * e, where the relative error is max|sharded - ref|
// over max|ref|. e = 0 means the same arithmetic on the same numbers: the check is bit-exact
// (column-parallel + all-gather, copies, per-row kernels on sequence shards).
#pragma once

#include <map>
#include <string>

#include "tpsim/program.hpp"

namespace tpsim::numerics {

// Safety factor over the random-walk estimate: covers amplification through softmax, norms and
// the backward pass (measured worst case on the tests' layers: about 3x).
inline constexpr double kSafety = 16.0;

struct ErrorBudget {
  double e2 = 0;            // estimated relative error, squared
  int64_t max_k = 0;        // longest reassociated sum upstream (k * ranks)
  int reassociations = 0;   // reassociated sums upstream (longest path)
  int roundings = 0;        // bf16 re-roundings upstream (longest path)
};

// Budget of each tensor's final value in `program` (keyed by tensor name).
std::map<std::string, ErrorBudget> error_budgets(const Program& program, DType dtype);

double tolerance(const ErrorBudget& b);
std::string rule(const ErrorBudget& b, DType dtype);

}  // namespace tpsim::numerics
