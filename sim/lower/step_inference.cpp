// Inference: the prefill of a batch of prompts, or one decode step against a KV cache, through the
// pipeline stages in turn (one batch in flight: the latency view of a request).
#include <algorithm>
#include <fmt/format.h>
#include <stdexcept>

#include "lower/pipeline_p2p.hpp"
#include "lower/program_builder.hpp"
#include "tpsim/step_lowering.hpp"
#include "lower/step_pieces.hpp"

namespace tpsim::lowering {
namespace {

bool is_attention(const Op& op) { return op.kind == OpKind::kernel && op.kernel.fn.find("attention") != std::string::npos; }

// A decode step's attention reads the whole KV cache for one query token per sequence:
// QK^T and AV are 2 * 2 * context * head_dim FLOPs per head per sequence, and the K and V of
// `context` tokens of the local kv heads are read from HBM in the KV cache's precision; the query
// and the output in the activations'. [b, heads/t, 1, hd] x [b, kv/t, ctx, hd].
void make_decode_attention(Op& op, const Scenario& s, int64_t context) {
  const double t = s.plan.tp, b = double(s.workload.batch), hd = double(s.model.head_dim());
  const double heads = double(s.model.heads) / t, kv = double(s.model.kv_heads) / t;
  const Precision precision = precision_of(s);
  op.kernel.fn = "decode_attention";   // timed by decode_attention_cost, at the realised HBM fraction
  op.flops = 4 * b * double(context) * heads * hd;
  op.hbm_bytes = 2 * b * double(context) * kv * hd * dtype_bytes(precision.kv_cache) +
                 2 * b * heads * hd * dtype_bytes(precision.activations);
}

// Forward pieces of one layer, the embedding and the output for `rows` tokens per stage.
struct ForwardPieces {
  Piece layer, embedding, output;
};

ForwardPieces forward_pieces(const Scenario& s, bool decode, int64_t context) {
  const int64_t rows = decode ? s.workload.batch : s.workload.batch * s.workload.prompt;
  const RankCoords coords = rank_coords(s.plan, 0);
  ForwardPieces f;
  {
    ProgramBuilder b(s, coords, rows);
    Tape tape;
    const Value x = b.input("x", s.model.hidden, b.stream_layout());
    const int n0 = int(b.program_size());
    b.layer_forward(0, x, tape);
    const int n1 = int(b.program_size());
    Program p = b.finish();
    if (decode)
      for (int i = n0; i < n1; ++i)
        if (is_attention(p.ops[size_t(i)])) make_decode_attention(p.ops[size_t(i)], s, context);
    f.layer = coarsen(p, n0, n1, "fwd");
  }
  {
    ProgramBuilder b(s, coords, rows);
    Tape tape;
    b.embedding_forward(tape);
    const int n1 = int(b.program_size());
    f.embedding = coarsen(b.finish(), 0, n1, "embedding.fwd");
  }
  {
    // Logits of the last position of each sequence only: [batch, h] x [h, V/t].
    Scenario last = s;
    last.workload.seq = 1;
    last.workload.micro_batch = s.workload.batch;
    ProgramBuilder b(last, coords, s.workload.batch);
    Tape tape;
    const Value x = b.input("final.x", s.model.hidden, b.stream_layout());
    const int n0 = int(b.program_size());
    b.output_loss_forward(x, tape);
    const int n1 = int(b.program_size());
    f.output = coarsen(b.finish(), n0, n1, "output.fwd");
  }
  return f;
}

Op p2p(OpKind kind, const std::string& name, int peer, double bytes) {
  Op op;
  op.kind = kind;
  op.name = name;
  op.stream = Stream::pp_comm;
  op.p2p.peer = peer;
  op.p2p.tag = 0;
  op.p2p.bytes = int64_t(bytes);
  return op;
}

}  // namespace

ProgramSet lower_inference_step(const Scenario& scenario, bool decode, int64_t context, const StepOptions& options) {
  const PlanSpec& plan = scenario.plan;
  if (const std::string why = stage_split_problem(scenario.model, plan); !why.empty()) throw std::invalid_argument(why);
  // The layer lowering reads the sequence shape from the workload: a prefill micro-batch is the
  // whole batch of prompts, a decode step one token per sequence.
  Scenario s = scenario;
  s.workload.micro_batch = scenario.workload.batch;
  s.workload.seq = decode ? 1 : scenario.workload.prompt;
  ForwardPieces f = forward_pieces(s, decode, context);
  if (options.fold_tp)
    for (auto [p, label] : {std::pair{&f.layer, "fwd"}, {&f.embedding, "embedding.fwd"}, {&f.output, "output.fwd"}})
      *p = fold_collectives(*p, label);
  const int64_t rows = decode ? s.workload.batch : s.workload.batch * s.workload.prompt;
  const double tensor_bytes = double(rows) * double(s.model.hidden) * dtype_bytes(precision_of(s).communication);
  const double bytes = p2p_send_bytes(plan, tensor_bytes);

  ProgramSet set;
  set.tp = plan.tp;
  set.pp = plan.pp;
  set.dp = plan.dp;
  for (int rank = 0; rank < plan.world(); ++rank) {
    const RankCoords c = rank_coords(plan, rank);
    const int stage = c.pp_index;
    Program prog;
    prog.rank = rank;
    int last = -1;
    auto stamp = [&](const Piece& piece, const std::string& prefix, int layer, std::vector<int> roots) {
      const int base = int(prog.ops.size());
      for (const Op& src : piece.ops) {
        Op op = src;
        op.id = int(prog.ops.size());
        op.name = prefix.empty() ? src.name : prefix + "." + src.name;
        op.layer = layer;
        for (int& d : op.deps) d += base;
        if (op.deps.empty()) {
          op.deps = roots;
          if (last >= 0) op.deps.push_back(last);
        }
        if (op.kind == OpKind::collective) op.collective.group = c.group(op.collective.axis);
        if (op.stream == Stream::compute) last = op.id;
        prog.ops.push_back(std::move(op));
      }
    };
    std::vector<int> roots;
    if (stage > 0) {
      Op recv = p2p(OpKind::recv, "act.recv", rank_of(plan, c.tp_index, c.dp_index, stage - 1, c.cp_index), bytes);
      recv.id = int(prog.ops.size());
      roots.push_back(recv.id);
      prog.ops.push_back(std::move(recv));
      if (p2p_scattered(plan)) {
        Op gather = p2p_gather("act.all_gather", c.tp_group, tensor_bytes, roots.back(), Pass::forward, 0,
                               parse_algorithm(plan.collective_algorithm));
        gather.id = int(prog.ops.size());
        roots = {gather.id};
        prog.ops.push_back(std::move(gather));
      }
    } else {
      stamp(f.embedding, "", -1, {});
    }
    const StageLayers mine = stage_layers(s.model, plan, stage);
    for (int l = 0; l < int(mine.count); ++l) {
      const int layer = int(mine.first) + l;
      stamp(f.layer, fmt::format("layer{}", layer), layer, l == 0 ? roots : std::vector<int>{});
    }
    if (stage == plan.pp - 1) {
      stamp(f.output, "", -1, {});
    } else {
      Op send = p2p(OpKind::send, "act.send", rank_of(plan, c.tp_index, c.dp_index, stage + 1, c.cp_index), bytes);
      send.id = int(prog.ops.size());
      send.deps = {last};
      prog.ops.push_back(std::move(send));
    }
    for (Op& op : prog.ops) op.stage = stage;
    set.ranks.push_back(std::move(prog));
  }
  return set;
}

}  // namespace tpsim::lowering
