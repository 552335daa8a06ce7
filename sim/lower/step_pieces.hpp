// Step pieces: one transformer layer's forward and backward, the embedding's and the output +
// loss's, lowered once through the ProgramBuilder (so a step times exactly the kernels and TP
// collectives the layer lowering emits) and then coarsened: each run of compute-stream kernels
// between two TP collectives becomes one "fused" op holding those kernels as its shared parts (the
// engine times them once and reuses the duration). A whole step is then stamped from these pieces
// (step_training.cpp). Nothing here is timed: lowering knows shapes, not seconds.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "tpsim/program.hpp"
#include "tpsim/step_lowering.hpp"
#include "tpsim/spec.hpp"

namespace tpsim::lowering {

// A piece of a rank's program: ops whose deps are indices into `ops` (internal only). A compute
// op is a fused kernel (KernelInfo fn "fused", its kernels in Op::parts); collectives carry the
// TP group of the rank the piece was built for (re-targeted when stamped).
struct Piece {
  std::vector<Op> ops;
  double flops = 0;
};

struct StepPieces {
  Piece layer_fwd, layer_bwd;
  Piece attention_recompute;   // selective recompute: the attention core's forward again
  Piece embedding_fwd, embedding_bwd;
  Piece output_fwd, output_bwd;
  double layer_params = 0;     // parameters of one layer held by one TP rank (gradient elements)
  double layer_expert_params = 0;   // of them, the rank's experts' (reduced over the expert-DP group)
  double embedding_params = 0; // of the vocab-parallel embedding
  double output_params = 0;    // of the final norm and the vocab-parallel output head
};

// Lowers the pieces for micro-batches of `tokens` tokens with the scenario's plan (TP, SP).
StepPieces build_step_pieces(const Scenario& scenario, int64_t tokens);

// Coarsens ops [begin, end) of a builder program into a Piece (see above); dependencies on ops
// outside the range are dropped (the stamping orders pieces).
Piece coarsen(const Program& program, int begin, int end, const std::string& label);

// The piece as one fused op whose parts are the piece's ops, TP collectives included: the engine
// runs the parts alone (collectives at their uncontended time), exact when nothing else uses the
// TP group's links while it runs. `label` names the fused op for what it is ("fwd", "bwd",
// "embedding.fwd"); a stamp prefixes the layer.
Piece fold_collectives(const Piece& piece, const std::string& label);

}  // namespace tpsim::lowering
