// ProgramBuilder: emits one rank's ops for the pieces of a transformer (norms, linears under a
// partition spec, attention, MLP, embedding, output + loss), forward and backward, so lower() and a
// training-step composer (pipeline, DP, optimizer) build Programs from the same code.
//
// Activations are tracked as Values with a layout over the rank's TP group: full (replicated),
// seq (rows split: sequence parallelism), feat (columns split), partial (a sum still to be
// reduced). Every change of layout goes through one row of the TP mapping table
// (tp_mappings.hpp), which names its forward collective and its backward conjugate; the forward
// call records the backward step on a Tape, and backward() replays a Tape in reverse.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "tpsim/program.hpp"
#include "tpsim/spec.hpp"

namespace tpsim::lowering {

// Where a rank sits in the mesh, and the global ranks of its tensor-parallel group (in ring order).
struct RankCoords {
  int rank = 0;
  int tp_index = 0, dp_index = 0, pp_index = 0;
  std::vector<int> tp_group;
  // Context parallelism (plan.cp): the rank's place in its CP ring and the ring's ranks (same TP,
  // DP and stage indices).
  int cp_index = 0;
  std::vector<int> cp_group;
  // Expert parallelism (plan.ep): the EP group is the ep DP replicas with consecutive dp indices
  // (same TP index and stage); ep_index is the position in it. The expert-data-parallel group
  // holds the same experts: one rank of each EP group, where the experts' gradients are reduced.
  int ep_index = 0;
  std::vector<int> ep_group, expert_dp_group;
  // The rank's group along a collective's axis (CollectiveInfo::axis).
  const std::vector<int>& group(GroupAxis axis) const {
    return axis == GroupAxis::ep ? ep_group : axis == GroupAxis::cp ? cp_group : tp_group;
  }
};
int rank_of(const PlanSpec& plan, int tp_index, int dp_index, int pp_index, int cp_index = 0);   // honours mesh_order
RankCoords rank_coords(const PlanSpec& plan, int rank);

enum class Layout { full, seq, feat, partial };

// A weight of one of a mixture-of-experts layer's experts ("layer3.moe.expert5.fc1").
bool is_expert_weight(const std::string& name);

// A logical activation on this rank. `base` is the name of the unsharded tensor it holds (all or a
// part of); gradients are accumulated under `grad_key`. `grad_partial`: the gradient arriving at
// this value is a partial sum over the TP group (a column-parallel linear's input).
struct Value {
  std::string tensor;
  std::string base;
  Layout layout = Layout::full;
  std::string grad_key;
  bool grad_partial = false;
};

// Backward steps recorded by forward calls; backward() runs them last-first.
struct Tape {
  std::vector<std::function<void()>> steps;
};

// How one linear is split and what communication surrounds it (resolved from preset, partition
// spec and explicit mapping).
enum class LinearKind { replicated, column, row };
struct LinearPlan {
  LinearKind kind = LinearKind::replicated;
  bool gather_output = false;               // column: all-gather the output
  std::optional<bool> input_is_parallel;    // row: explicit; unset = derive
  std::optional<bool> reduce_output;        // row: explicit; unset = derive (reduce)
  bool head_interleaved = false;            // qkv column shards follow heads (strided over q, k, v)
};

class ProgramBuilder {
 public:
  ProgramBuilder(const Scenario& scenario, RankCoords coords, int64_t tokens);

  const Scenario& scenario() const { return scenario_; }
  const RankCoords& coords() const { return coords_; }
  int tp() const { return tp_; }
  int64_t tokens() const { return tokens_; }
  Layout stream_layout() const;   // layout of the residual stream: seq under SP, else full

  // Names of this micro-batch's activations get a "mbN." prefix (N > 0) and ops carry micro_batch;
  // weight gradients of later micro-batches accumulate into the first one's.
  void set_micro_batch(int micro_batch);
  // Pass and pipeline stage every op carries: forward until backward() replays a tape; `optimizer`
  // for the ops a step emits after the last backward.
  void set_pass(Pass pass) { pass_ = pass; }

  // --- leaves ------------------------------------------------------------------------------
  // An input activation [tokens, cols] (global name `base`), delivered in `layout`.
  Value input(const std::string& base, int64_t cols, Layout layout);
  // Token ids [tokens, 1] in [0, vocab): "tokens" or "targets". Always replicated over TP.
  std::string token_ids(const std::string& base);
  // A weight [rows, cols] (global name `name`) split by `split_dim` into tp parts (-1: replicated).
  std::string weight(const std::string& name, int64_t rows, int64_t cols, int split_dim,
                     int interleave = 1, std::vector<int64_t> interleave_cols = {});

