// Numerics: executes ProgramSets on the CPU with Eigen, the collectives through the same Schedules
// the timing engine uses, and compares a sharded run with its unsharded reference tensor by tensor.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tpsim/collective.hpp"
#include "tpsim/progress.hpp"
#include "tpsim/program.hpp"

namespace tpsim {

struct TensorCheck {
  std::string op;          // op that produced the tensor ("layer0.mlp.fc2.fwd")
  std::string tensor;      // global tensor name compared
  int rank = 0;
  double max_abs = 0;      // max |sharded - reference|
  double max_rel = 0;      // max_abs / max |reference|
  double tolerance = 0;    // relative tolerance the check was judged by
  bool ok = true;
  std::string rule;        // how the tolerance was derived, e.g. "bit-exact (copy)" or "k=4096 fp32 reassociation"
};

struct NumericsReport {
  DType dtype = DType::fp32;
  std::vector<TensorCheck> checks;
  bool ok = true;
  double max_abs = 0, max_rel = 0;
  // The collective instances the sharded run executed, as instance_key() strings, sorted, unique.
  std::vector<std::string> instances;
  const TensorCheck* first_failure() const;
};

struct NumericsOptions {
  DType dtype = DType::fp32;   // fp32, or bf16 storage with fp32 accumulation
  unsigned seed = 1234;        // deterministic inputs and weights
  // Applied to every schedule of the sharded run before it executes (tests plant wrong chunk
  // indices through it to show the numerics catches them).
  std::function<void(const Op& op, Schedule& schedule)> schedule_hook;
  // Progress of the two runs (the unsharded reference first, then the sharded plan), as phases.
  ProgressPhases progress;
};

// "all_reduce nvls/Simple, 1 channel, 4 chunks": a collective instance named with its operation,
// so reports can say which instances were timed and which were verified.
std::string instance_key(CollectiveOp op, const CollectiveInstance& instance);
std::string instance_key(CollectiveOp op, const std::string& described);   // described = describe(instance)

// One line naming the op, the tensor, the rank, the error and the tolerance with its rule:
// "op layer0.mlp.fc2.fwd wrote layer0.mlp.fc2.out (rank 1): max abs 1.2e-01, max rel 5.0e-01 > tol 3.1e-06 [rule]".
std::string describe(const TensorCheck& check);

// Runs `sharded` and `reference` (same scenario lowered with tp = 1) and compares every tensor that
// names a global counterpart.
NumericsReport verify(const ProgramSet& sharded, const ProgramSet& reference, const NumericsOptions& options);

// `tpsim verify --dump`: executes `reference` (a single-rank, unsharded ProgramSet) with `seed`,
// fp32, and writes into `dir` one .npy per global tensor: every input and weight it reads before writing (filled exactly
// as the executor fills them) and the final value of every tensor it writes. manifest.json holds
// `model` as given, plus "tensors": [{name, file, shape, kind, op, fn, step}] in program order
// (step: the op that wrote it, or first read it) with kind one of input, weight, output (forward),
// gradient (backward); and "kernels": the attributes of each kernel
// fn's first op (eps, loss scale, heads). Returns the number of tensors written.
int dump_reference(const ProgramSet& reference, unsigned seed, nlohmann::json model, const std::string& dir);

}  // namespace tpsim
