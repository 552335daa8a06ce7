// Step pieces: one transformer layer's forward and backward, the embedding's and the output +
// loss's, lowered once through the ProgramBuilder (so a step times exactly the kernels and TP
// collectives the layer lowering emits) and then coarsened for timing: each run of compute-stream
// kernels between two TP collectives becomes one "fused" kernel whose cost is the sum of its
// kernels' op_cost(). A whole step is then stamped from these pieces (step_training.cpp).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "tpsim/program.hpp"
#include "tpsim/step_lowering.hpp"
#include "tpsim/spec.hpp"

namespace tpsim::lowering {

// A piece of a rank's program: ops whose deps are indices into `ops` (internal only). A compute
// op is a fused kernel (KernelInfo fn "fused", attrs "seconds" and "kernels"); collectives carry
// the TP group of the rank the piece was built for (re-targeted when stamped).
struct Piece {
  std::vector<Op> ops;
  double seconds = 0;   // sum of the compute ops' seconds
  double flops = 0;
};

struct StepPieces {
  Piece layer_fwd, layer_bwd;
  Piece attention_recompute;   // selective recompute: the attention core's forward again
  Piece embedding_fwd, embedding_bwd;
  Piece output_fwd, output_bwd;
  double layer_params = 0;     // parameters of one layer held by one TP rank (gradient elements)
  double embedding_params = 0; // of the vocab-parallel embedding
  double output_params = 0;    // of the final norm and the vocab-parallel output head
};

// Lowers the pieces for micro-batches of `tokens` tokens with the scenario's plan (TP, SP).
StepPieces build_step_pieces(const Scenario& scenario, int64_t tokens);

// Coarsens ops [begin, end) of a builder program into a Piece (see above); dependencies on ops
// outside the range are dropped (the stamping orders pieces).
Piece coarsen(const Program& program, int begin, int end, const GpuSpec& gpu, const std::string& label);


// A piece run alone from time 0: compute and tp_comm streams in program order, each op after its
// deps, collectives taking `timer` seconds. Returns the piece's makespan and, in `comm`, the time
// its collectives took (the exposed part is makespan - compute).
double piece_makespan(const Piece& piece, const CollectiveTimer& timer, double* comm = nullptr);

// The piece as one fused op of piece_makespan() seconds (attrs "seconds", "tp_comm_seconds",
// "kernels"): exact when nothing else uses the TP group's links while it runs.
Piece fold_collectives(const Piece& piece, const CollectiveTimer& timer);

}  // namespace tpsim::lowering