  // --- layers (forward records its backward on `tape`) ---------------------------------------
  Value layer_forward(int layer, const Value& x, Tape& tape);             // attention + MLP block
  Value attention_block_forward(int layer, const Value& x, Tape& tape);   // x + proj(attn(norm1(x)))
  Value mlp_block_forward(int layer, const Value& x, Tape& tape);         // x + fc2(act(fc1(norm2(x))))
  Value moe_block_forward(int layer, const Value& x, Tape& tape);         // x + sum_k g_k expert_k(norm2(x))
  // Causal attention of this CP rank's queries against every rank's keys and values, passed round
  // the CP ring (context_parallel.cpp); qkv [T/cp, (H+2K)d / tp] -> [T/cp, H d / tp].
  Value ring_attention_forward(const std::string& name, const Value& qkv, Tape& tape);
  Value embedding_forward(Tape& tape);                                    // tokens -> [tokens, hidden]
  Value output_loss_forward(const Value& x, Tape& tape);                  // final norm, output, cross-entropy -> loss [tokens, 1]

  // Pieces, public for tests of single layer types.
  Value norm_forward(const std::string& name, const Value& x, Tape& tape);
  // `reduce_row_output` false: a row-parallel output stays a partial sum, for a caller that reduces
  // several at once (a MoE layer's experts).
  Value linear_forward(const std::string& name, const std::string& plan_key, const Value& x,
                       int64_t in, int64_t out, Tape& tape, bool reduce_row_output = true);
  Value attention_forward(const std::string& name, const Value& qkv, Tape& tape);
  Value activation_forward(const std::string& name, const Value& fc1, const Value* gate, Tape& tape);
  Value residual_forward(const std::string& name, const Value& x, const Value& branch, Tape& tape);
  Value cross_entropy_forward(const std::string& name, const Value& logits, Tape& tape);

  // Re-lays `v` out as `target` through the TP mapping table (no op when already there, or tp = 1).
  // `for_column_linear`: v feeds column-parallel linears, so its gradient comes back partial
  // (Megatron's copy: identity forward, all-reduce backward).
  Value to_layout(const Value& v, Layout target, Tape& tape, bool for_column_linear = false);

  // --- backward -------------------------------------------------------------------------------
  // Seeds the gradient of `out` with tensor `dy` ("" when `out` is a loss: the loss kernel knows
  // its own gradient) and replays `tape` last-first.
  void backward(Tape& tape, const Value& out, const std::string& dy);
  // The total gradient reaching `v` (after backward()); "" if none did. Hands it out once.
  std::string gradient(const Value& v) { return take_grad(v); }
  // A gradient seed for `out`: an input tensor "<base>.grad" in out's layout (for scopes that end
  // without a loss).
  std::string gradient_seed(const Value& out);

  // --- p2p (pipeline) -------------------------------------------------------------------------
  // Pipeline messages; a replicated tensor is scattered over TP and gathered on arrival when the
  // plan says so (scattered()).
  bool scattered(Layout layout) const;
  void send(const Value& v, int peer, int tag);
  Value recv(const std::string& base, int64_t cols, Layout layout, int peer, int tag);

  LinearPlan linear_plan(const std::string& plan_key) const;
  // Attention's input: qkv on the local heads (re-laid out when it is not a head-split shard), and
  // how many query and kv heads this rank holds.
  struct AttentionInput {
    Value qkv;
    bool local = false;   // a TP shard of the heads
    int64_t heads = 0, kv_heads = 0;
  };
  AttentionInput attention_input(const std::string& name, const Value& qkv, Tape& tape);
  // Expert and context parallelism in stack scope: a weight's gradient on one rank is a sum over
  // its tokens only (the experts' excepted under EP: they see every token routed to them), so it
  // is all-reduced over the EP group and the CP ring (the slice of the DP reduction those ranks
  // share), to compare with the unsharded run over all their tokens.
  void reduce_grads_over_token_shards();
  size_t program_size() const { return program_.ops.size(); }   // ops emitted so far (step pieces)
  Program finish();

