// Program: the one IR both interpreters read. Lowering turns a Scenario into one Program per rank
// (a DAG of ops with shapes); numerics executes it on real tensors, timing turns it into SimGrid
// activities. Neither backend re-derives the plan.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "tpsim/collective.hpp"
#include "tpsim/spec.hpp"
#include "tpsim/tp_mappings.hpp"

namespace tpsim {

// Tensors are 2-D and local to one rank: activations are [tokens, features] (tokens = batch * seq
// rows), weights are [in, out] so a linear is Y = X W. A tensor name is unique within a Program.
struct TensorDesc {
  std::string name;
  int64_t rows = 0, cols = 0;
  DType dtype = DType::bf16;
  // Where a weight comes from: the unsharded tensor it is a shard of, and which part. Numerics
  // fills every rank's shard by slicing one deterministic full tensor, so shards agree by
  // construction and the unsharded run sees the very same numbers.
  bool is_weight = false;
  std::string global_name;            // "layer0.mlp.fc1"
  int64_t global_rows = 0, global_cols = 0;
  int split_dim = -1;                 // -1 replicated, 0 rows, 1 columns
  int parts = 1, part = 0;            // split into `parts` equal blocks, this is block `part`
  // An expert-parallel rank's tokens are its slice of the EP group's batch: rows are block
  // `row_part` of `row_parts` of the global rows, on top of any split above (a sequence shard
  // splits that block further).
  int row_parts = 1, row_part = 0;
  // A context-parallel rank's tokens: of every sequence of cp_seq tokens (cut into 2 cp_parts
  // chunks) it holds chunks cp_part and 2 cp_parts - 1 - cp_part (causal load balancing). Applied
  // before row_parts, after a sequence shard's split.
  int cp_parts = 1, cp_part = 0;
  int64_t cp_seq = 0;
  // A weight split over heads (attention qkv) is a strided shard: `part`'s columns are taken
  // from each of `interleave` equal column groups (q, k, v). 1 = one contiguous block.
  int interleave = 1;
  // Unequal interleave groups (grouped-query qkv: q is heads*head_dim wide, k and v kv_heads*head_dim):
  // the global column count of each group; empty = `interleave` equal groups.
  std::vector<int64_t> interleave_cols;
  // > 0: the tensor holds integer ids in [0, index_range) stored as numbers (token ids, targets).
  int64_t index_range = 0;
};

enum class OpKind { gemm, kernel, collective, send, recv };
const char* to_string(OpKind k);

// Which pass of a training step an op belongs to. Inference ops are all forward.
enum class Pass { forward, backward, optimizer };
const char* to_string(Pass p);

// Which queue the op is issued on; ops on one stream run in program order.
enum class Stream { compute, tp_comm, dp_comm, pp_comm };
inline constexpr int kStreamCount = 4;
const char* to_string(Stream s);

// out = op(A) @ op(B), op = transpose when trans_* is set. Shapes after op: A [m, k], B [k, n].
// Where a weight-gradient GEMM's product goes in mixed-precision training (Megatron's fp32
// main_grad, accumulated over the micro-batches of a step): timing only, numerics ignores it.
enum class MainGrad : uint8_t {
  none,        // not a weight gradient (or no fp32 main gradient)
  fused,       // the GEMM reads and writes the fp32 main gradient itself (gradient_accumulation_fusion)
  separate,    // a bf16 product, then an add kernel into the fp32 main gradient (Megatron-LM 2021)
};

struct GemmInfo {
  int64_t m = 0, n = 0, k = 0;
  bool trans_a = false, trans_b = false;
  bool accumulate = false;   // out += ... (weight-gradient accumulation over micro-batches)
  MainGrad main_grad = MainGrad::none;
  // Bytes per element of A, B and the output as stored in HBM (workload.precision: an FP8 weight
  // under BF16 activations); 0 = the GEMM's dtype.
  int a_bytes = 0, b_bytes = 0, c_bytes = 0;
  // The k-sum runs over rows in another order than the unsharded run's: an expert's weight
  // gradient over tokens regrouped by the all-to-all (numerics' tolerance counts a reassociation).
  bool reordered_k = false;
};

// A named kernel other than a GEMM: "gelu", "gelu_backward", "swiglu", "add", "layernorm",
// "rmsnorm", "attention" (fused causal softmax(QK^T)V over local heads), "embedding",
// "cross_entropy", ... The numerics registry maps the name to Eigen code; timing only needs the
// FLOPs and HBM bytes.
struct KernelInfo {
  std::string fn;
  std::map<std::string, double> attrs;   // e.g. heads, kv_heads, head_dim, seq, batch, eps
};

// A collective over a group of global ranks. `bytes` follows nccl-tests' "size": the full buffer
// for all-reduce / broadcast / reduce, the gathered output for all-gather, the un-scattered input
// for reduce-scatter, the whole send buffer for all-to-all.
enum class GroupAxis : uint8_t { tp, ep, cp };

struct CollectiveInfo {
  CollectiveOp op = CollectiveOp::all_reduce;
  Algorithm algorithm = Algorithm::automatic;
  std::vector<int> group;   // global ranks, in ring order
  int64_t bytes = 0;
  int dim = 1;              // tensor dim that all-gather concatenates / reduce-scatter splits
  int root = 0;             // index into group (broadcast, reduce)
  // The mesh axis the group runs along: the rank's TP group, its expert-parallel group (a MoE
  // all-to-all) or its CP ring (ring attention's KV shifts). A step piece stamped for another rank
  // takes that rank's group along the same axis.
  GroupAxis axis = GroupAxis::tp;
  CollectiveInstance instance;   // resolved before numerics and timing run (unresolved after lowering)
};

struct P2PInfo {
  int peer = -1;            // global rank
  int64_t bytes = 0;
  int tag = 0;              // matches a send with its recv
};

struct Op {
  int id = 0;                            // index in Program::ops
  OpKind kind = OpKind::kernel;
  std::string name;                      // "layer3.mlp.fc1.fwd"
  Pass pass = Pass::forward;
  int layer = -1;                        // transformer layer, -1 outside layers
  int micro_batch = 0;
  int stage = 0;                         // pipeline stage (pp index) of the rank that runs it
  TpMappingId mapping = TpMappingId::none;   // the TP mapping this op implements (tp_mappings.hpp)
  Stream stream = Stream::compute;
  std::vector<int> deps;                 // ops (same Program) that must finish first
  std::vector<std::string> inputs;       // tensor names read
  std::vector<std::string> outputs;      // tensor names written
  double flops = 0;                      // for timing
  double hbm_bytes = 0;                  // bytes read + written in HBM, for the roofline
  DType dtype = DType::bf16;
  GemmInfo gemm;
  // A forward op run again inside the backward pass (activation recomputation): Megatron counts
  // it as backward time, and so do the per-layer figures.
  bool recompute = false;
  KernelInfo kernel;
  CollectiveInfo collective;
  P2PInfo p2p;
  // A fused op (kernel fn "fused") stands for these ops, lowered once and shared by every place the
  // step stamps them: their deps index this list, each part runs on its own stream in list order.
  // The timing engine runs them alone and reuses the duration (compute parts by the cost model,
  // collectives timed alone with their instance: a folded TP collective); nothing is pre-timed here.
  std::shared_ptr<const std::vector<Op>> parts;
};

struct Program {
  int rank = 0;
  std::map<std::string, TensorDesc> tensors;
  std::vector<Op> ops;
};

// A rank that runs another rank's ops with its own collective groups and pipeline peers. Every
// rank of a pipeline stage runs the same training-step program but for those, so a 1024-GPU step
// holds one program per stage and a binding per rank instead of 1024 copies of ~500 ops (copying
// them was most of the lowering time and a third of the memory).
struct RankBinding {
  int from = -1;   // the rank whose Program this rank runs; -1: its own
  // `from`'s groups and peers, each with this rank's in its place. A group not listed is its own.
  std::vector<std::pair<std::vector<int>, std::vector<int>>> groups;
  std::vector<std::pair<int, int>> peers;
};

// The ranks' programs plus the mesh coordinates they were lowered for.
struct ProgramSet {
  std::vector<Program> ranks;            // ranks[r].rank == r
  // Empty, or one per rank: a rank bound to another runs that rank's ops (its own Program is
  // empty). Its collectives run the instance resolved for its own group (the other rank's
  // instance does not carry over), as they would in its own copy of the program.
  std::vector<RankBinding> bindings;
  int tp = 1, pp = 1, dp = 1;
  // Replica symmetry: only DP replica 0's ranks have ops (the others' programs are empty). A
  // collective whose group reaches those ranks is timed by the engine alone on the full
  // topology, which is what every replica's identical copy of it takes when they run together.
  bool dp_symmetry = false;
};

// The ops rank `rank` runs: its own program, or the one it is bound to.
const Program& program_of(const ProgramSet& set, int rank);
// The group a collective op of program_of(set, rank) runs on, and the peer of a send / recv, for
// that rank.
const std::vector<int>& group_of(const ProgramSet& set, int rank, const CollectiveInfo& c);
int peer_of(const ProgramSet& set, int rank, const P2PInfo& p);
// Gives every bound rank its own copy of its program, with its own groups and peers (collectives
// whose group changed unresolved again): the set as it would be without bindings.
void expand_bindings(ProgramSet& set);

}  // namespace tpsim
