// Step pieces: the builder's layer, embedding and output lowering, coarsened for whole-step timing.
#include "lower/step_pieces.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "lower/program_builder.hpp"
#include "tpsim/cost.hpp"

namespace tpsim::lowering {
namespace {

bool is_compute(const Op& op) { return op.kind == OpKind::gemm || op.kind == OpKind::kernel; }

// "layer0.mlp.fc1.fwd" -> "mlp.fc1.fwd": pieces are stamped for many layers, named there.
std::string without_layer(const std::string& name) {
  if (name.rfind("layer", 0) == 0) {
    const auto dot = name.find('.');
    if (dot != std::string::npos) return name.substr(dot + 1);
  }
  return name;
}

Op fused_op(const std::string& name) {
  Op op;
  op.kind = OpKind::kernel;
  op.name = name;
  op.kernel.fn = "fused";
  op.kernel.attrs["seconds"] = 0;
  op.kernel.attrs["kernels"] = 0;
  return op;
}

void add_to_fused(Op& fused, const Op& op, const GpuSpec& gpu) {
  fused.kernel.attrs["seconds"] += op_cost(gpu, op).seconds;
  fused.kernel.attrs["kernels"] += 1;
  fused.flops += op.flops;
  fused.hbm_bytes += op.hbm_bytes;
  fused.dtype = op.dtype;
}

void total(Piece& p) {
  for (const Op& op : p.ops)
    if (op.kind == OpKind::kernel && op.kernel.fn == "fused") {
      p.seconds += op.kernel.attrs.at("seconds");
      p.flops += op.flops;
    }
}

}  // namespace

Piece coarsen(const Program& program, int begin, int end, const GpuSpec& gpu, const std::string& label) {
  Piece piece;
  std::map<int, int> coarse_of;   // builder op id -> index in piece.ops
  int open = -1;                  // fused op being extended
  for (int id = begin; id < end; ++id) {
    const Op& op = program.ops[size_t(id)];
    std::vector<int> deps;
    for (int d : op.deps)
      if (auto it = coarse_of.find(d); it != coarse_of.end()) deps.push_back(it->second);
    if (is_compute(op) && op.stream == Stream::compute) {
      // A kernel that waits on a collective issued since the fused op began starts a new one.
      bool waits = false;
      for (int d : deps)
        if (piece.ops[size_t(d)].kind != OpKind::kernel || piece.ops[size_t(d)].kernel.fn != "fused") waits = true;
      if (open < 0 || waits) {
        Op fused = fused_op(fmt::format("{}.{}", label, without_layer(op.name)));
        for (int d : deps)
          if (d != open) fused.deps.push_back(d);
        piece.ops.push_back(std::move(fused));
        open = int(piece.ops.size()) - 1;
      }
      add_to_fused(piece.ops[size_t(open)], op, gpu);
      coarse_of[id] = open;
      continue;
    }
    Op copy = op;
    copy.name = fmt::format("{}.{}", label, without_layer(op.name));
    copy.inputs.clear();
    copy.outputs.clear();
    copy.deps.clear();
    for (int d : deps)
      if (std::find(copy.deps.begin(), copy.deps.end(), d) == copy.deps.end()) copy.deps.push_back(d);
    piece.ops.push_back(std::move(copy));
    coarse_of[id] = int(piece.ops.size()) - 1;
    open = -1;   // kernels after a collective run after it on the compute stream, in a new fused op
  }
  total(piece);
  return piece;
}

namespace {

// Only the attention core's forward kernels (selective recompute re-runs them before backward).
Piece attention_only(const Program& program, int begin, int end, const GpuSpec& gpu) {
  Piece piece;
  Op fused = fused_op("attn.recompute");
  for (int id = begin; id < end; ++id) {
    const Op& op = program.ops[size_t(id)];
    if (op.kind == OpKind::kernel && op.kernel.fn.find("attention") != std::string::npos) add_to_fused(fused, op, gpu);
  }
  piece.ops.push_back(std::move(fused));
  total(piece);
  return piece;
}

}  // namespace

double piece_makespan(const Piece& piece, const CollectiveTimer& timer, double* comm) {
  std::vector<double> end(piece.ops.size(), 0);
  std::map<Stream, double> free_at;
  double makespan = 0, comm_total = 0;
  for (size_t i = 0; i < piece.ops.size(); ++i) {
    const Op& op = piece.ops[i];
    double start = free_at[op.stream];
    for (int d : op.deps) start = std::max(start, end[size_t(d)]);
    double seconds = 0;
    if (op.kind == OpKind::collective) {
      seconds = timer(op.collective);
      comm_total += seconds;
    } else if (op.kind == OpKind::kernel && op.kernel.fn == "fused") {
      seconds = op.kernel.attrs.at("seconds");
    }
    end[i] = start + seconds;
    free_at[op.stream] = end[i];
    makespan = std::max(makespan, end[i]);
  }
  if (comm) *comm = comm_total;
  return makespan;
}

Piece fold_collectives(const Piece& piece, const CollectiveTimer& timer) {
  Piece folded;
  double comm = 0;
  Op op = fused_op(piece.ops.empty() ? "empty" : piece.ops.front().name);
  op.kernel.attrs["seconds"] = piece_makespan(piece, timer, &comm);
  op.kernel.attrs["tp_comm_seconds"] = comm;
  op.kernel.attrs["compute_seconds"] = piece.seconds;
  for (const Op& o : piece.ops) {
    if (o.kind != OpKind::kernel) continue;
    op.kernel.attrs["kernels"] += o.kernel.attrs.count("kernels") ? o.kernel.attrs.at("kernels") : 1;
    op.flops += o.flops;
    op.hbm_bytes += o.hbm_bytes;
    op.dtype = o.dtype;
  }
  folded.ops.push_back(std::move(op));
  folded.seconds = piece.seconds;
  folded.flops = piece.flops;
  return folded;
}

StepPieces build_step_pieces(const Scenario& scenario, int64_t tokens) {
  const GpuSpec& gpu = scenario.topology.gpu;
  const int64_t h = scenario.model.hidden;
  const RankCoords coords = rank_coords(scenario.plan, 0);
  StepPieces pieces;
  {
    // One layer: x [tokens, h] -> layer -> y; backward from a seeded dy.
    ProgramBuilder b(scenario, coords, tokens);
    Tape tape;
    const Value x = b.input("x", h, b.stream_layout());
    const int n0 = int(b.program_size());
    const Value y = b.layer_forward(0, x, tape);
    const int n1 = int(b.program_size());
    b.backward(tape, y, b.gradient_seed(y));
    const int n2 = int(b.program_size());
    const Program p = b.finish();
    pieces.layer_fwd = coarsen(p, n0, n1, gpu, "fwd");
    pieces.layer_bwd = coarsen(p, n1, n2, gpu, "bwd");
    pieces.attention_recompute = attention_only(p, n0, n1, gpu);
    for (const auto& [name, t] : p.tensors)
      if (t.is_weight) pieces.layer_params += double(t.rows) * double(t.cols);
  }
  {
    ProgramBuilder b(scenario, coords, tokens);
    Tape tape;
    const int n0 = int(b.program_size());
    const Value e = b.embedding_forward(tape);
    const int n1 = int(b.program_size());
    b.backward(tape, e, b.gradient_seed(e));
    const int n2 = int(b.program_size());
    const Program p = b.finish();
    pieces.embedding_fwd = coarsen(p, n0, n1, gpu, "embedding.fwd");
    pieces.embedding_bwd = coarsen(p, n1, n2, gpu, "embedding.bwd");
    for (const auto& [name, t] : p.tensors)
      if (t.is_weight) pieces.embedding_params += double(t.rows) * double(t.cols);
  }
  {
    ProgramBuilder b(scenario, coords, tokens);
    Tape tape;
    const Value x = b.input("final.x", h, b.stream_layout());
    const int n0 = int(b.program_size());
    const Value loss = b.output_loss_forward(x, tape);
    const int n1 = int(b.program_size());
    b.backward(tape, loss, "");
    const int n2 = int(b.program_size());
    const Program p = b.finish();
    pieces.output_fwd = coarsen(p, n0, n1, gpu, "output.fwd");
    pieces.output_bwd = coarsen(p, n1, n2, gpu, "output.bwd");
    for (const auto& [name, t] : p.tensors)
      if (t.is_weight) pieces.output_params += double(t.rows) * double(t.cols);
  }
  return pieces;
}

}  // namespace tpsim::lowering
