// Step pieces: the builder's layer, embedding and output lowering, coarsened for whole-step timing.
#include "lower/step_pieces.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <map>

#include "lower/program_builder.hpp"

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
  op.kernel.fn = "fused";   // no attrs: a stamped op is copied millions of times at 1024 GPUs
  return op;
}

// The part as the engine needs it: kind, shapes, FLOPs and bytes, no tensor names.
Op part_of(const Op& op) {
  Op part = op;
  part.inputs.clear();
  part.outputs.clear();
  part.deps.clear();
  part.parts = nullptr;
  return part;
}

void add_to_fused(Op& fused, std::vector<Op>& parts, const Op& op) {
  parts.push_back(part_of(op));
  fused.flops += op.flops;
  fused.hbm_bytes += op.hbm_bytes;
  fused.dtype = op.dtype;
  fused.pass = op.pass;
}

void total(Piece& p) {
  for (const Op& op : p.ops)
    if (op.kind == OpKind::kernel && op.kernel.fn == "fused") p.flops += op.flops;
}

}  // namespace

Piece coarsen(const Program& program, int begin, int end, const std::string& label) {
  Piece piece;
  std::map<int, std::vector<Op>> parts;   // fused op index -> its kernels, in order
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
      add_to_fused(piece.ops[size_t(open)], parts[open], op);
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
  for (auto& [index, list] : parts) piece.ops[size_t(index)].parts = std::make_shared<const std::vector<Op>>(std::move(list));
  total(piece);
  return piece;
}

namespace {

// Only the attention core's forward kernels (selective recompute re-runs them before backward).
Piece attention_only(const Program& program, int begin, int end) {
  Piece piece;
  Op fused = fused_op("attn.recompute");
  std::vector<Op> parts;
  for (int id = begin; id < end; ++id) {
    const Op& op = program.ops[size_t(id)];
    if (op.kind == OpKind::kernel && op.kernel.fn.find("attention") != std::string::npos) add_to_fused(fused, parts, op);
  }
  fused.parts = std::make_shared<const std::vector<Op>>(std::move(parts));
  piece.ops.push_back(std::move(fused));
  total(piece);
  return piece;
}

}  // namespace

Piece fold_collectives(const Piece& piece, const std::string& label) {
  Op op = fused_op(label);
  std::vector<Op> parts;
  for (const Op& o : piece.ops) {
    Op part = o;   // deps already index piece.ops, which become the parts in the same order
    part.inputs.clear();
    part.outputs.clear();
    parts.push_back(std::move(part));
    if (o.kind != OpKind::kernel) continue;
    op.flops += o.flops;
    op.hbm_bytes += o.hbm_bytes;
    op.dtype = o.dtype;
    op.pass = o.pass;
  }
  op.parts = std::make_shared<const std::vector<Op>>(std::move(parts));
  Piece folded;
  folded.ops.push_back(std::move(op));
  folded.flops = piece.flops;
  return folded;
}

StepPieces build_step_pieces(const Scenario& scenario, int64_t tokens) {
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
    pieces.layer_fwd = coarsen(p, n0, n1, "fwd");
    pieces.layer_bwd = coarsen(p, n1, n2, "bwd");
    pieces.attention_recompute = attention_only(p, n0, n1);
    for (const auto& [name, t] : p.tensors)
      if (t.is_weight) {
        pieces.layer_params += double(t.rows) * double(t.cols);
        if (is_expert_weight(name)) pieces.layer_expert_params += double(t.rows) * double(t.cols);
      }
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
    pieces.embedding_fwd = coarsen(p, n0, n1, "embedding.fwd");
    pieces.embedding_bwd = coarsen(p, n1, n2, "embedding.bwd");
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
    pieces.output_fwd = coarsen(p, n0, n1, "output.fwd");
    pieces.output_bwd = coarsen(p, n1, n2, "output.bwd");
    for (const auto& [name, t] : p.tensors)
      if (t.is_weight) pieces.output_params += double(t.rows) * double(t.cols);
  }
  return pieces;
}

}  // namespace tpsim::lowering
