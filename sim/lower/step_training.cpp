// A whole training step composed from step pieces (step_pieces.hpp) in pipeline order.
//
// Pipeline messages share one pp_comm stream per rank, in the order of their timestamps in an ideal
// run of the schedule (forward 1, backward 2 per chunk). Every stream then lists its messages in
// one global order, so the step cannot deadlock whether a send waits for its receiver or not.
#include <algorithm>
#include <fmt/format.h>
#include <map>
#include <optional>
#include <stdexcept>
#include <tuple>

#include "lower/pipeline_p2p.hpp"
#include "lower/pipeline_schedule.hpp"
#include "lower/program_builder.hpp"
#include "tpsim/memory.hpp"
#include "tpsim/step_lowering.hpp"
#include "lower/step_pieces.hpp"

namespace tpsim::lowering {

int64_t micro_batches_per_step(const Scenario& s) {
  const WorkloadSpec& w = s.workload;
  const int64_t per_step = w.micro_batch * s.plan.dp;
  if (w.micro_batch < 1 || w.global_batch % per_step != 0)
    throw std::invalid_argument(fmt::format("workload.global_batch ({}) must be a multiple of micro_batch x dp ({} x {})",
                                            w.global_batch, w.micro_batch, s.plan.dp));
  return w.global_batch / per_step;
}

namespace {

// Megatron-LM's default DP bucket: max(40M, 1M x dp) parameters.
double bucket_params(int dp) { return std::max(40e6, 1e6 * dp); }
// Adam step per parameter on the GPU: read fp32 gradient (4), read + write fp32 master weight,
// m and v (3 x 8), write the bf16 weight (2) -> 30 B of HBM traffic, ~10 FLOPs.
constexpr double kAdamBytesPerParam = 30, kAdamFlopsPerParam = 10;

using SlotKey = std::tuple<bool, int, int>;   // (forward, micro-batch, global chunk)

// End time of every slot in an ideal run (no communication cost, F = 1, B = 2 per chunk).
std::map<SlotKey, double> ideal_slot_ends(int pp, int v, int m) {
  std::vector<std::vector<PipelineSlot>> orders;
  for (int s = 0; s < pp; ++s) orders.push_back(pipeline_order(pp, s, v, m));
  std::map<SlotKey, double> done;
  std::vector<size_t> next(size_t(pp), 0);
  std::vector<double> free_at(size_t(pp), 0);
  const int chunks = pp * v;
  for (bool progress = true; progress;) {
    progress = false;
    for (int s = 0; s < pp; ++s) {
      for (; next[size_t(s)] < orders[size_t(s)].size(); ++next[size_t(s)]) {
        const PipelineSlot& slot = orders[size_t(s)][next[size_t(s)]];
        const int g = slot.chunk * pp + s;
        double ready = free_at[size_t(s)];
        if (slot.forward ? g > 0 : true) {
          const SlotKey need = slot.forward ? SlotKey{true, slot.micro_batch, g - 1}
                               : g == chunks - 1 ? SlotKey{true, slot.micro_batch, g}
                                                 : SlotKey{false, slot.micro_batch, g + 1};
          auto it = done.find(need);
          if (it == done.end()) break;
          ready = std::max(ready, it->second);
        }
        free_at[size_t(s)] = ready + (slot.forward ? 1 : 2);
        done[{slot.forward, slot.micro_batch, g}] = free_at[size_t(s)];
        progress = true;
      }
    }
  }
  return done;
}

// "layer3" + "fwd.attn.qkv" -> "layer3.fwd.attn.qkv"; no prefix -> the name itself.
std::string qualified(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}

int message_tag(bool gradient, int micro_batch, int chunk, int micro_batches) {
  return (chunk * micro_batches + micro_batch) * 2 + (gradient ? 1 : 0);
}

// Merged runs of folded pieces, shared by every rank and micro-batch that stamps the same run (a
// stage's ranks all do): keyed by the pieces' own parts lists and their names and layers, which the
// parts carry so the engine can name the pass runs it splits a merged op's span into.
using MergedRuns = std::map<std::pair<std::vector<const void*>, std::vector<std::pair<std::string, int>>>,
                            std::shared_ptr<const std::vector<Op>>>;

// One rank's program, appended piece by piece. With `merge`, consecutive single-op (folded)
// pieces become one fused op whose parts are those pieces, flushed when anything else is appended.
class StepWriter {
 public:
  StepWriter(const RankCoords& coords, bool merge, MergedRuns& runs) : coords_(coords), merge_(merge), runs_(runs) {
    program_.rank = coords.rank;
  }