 private:
  friend struct BuilderAccess;
  std::string mb(const std::string& base) const;   // micro-batch prefix
  std::string new_tensor(const std::string& wanted, int64_t rows, int64_t cols);
  TensorDesc& desc(const std::string& tensor) { return program_.tensors.at(tensor); }
  void set_global(const std::string& tensor, const std::string& global, Layout layout);
  // Appends `op` computing in `dtype` (a GEMM: gemm_compute_dtype of its operands; collectives and
  // sends: the communication precision; other kernels: the activations').
  Op& emit(Op op, DType dtype);
  // Bytes per element of `tensor` as stored: a weight in the weights' precision, anything else in
  // the activations'.
  int element_bytes(const std::string& tensor) const;
  // Records a backward step on `tape`; it runs later with the layer and TP mapping that were
  // current when it was recorded, so its ops carry them.
  void record(Tape& tape, std::function<void()> step);
  // Work a backward step leaves until after the next step (which may issue a TP collective), so
  // the two overlap: Megatron computes a weight gradient while the input gradient is reduced.
  void defer(std::function<void()> work);
  // Sets a context field for the lifetime of a scope (the TP mapping or layer being emitted).
  template <class T>
  struct Scoped {
    T& field;
    T saved;
    Scoped(T& f, T value) : field(f), saved(f) { field = value; }
    ~Scoped() { field = saved; }
  };
  using MappingScope = Scoped<TpMappingId>;
  using LayerScope = Scoped<int>;
  using TokenScope = Scoped<int64_t>;   // an expert's buffer rows stand in for the tokens
  using LocalScope = Scoped<bool>;
  Op& gemm(const std::string& name, const std::string& a, const std::string& b, const std::string& out,
           bool trans_a, bool trans_b, bool accumulate = false);
  Op& kernel(const std::string& name, const std::string& fn, std::vector<std::string> inputs,
             std::vector<std::string> outputs, double flops, std::map<std::string, double> attrs = {});
  Op& collective(const std::string& name, CollectiveOp op, const std::string& in, const std::string& out, int dim);
  // The same over the rank's group along `axis` (its EP group, its CP ring), rows (dim 0).
  Op& axis_collective(const std::string& name, CollectiveOp op, const std::string& in, const std::string& out,
                      GroupAxis axis);
  // MoE pieces (moe_layers.cpp).
  // x [T, h] (this rank's tokens) W [h, cols] (replicated) -> [T, cols]: a MoE router, a shared
  // expert's gate.
  Value router_forward(const std::string& name, const Value& x, int64_t cols, Tape& tape);
  // The always-on shared expert: an FFN of moe.shared_expert_ffn split over TP like the dense MLP,
  // scaled by its sigmoid gate when the model has one; in x's layout.
  Value shared_expert_forward(const std::string& name, const Value& x, Tape& tape);
  // fc2(act(fc1(x) [, gate(x)])) with an FFN of width `ffn`, split over TP by the plan's mlp.* specs
  // (the dense MLP, an expert, a shared expert); `reduce_row_output` as linear_forward's.
  Value ffn_forward(const std::string& name, const Value& x, int64_t ffn, Tape& tape, bool reduce_row_output = true);
  // Gradients: contributions to a key are summed in arrival order; take_grad() hands out the total
  // (and gives it its global name, so only complete gradients are compared).
  void add_grad(const std::string& key, const std::string& tensor);
  std::string take_grad(const Value& v);
  std::string grad_tensor(const Value& v, int64_t rows, int64_t cols, bool partial);
  Value activation(const std::string& base, int64_t cols, Layout layout, const std::string& tensor_name = "");
  // A weight's gradient tensor "<w>.grad" (shaped and split like w) and whether this micro-batch
  // accumulates into it; reduce_weight_grad all-reduces a partial weight gradient into it.
  std::pair<std::string, bool> weight_grad(const std::string& w);
  void reduce_weight_grad(const std::string& w, const std::string& partial);
  int norm_split(const std::string& plan_key) const;
  int embedding_split() const;
  int64_t rows_of(Layout l) const { return l == Layout::seq ? tokens_ / tp_ : tokens_; }
  bool weight_grad_accumulates() const { return micro_batch_ > 0; }

  Scenario scenario_;
  Precision precision_;   // workload.precision resolved against model.dtype
  RankCoords coords_;
  int tp_ = 1;
  int ep_ = 1;
  int cp_ = 1;
  int64_t tokens_ = 0;   // this rank's rows of a micro-batch (seq / cp of each sequence under CP)
  // Tensors made while set have no global name: an expert's buffers hold tokens regrouped by the
  // all-to-all, which no tensor of the unsharded run lays out the same way.
  bool local_ = false;
  int micro_batch_ = 0;
  Pass pass_ = Pass::forward;
  int layer_ = -1;
  TpMappingId mapping_ = TpMappingId::none;
  Program program_;
  std::map<std::string, int> last_writer_;
  std::map<std::string, std::vector<std::string>> grads_;   // key -> contributions (tensors)
  std::map<std::string, int> name_count_;
  std::vector<std::function<void()>> deferred_;   // defer(): emitted after the next backward step
};

}  // namespace tpsim::lowering
