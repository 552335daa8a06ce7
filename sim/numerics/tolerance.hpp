// How far a sharded tensor may be from its unsharded reference, derived from the program.
//
// A sharded program does the reference's arithmetic except where it sums partial results over
// the group (all-reduce, reduce-scatter): a k-long sum split over p ranks is added in another
// order, a reassociation whose relative error is about sqrt(k) * u (u = 2^-24 for fp32: random-
// walk rounding of a k-term sum). Everything downstream inherits the difference; with bf16 storage
// every op that re-rounds a value that already differs may round it the other way (u = 2^-8), and
// a reduction of p bf16 partials adds p roundings. Independent errors add in quadrature, the
// fp32 reassociation part a and the bf16 rounding part b kept apart:
//   a^2(out) = max a^2(in) + [reassociation: k p u32^2]
//   b^2(out) = max b^2(in) + [reassociation in bf16: p u16^2] + [bf16 and the input differs: u16^2]
// and a tensor is judged by rel tol = kSafety32 * a + kSafety16 * b, where the relative error is
// max|sharded - ref| over max|ref|. a = b = 0 means the same arithmetic on the same numbers: the
// check is bit-exact (column-parallel + all-gather, copies, per-row kernels on sequence shards).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "tpsim/program.hpp"

namespace tpsim::numerics {

// Safety factors over the random-walk estimates: they cover amplification through softmax, norms
// and the backward pass. Measured on the tests' layers and stacks: the fp32 error reaches about
// 1/4 of 16 a, the bf16 error about 1/10 of 4 b (b overestimates: many re-roundings agree).
inline constexpr double kSafety32 = 16.0;
inline constexpr double kSafety16 = 4.0;

struct ErrorBudget {
  double e2 = 0;            // fp32 reassociation part a^2
  double b2 = 0;            // bf16 rounding part b^2
  int64_t max_k = 0;        // longest reassociated sum upstream (k * ranks)
  int reassociations = 0;   // reassociated sums upstream (longest path)
  int roundings = 0;        // bf16 re-roundings upstream (longest path)
};

// Budget of each tensor's final value, per rank (keyed by tensor name). A received tensor carries
// the budget of what its sender sent (iterated until the pipeline's stages agree).
std::vector<std::map<std::string, ErrorBudget>> error_budgets(const ProgramSet& set, DType dtype);

double tolerance(const ErrorBudget& b);
std::string rule(const ErrorBudget& b, DType dtype);

}  // namespace tpsim::numerics