  // Appends a piece; its ops without internal deps wait for `roots` and the last compute op.
  void stamp(const Piece& piece, const std::string& prefix, int layer, int micro_batch, const std::vector<int>& roots) {
    if (merge_ && piece.ops.size() == 1 && piece.ops[0].stream == Stream::compute) {
      const Op& src = piece.ops[0];
      if (!pending_) {
        pending_ = src;
        pending_->name = qualified(prefix, src.name);
        pending_->layer = layer;
        pending_->micro_batch = micro_batch;
        pending_->deps = roots;
        if (last_compute_ >= 0) pending_->deps.push_back(last_compute_);
        pending_pieces_ = {&src};
        pending_labels_ = {{pending_->name, layer}};
        return;
      }
      pending_->flops += src.flops;
      pending_->hbm_bytes += src.hbm_bytes;
      pending_->deps.insert(pending_->deps.end(), roots.begin(), roots.end());
      if (pending_->layer != layer) pending_->layer = -1;   // spans layers: no one layer to name
      pending_last_ = qualified(prefix, src.name);
      pending_pieces_.push_back(&src);
      pending_labels_.emplace_back(pending_last_, layer);
      return;
    }
    flush();
    const int base = int(program_.ops.size());
    for (const Op& src : piece.ops) {
      Op op = src;
      op.id = int(program_.ops.size());
      op.name = qualified(prefix, src.name);
      op.layer = layer;
      op.micro_batch = micro_batch;
      for (int& d : op.deps) d += base;
      if (op.deps.empty()) {
        op.deps = roots;
        if (last_compute_ >= 0) op.deps.push_back(last_compute_);
      }
      if (op.kind == OpKind::collective) op.collective.group = coords_.group(op.collective.axis);
      if (op.stream == Stream::compute) last_compute_ = op.id;
      program_.ops.push_back(std::move(op));
    }
  }

  int append(Op op) {
    flush();
    op.id = int(program_.ops.size());
    if (op.stream == Stream::compute) last_compute_ = op.id;
    program_.ops.push_back(std::move(op));
    return program_.ops.back().id;
  }

  int last_compute() {
    flush();
    return last_compute_;
  }
  Program finish() {
    flush();
    return std::move(program_);
  }

 private:
  void flush() {
    if (!pending_) return;
    if (pending_pieces_.size() > 1) {   // the merged op runs the pieces one after the other
      std::vector<const void*> key;
      for (const Op* piece : pending_pieces_) key.push_back(piece->parts.get());
      auto [it, fresh] = runs_.try_emplace({std::move(key), pending_labels_}, nullptr);
      if (fresh) {
        std::vector<Op> parts;
        for (size_t i = 0; i < pending_pieces_.size(); ++i) {
          parts.push_back(*pending_pieces_[i]);
          std::tie(parts.back().name, parts.back().layer) = pending_labels_[i];
        }
        it->second = std::make_shared<const std::vector<Op>>(std::move(parts));
      }
      pending_->parts = it->second;
      // Named for the run it stands for, not for its first piece (a trace showed a whole backward
      // pass as "layer11.attn.recompute").
      pending_->name = fmt::format("{} .. {} ({} pieces)", pending_->name, pending_last_, pending_pieces_.size());
    }
    pending_pieces_.clear();
    pending_->id = int(program_.ops.size());
    last_compute_ = pending_->id;
    program_.ops.push_back(std::move(*pending_));
    pending_.reset();
  }

