// Runs a ProgramSet on the CPU: every rank's ops in program order, the ranks of a collective's
// group meeting at it and exchanging real buffers through the collective's Schedule (the same one
// the timing engine uses), point-to-point sends matched with receives by (peer, tag).
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "numerics/dense.hpp"
#include "tpsim/collective.hpp"
#include "tpsim/progress.hpp"
#include "tpsim/program.hpp"

namespace tpsim::numerics {

struct ExecOptions {
  DType dtype = DType::fp32;   // bf16: every op's outputs are rounded to bf16 (fp32 accumulation inside)
  unsigned seed = 1234;
  // Applied to every schedule before it runs (tests plant wrong chunk indices through it).
  std::function<void(const Op& op, Schedule& schedule)> schedule_hook;
  // Called once per collective executed (once per group, with the instance that ran).
  std::function<void(const Op& op, const CollectiveInstance& instance)> on_collective;
  // Called once per tensor that names a global tensor, when its last write in its program is done.
  std::function<void(int rank, const Op& op, const TensorDesc& desc, const Mat& value)> on_final;
  // When set, every tensor that some op writes and that is a whole global tensor (parts == 1) is
  // moved here under its global name once nothing uses it any more, instead of being freed: its
  // final value, kept without a copy (verify's reference run; the first rank's copy wins).
  std::map<std::string, Mat>* keep_finals = nullptr;
  // Called after each op with (ops done, ops in every rank's program): a full-size run takes minutes.
  ProgressFn progress;
  // Called after a discrete decision (a router's top-k, kernel fn "moe_route") with its inputs and
  // output, which it may overwrite: verify holds the sharded run to the reference's choices where
  // the two differ only at a near-tie, so everything after compares like with like.
  std::function<void(int rank, const Op& op, const TensorDesc& desc, const std::vector<const Mat*>& in, Mat& out)>
      on_decision;
  // When set, wall seconds and calls per kind of work ("gemm MxNxK [A^T] [B^T]" per shape, kernel
  // names, "collective", "fill", "compare") are added here (for benchmarks).
  struct Spent {
    double seconds = 0;
    int64_t calls = 0;
  };
  std::map<std::string, Spent>* profile = nullptr;
};

void execute(const ProgramSet& set, const ExecOptions& options);

}  // namespace tpsim::numerics
