// `tpsim explain`: one transformer layer under the plan, read off the lowered Program (lower(scope
// = layer, backward = true)), never derived separately: which weight is split how, which collective
// each TP mapping puts in forward and backward and why, bytes moved, the time each takes on the
// topology (time_collective) and each kernel's time (op_cost), and the per-layer total.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tpsim/collective.hpp"
#include "tpsim/spec.hpp"

namespace tpsim {

struct ExplainWeight {
  std::string name;              // global name, "layer0.mlp.fc1"
  int64_t rows = 0, cols = 0;    // unsharded [in, out]
  int64_t local_rows = 0, local_cols = 0;   // what one GPU holds
  int split_dim = -1;            // -1 replicated, 0 rows (row-parallel), 1 columns (column-parallel)
  int parts = 1;
  std::string how;               // "column-parallel (output columns split over 8 GPUs, by head)"
};

struct ExplainCollective {
  std::string op;                // the op's name in the Program
  bool backward = false;
  CollectiveOp collective = CollectiveOp::all_reduce;
  std::string algorithm;         // as the selector resolved it
  std::string instance;          // describe() of the resolved instance (algorithm/protocol, channels, chunks)
  int ranks = 0;
  int64_t bytes = 0;             // nccl-tests size
  std::string mapping;           // "reduce_from_tp", "copy_to_tp", ... ("" when the op is not a mapping)
  std::string why;
  double seconds = 0;            // time_collective on an idle topology
};

struct ExplainCompute {
  std::string op;
  bool backward = false;
  std::string what;              // "gemm [2048x4096] @ [4096x1536]" or the kernel's name
  double seconds = 0;            // op_cost
};

struct ExplainReport {
  std::string scenario, topology, model, plan;
  int tp = 1;
  bool sp = false;
  int64_t tokens = 0;
  std::vector<ExplainWeight> weights;
  std::vector<ExplainCollective> collectives;   // program order
  std::vector<ExplainCompute> compute;          // program order
  int forward_collectives = 0, backward_collectives = 0;
  double forward_compute = 0, backward_compute = 0;               // s, sum of op_cost
  double forward_communication = 0, backward_communication = 0;   // s, sum of time_collective
  double serial_total = 0;       // s, compute + communication with nothing overlapped
  double simulated = 0;          // s, the engine's makespan for the layer (overlap and contention)
  int64_t activation_bytes = 0;  // bytes of activations one GPU keeps per layer for backward (the memory model's)
  int64_t program_activation_bytes = 0;   // forward tensors the lowered backward reads (the plan as lowered)
  std::string fidelity;          // the engine fidelity collectives and the layer were timed at
};

ExplainReport explain_layer(const Scenario& scenario);
std::string explain_text(const ExplainReport& report);

}  // namespace tpsim