  Program program_;
  RankCoords coords_;   // whose groups a stamped piece's collectives run on
  bool merge_ = false;
  MergedRuns& runs_;
  std::optional<Op> pending_;
  std::vector<const Op*> pending_pieces_;   // the folded pieces pending_ stands for
  std::vector<std::pair<std::string, int>> pending_labels_;   // and their names and layers as stamped
  std::string pending_last_;                 // the last one's name
  int last_compute_ = -1;
};

Op p2p_op(OpKind kind, const std::string& name, int peer, int tag, double bytes, int micro_batch) {
  Op op;
  op.kind = kind;
  op.name = name;
  op.stream = Stream::pp_comm;
  op.p2p.peer = peer;
  op.p2p.tag = tag;
  op.p2p.bytes = int64_t(bytes);
  op.micro_batch = micro_batch;
  return op;
}

Op dp_collective(CollectiveOp kind, const std::string& name, std::vector<int> group, double bytes, int after,
                 Algorithm algorithm) {
  Op op;
  op.pass = Pass::backward;   // gradient reduction, issued as the backward pass frees each bucket
  op.kind = OpKind::collective;
  op.name = name;
  op.stream = Stream::dp_comm;
  op.collective.op = kind;
  op.collective.algorithm = algorithm;
  op.collective.group = std::move(group);
  op.collective.bytes = int64_t(bytes);
  op.collective.dim = 0;
  op.hbm_bytes = 2 * bytes;
  if (after >= 0) op.deps = {after};
  return op;
}

struct PendingRecv {
  double ts = 0;
  int tag = 0;
  bool gradient = false;
  int micro_batch = 0, chunk = 0;   // the slot that consumes it (chunk: global)
};

}  // namespace

ProgramSet lower_training_step(const Scenario& s, const StepOptions& options) {
  const PlanSpec& plan = s.plan;
  const int pp = plan.pp, v = std::max(1, plan.virtual_stages), dp = plan.dp;
  const int64_t full = micro_batches_per_step(s);
  const int m = int(options.micro_batches > 0 ? std::min(options.micro_batches, full) : full);
  if (const std::string why = stage_split_problem(s.model, plan); !why.empty()) throw std::invalid_argument(why);
  const int chunks = pp * v;
  // The layers of chunk g: stage g's own (even, or the plan's uneven first/last stages, v = 1), or
  // under interleaving one of pp x v equal chunks.
  auto chunk_layers = [&](int g) {
    if (v == 1) return stage_layers(s.model, plan, g);
    const int64_t n = s.model.layers / chunks;
    return StageLayers{g * n, n};
  };
  const int64_t tokens = rank_tokens(s);   // per rank: seq / cp of each sequence
  StepPieces pieces = build_step_pieces(s, tokens);
  if (options.fold_tp)
    for (auto [p, label] : {std::pair{&pieces.layer_fwd, "fwd"}, {&pieces.layer_bwd, "bwd"},
                            {&pieces.attention_recompute, "attn.recompute"}, {&pieces.embedding_fwd, "embedding.fwd"},
                            {&pieces.embedding_bwd, "embedding.bwd"}, {&pieces.output_fwd, "output.fwd"},
                            {&pieces.output_bwd, "output.bwd"}})
      *p = fold_collectives(*p, label);
  // Recomputed forward pieces run inside the backward pass, and are marked so.
  auto recomputed = [](Piece piece) {
    for (Op& op : piece.ops) op.recompute = true;
    return piece;
  };
  const Piece layer_recompute = recomputed(pieces.layer_fwd);
  const Piece attention_recompute = recomputed(pieces.attention_recompute);
  const std::map<SlotKey, double> ends = ideal_slot_ends(pp, v, m);
  const Algorithm algorithm = parse_algorithm(plan.collective_algorithm);
  // Activations and gradients between stages: [tokens, h], sequence-sharded under SP, scattered
  // over the TP group and gathered on arrival under Megatron's scatter/gather (pipeline_p2p.hpp).
  const DType moved = precision_of(s).communication;   // what activations and parameters travel in
  const double tensor_bytes = double(tokens) * double(s.model.hidden) * dtype_bytes(moved);
  const double p2p_bytes = p2p_send_bytes(plan, tensor_bytes);
  const bool scattered = p2p_scattered(plan);

  ProgramSet set;
  set.tp = plan.tp;
  set.pp = pp;
  set.dp = dp;
  // Expert parallelism trades tokens between the first ep replicas: they all keep their ops.
  const int ep = std::max(1, plan.ep);
  set.dp_symmetry = options.one_dp_replica && dp > ep;
  MergedRuns merged_runs;
  // Ranks of one stage run the same program but for their groups and pipeline peers: the first
  // rank of each stage is lowered, the others are bound to it with their own groups and peers.
  struct Template {
    int rank = -1;
    std::vector<int> tp_group, dp_group, ep_group, expert_dp_group, cp_group;
    int prev = -1, next = -1;
  };
  std::map<int, Template> templates;   // by stage
  set.ranks.resize(size_t(plan.world()));
  set.bindings.resize(size_t(plan.world()));
  for (int rank = 0; rank < plan.world(); ++rank) {
    const RankCoords c = rank_coords(plan, rank);
    if (options.one_dp_replica && c.dp_index >= ep) {
      set.ranks[size_t(rank)].rank = rank;   // another replica: simulated by symmetry
      continue;
    }
    const int stage = c.pp_index;
    std::vector<int> dp_group;
    // Gradients are reduced over dp and cp: CP ranks hold the same weights and other tokens.
    for (int d = 0; d < dp; ++d)
      for (int i = 0; i < plan.cp; ++i) dp_group.push_back(rank_of(plan, c.tp_index, d, stage, i));
    const int prev = rank_of(plan, c.tp_index, c.dp_index, (stage + pp - 1) % pp, c.cp_index);
    const int next = rank_of(plan, c.tp_index, c.dp_index, (stage + 1) % pp, c.cp_index);
    if (auto t = templates.find(stage); t != templates.end()) {
      const Template& from = t->second;
      set.ranks[size_t(rank)].rank = rank;
      RankBinding& b = set.bindings[size_t(rank)];
      b.from = from.rank;
      b.groups = {{from.tp_group, c.tp_group}, {from.dp_group, dp_group}};
      if (ep > 1) b.groups.insert(b.groups.end(), {{from.ep_group, c.ep_group}, {from.expert_dp_group, c.expert_dp_group}});
      if (plan.cp > 1) b.groups.push_back({from.cp_group, c.cp_group});
      b.peers = {{from.prev, prev}, {from.next, next}};
      continue;
    }
    const std::vector<PipelineSlot> order = pipeline_order(pp, stage, v, m);

    // Every message this rank receives, in global (timestamp, tag) order.
    std::vector<PendingRecv> recvs;
    for (const PipelineSlot& slot : order) {
      const int g = slot.chunk * pp + stage;
      if (slot.forward && g > 0)
        recvs.push_back({ends.at({true, slot.micro_batch, g - 1}), message_tag(false, slot.micro_batch, g - 1, m), false,
                         slot.micro_batch, g});
      if (!slot.forward && g < chunks - 1)
        recvs.push_back({ends.at({false, slot.micro_batch, g + 1}), message_tag(true, slot.micro_batch, g + 1, m), true,
                         slot.micro_batch, g});
    }
    std::sort(recvs.begin(), recvs.end(),
              [](const PendingRecv& a, const PendingRecv& b) { return std::tie(a.ts, a.tag) < std::tie(b.ts, b.tag); });
    size_t posted = 0;
    std::map<std::tuple<bool, int, int>, int> recv_op;   // (gradient, micro-batch, consumer chunk) -> op id

    StepWriter w(c, options.fold_tp, merged_runs);
    // The op a slot's first layer waits for: the receive, or the all-gather of its scattered
    // slices, appended here (just before the slot) so the TP stream runs it in the slot's order.
    auto arrived = [&](bool gradient, int mb, int g) {
      const int recv = recv_op.at({gradient, mb, g});
      if (!scattered) return recv;
      return w.append(p2p_gather(fmt::format("mb{}.chunk{}.{}.all_gather", mb, g, gradient ? "grad" : "act"), c.tp_group,
                                 tensor_bytes, recv, gradient ? Pass::backward : Pass::forward, mb, algorithm));
    };
    auto post_until = [&](double ts, int tag) {
      for (; posted < recvs.size() && std::tie(recvs[posted].ts, recvs[posted].tag) < std::tie(ts, tag); ++posted) {
        const PendingRecv& r = recvs[posted];
        recv_op[{r.gradient, r.micro_batch, r.chunk}] = w.append(
            p2p_op(OpKind::recv, fmt::format("mb{}.chunk{}.{}.recv", r.micro_batch, r.chunk, r.gradient ? "grad" : "act"),
                   r.gradient ? next : prev, r.tag, p2p_bytes, r.micro_batch));
      }
    };

    // DP gradient buckets, filled as the last micro-batch's backward frees each layer's gradients,
    // and reduced then (dp_overlap) or all after the backward pass. Experts' gradients have buckets
    // of their own, reduced over the expert-DP group (the replicas holding the same experts).
    struct Buckets {
      std::vector<int> group;
      std::string name;
      double filling = 0;
      std::vector<double> deferred;   // bucket sizes waiting for the end of the backward pass
    };
    Buckets dense{dp_group, "dp.grads.bucket", 0, {}}, expert{c.expert_dp_group, "dp.expert_grads.bucket", 0, {}};
    std::vector<int> dp_ops;
    std::vector<int> backwards_done(size_t(v), 0);
    auto reduce_bucket = [&](const Buckets& b, double params) {
      const auto kind = plan.distributed_optimizer ? CollectiveOp::reduce_scatter : CollectiveOp::all_reduce;
      dp_ops.push_back(w.append(dp_collective(kind, fmt::format("{}{}", b.name, dp_ops.size()), b.group,
                                              params * main_grad_bytes(s.model.dtype), w.last_compute(), algorithm)));
    };
    auto flush = [&](Buckets& b) {
      if (b.filling > 0 && b.group.size() > 1) {
        if (plan.dp_overlap) reduce_bucket(b, b.filling);
        else b.deferred.push_back(b.filling);
      }
      b.filling = 0;
    };
    auto fill = [&](Buckets& b, double params) {
      b.filling += params;
      if (b.filling >= bucket_params(int(b.group.size()))) flush(b);
    };
    auto add_grads = [&](double params, double expert_params = 0) {
      fill(dense, params - expert_params);
      if (expert_params > 0) fill(expert, expert_params);
    };
    double local_params = 0;

    for (const PipelineSlot& slot : order) {
      const int g = slot.chunk * pp + stage;
      const int mb = slot.micro_batch;
      const std::string prefix;   // op names leave the micro-batch out: it is the op's micro_batch field
      const StageLayers chunk = chunk_layers(g);
      const int first_layer = int(chunk.first), layers_per_chunk = int(chunk.count);
      std::vector<int> roots;
      if (slot.forward) {
        if (g > 0) {
          post_until(ends.at({true, mb, g - 1}), message_tag(false, mb, g - 1, m) + 1);
          roots.push_back(arrived(false, mb, g));
        } else {
          w.stamp(pieces.embedding_fwd, prefix, -1, mb, roots);
        }
        for (int l = 0; l < layers_per_chunk; ++l)
          w.stamp(pieces.layer_fwd, fmt::format("layer{}", first_layer + l), first_layer + l, mb,
                  l == 0 ? roots : std::vector<int>{});
        if (g == chunks - 1) {
          w.stamp(pieces.output_fwd, prefix, -1, mb, {});
        } else {
          const int tag = message_tag(false, mb, g, m);
          post_until(ends.at({true, mb, g}), tag);
          Op send = p2p_op(OpKind::send, fmt::format("mb{}.chunk{}.act.send", mb, g), next, tag, p2p_bytes, mb);
          send.deps = {w.last_compute()};
          w.append(std::move(send));
        }
        continue;
      }
      const bool last_micro_batch = ++backwards_done[size_t(slot.chunk)] == m;
      if (g == chunks - 1) {
        w.stamp(pieces.output_bwd, prefix, -1, mb, {});
        if (last_micro_batch) add_grads(pieces.output_params);   // the output head and final norm
      } else {
        post_until(ends.at({false, mb, g + 1}), message_tag(true, mb, g + 1, m) + 1);
        roots.push_back(arrived(true, mb, g));
      }
      for (int l = layers_per_chunk - 1; l >= 0; --l) {
        const int layer = first_layer + l;
        const std::string lp = fmt::format("layer{}", layer);
        const std::vector<int> r = l == layers_per_chunk - 1 ? roots : std::vector<int>{};
        if (plan.recompute == Recompute::full) w.stamp(layer_recompute, lp + ".recompute", layer, mb, r);
        if (plan.recompute == Recompute::selective) w.stamp(attention_recompute, lp, layer, mb, r);
        w.stamp(pieces.layer_bwd, lp, layer, mb, plan.recompute == Recompute::none ? r : std::vector<int>{});
        if (last_micro_batch) add_grads(pieces.layer_params, pieces.layer_expert_params);
      }
      if (g == 0) {
        w.stamp(pieces.embedding_bwd, prefix, -1, mb, {});
        if (last_micro_batch) add_grads(pieces.embedding_params);
      } else {
        const int tag = message_tag(true, mb, g, m);
        post_until(ends.at({false, mb, g}), tag);
        Op send = p2p_op(OpKind::send, fmt::format("mb{}.chunk{}.grad.send", mb, g), prev, tag, p2p_bytes, mb);
        send.deps = {w.last_compute()};
        w.append(std::move(send));
      }
    }
    post_until(1e300, 0);
    for (Buckets* b : {&dense, &expert}) {
      flush(*b);
      for (double params : b->deferred) reduce_bucket(*b, params);
    }

    // Optimizer: Adam over this rank's parameters (its 1/dp shard with the distributed optimizer).
    double stage_layer_count = 0;
    for (int chunk = 0; chunk < v; ++chunk) stage_layer_count += double(chunk_layers(chunk * pp + stage).count);
    local_params = pieces.layer_params * stage_layer_count + (stage == 0 ? pieces.embedding_params : 0) +
                   (stage == pp - 1 ? pieces.output_params : 0);
    const double expert_params = pieces.layer_expert_params * stage_layer_count;
    const double dense_params = local_params - expert_params;
    const double updated = plan.distributed_optimizer
                               ? dense_params / double(dp_group.size()) + expert_params / double(c.expert_dp_group.size())
                               : local_params;
    Op adam;
    adam.kind = OpKind::kernel;
    adam.name = "optimizer.adam";
    adam.kernel.fn = "adam";
    adam.kernel.attrs["params"] = updated;
    adam.flops = kAdamFlopsPerParam * updated;
    adam.hbm_bytes = kAdamBytesPerParam * updated;
    adam.dtype = DType::fp32;
    adam.pass = Pass::optimizer;
    adam.deps = dp_ops;
    const int adam_id = w.append(std::move(adam));
    auto gather_params = [&](const char* name, const std::vector<int>& group, double params) {
      if (!plan.distributed_optimizer || group.size() < 2 || params <= 0) return;
      Op gather = dp_collective(CollectiveOp::all_gather, name, group, params * dtype_bytes(moved), adam_id, algorithm);
      gather.pass = Pass::optimizer;   // the updated parameter shards go back to every replica
      w.append(std::move(gather));
    };
    gather_params("dp.params.all_gather", dp_group, dense_params);
    gather_params("dp.expert_params.all_gather", c.expert_dp_group, expert_params);
    set.ranks[size_t(rank)] = w.finish();
    for (Op& op : set.ranks[size_t(rank)].ops) op.stage = c.pp_index;
    templates[stage] = Template{rank, c.tp_group, dp_group, c.ep_group, c.expert_dp_group, c.cp_group, prev, next};
  }
  return set;
}

}  // namespace tpsim::lowering
