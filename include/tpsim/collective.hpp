// Collective algorithms, each written once as a Schedule: rounds of point-to-point chunk transfers,
// each a copy or a reduce. The numerics interpreter executes a Schedule on real buffers; the timing
// engine turns the same Schedule into SimGrid communications (one message per transfer at `step`
// fidelity, one flow per edge at `flow` fidelity).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

namespace tpsim {

enum class CollectiveOp { all_reduce, all_gather, reduce_scatter, broadcast, reduce, all_to_all, send_recv };
// tree: NCCL's tree (across nodes: an intra-node chain under an inter-node double binary tree);
// nvls_tree: NVLS inside each node, double binary tree between nodes; pat: Parallel Aggregated
// Trees (all-gather / reduce-scatter, one GPU per node); one_shot, two_shot: inference engines'
// custom all-reduce by peer-memory reads inside one node (not NCCL; the selector never picks them
// unless asked: plan.tp_allreduce, --algo).
enum class Algorithm { automatic, ring, tree, halving_doubling, direct, nvls, hierarchical, nvls_tree, pat, one_shot, two_shot };

const char* to_string(CollectiveOp op);

const char* to_string(Algorithm a);
CollectiveOp parse_collective_op(const std::string& s);   // "all_reduce", "allreduce", ... ; throws
Algorithm parse_algorithm(const std::string& s);          // "ring", "auto", ... ; throws

// One collective made concrete before either interpreter runs (the selector in the timing stage,
// modelled on NCCL's tuner, fills it in): the numerics execute exactly this instance and the timing
// engine times exactly this instance, so the reduction order that was verified is the one timed.
// A channel is one parallel ring / tree over the group; it carries a contiguous 1/channels of
// the data (as NCCL splits a buffer over channels) with the group's ranks in its own order.
struct CollectiveInstance {
  Algorithm algorithm = Algorithm::automatic;    // never automatic once resolved
  std::string protocol;                          // NCCL protocol: "LL", "LL128", "Simple", or "ideal"
  std::vector<std::vector<int>> channel_orders;  // per channel: positions in the group, in ring order
  int pipeline = 0;                              // ScheduleRequest::pipeline (chunks per channel)
  int ranks_per_node = 0;                        // hierarchical, nvls_tree, tree across nodes: ranks per node
  bool resolved() const { return algorithm != Algorithm::automatic; }
};
// "ring/Simple, 8 channels" (+ ", 4 chunks" for pipelined algorithms): how reports name an instance.
std::string describe(const CollectiveInstance& instance);

// Every participant owns one buffer of `chunks` equal chunks. A transfer reads chunk `src_chunk`
// of `src` as it was at the start of the round and copies it into, or adds it to, chunk
// `dst_chunk` of `dst`. Participants 0..ranks-1 are the group's ranks in order; an algorithm may
// add helpers (an NVSwitch doing in-switch reduction is participant `ranks`).
struct Transfer {
  int src = 0, dst = 0;
  int src_chunk = 0, dst_chunk = 0;
  bool reduce = false;
  int channel = 0;   // NCCL-style channel (parallel ring / tree) the transfer belongs to
};

// Transfers in one round may run concurrently. A participant starts round r+1 once all of its own
// round-r sends and receives are done (no global barrier), as NCCL's pipelined steps do.
struct Round {
  std::vector<Transfer> transfers;
};

struct Schedule {
  CollectiveOp op = CollectiveOp::all_reduce;
  Algorithm algorithm = Algorithm::ring;
  int ranks = 0;           // group size
  int participants = 0;    // ranks + helper participants (switches)
  int chunks = 0;          // chunks per participant buffer
  std::vector<Round> rounds;
  // Where each rank's input lives before round 0 and its output after the last round, as chunk
  // index lists (all-reduce: all chunks in, all out; all-gather: chunk r in, all out; ...).
  std::vector<std::vector<int>> input_chunks, output_chunks;
};

struct ScheduleRequest {
  CollectiveOp op = CollectiveOp::all_reduce;
  Algorithm algorithm = Algorithm::ring;
  int ranks = 2;
  int channels = 1;        // parallel rings / trees; chunks multiply by this
  int root = 0;            // broadcast / reduce
  int ranks_per_node = 0;  // hierarchical, nvls_tree, tree (all_reduce): group is nodes x ranks_per_node,
                           // node-major (tree: 0 = one flat double binary tree over all ranks)
  int pipeline = 0;        // pipelined schedules (chain broadcast/reduce, tree, NVLS): chunks each
                           // channel's (each tree's) data is cut into; 0 = max(ranks, 4)
};

// Builds the schedule or throws std::invalid_argument naming what does not fit (e.g. halving-
// doubling on a non-power-of-two group, NVLS for all-gather).
Schedule make_schedule(const ScheduleRequest& request);

// The schedule one channel of a resolved instance runs: the instance's algorithm, pipeline and
// ranks per node over `ranks` participants, rooted (broadcast, reduce) where the channel's order
// puts group position `root`. The numerics and the timing engine both build channels from this.
ScheduleRequest channel_request(CollectiveOp op, const CollectiveInstance& instance, int ranks,
                                const std::vector<int>& channel_order, int root);

// Bytes each participant sends over the whole schedule for a collective of `bytes` (nccl-tests size).
double chunk_bytes(const Schedule& s, double bytes);

// nccl-tests' bus-bandwidth factor: busbw = algbw * factor (2(p-1)/p all-reduce, (p-1)/p all-gather,
// reduce-scatter and all-to-all, 1 else).
double busbw_factor(CollectiveOp op, int ranks);

// The algorithm `automatic` stands for when nothing is known about the topology: ring for the
// reductions and gathers, direct for all-to-all and send/recv. (The engine resolves `auto` with
// the topology and size before asking for a schedule.)
Algorithm default_algorithm(CollectiveOp op);

// Bytes each participant sends over the whole schedule (index = participant); a transfer to itself
// (a local read) sends nothing. chunk_bytes is the largest of these.
std::vector<double> bytes_sent(const Schedule& s, double bytes);

// Edge view for `flow` fidelity: chunks moved per (src, dst) pair over the whole schedule, sorted
// by (src, dst); and the latency term: the longest chain of rounds, counting a transfer as one
// step that starts once both ends have finished their previous rounds (no global barrier).
struct Edge {
  int src = 0, dst = 0;
  double chunks = 0;
};
std::vector<Edge> schedule_edges(const Schedule& s);
int critical_rounds(const Schedule& s);

// The same view straight from a request, without materialising the transfers where a closed form
// exists (ring all-reduce / all-gather / reduce-scatter, hierarchical, tree, direct all-to-all): a
// 4096-rank ring all-reduce has 33.5M transfers but only 4096 edges. Equal to the schedule's edges
// and critical_rounds (tested); chunk bytes = bytes / size_chunks.
struct FlowView {
  std::vector<Edge> edges;
  int rounds = 0;         // critical_rounds
  int participants = 0;
  int chunks = 0;         // Schedule::chunks
  int size_chunks = 0;    // chunks that make up the nccl-tests size
};
FlowView flow_view(const ScheduleRequest& request);

// Where an NVLS-tree schedule's helper participant q (>= ranks) runs (collectives/nvls_tree.cpp):
// on the NVSwitch of node `node`, or, as a head's role, on the GPU of rank `rank`; the other is -1.
struct HelperPlace {
  int node = -1, rank = -1;
};
HelperPlace nvls_tree_helper(int ranks, int ranks_per_node, int participant);

// Executes a schedule on real buffers: buffers[participant] holds s.chunks * chunk_elems floats
// (grown with zeros if smaller). Transfers of a round read their source as it was at the start of
// the round and are applied in the schedule's order, so reductions are deterministic. A reduce
// adds in fp32, then applies round_fn to each sum if given (bf16 rounding after every hop).
// `snapshot`, when given, is reused for the round-start copies instead of fresh memory.
void run_schedule(const Schedule& s, std::vector<std::vector<float>>& buffers, size_t chunk_elems,
                  float (*round_fn)(float) = nullptr, std::vector<float>* snapshot = nullptr);

// Convenience layer for numerics: each rank's input in its natural layout, each rank's output back.
// Inputs: all-reduce / broadcast / reduce: the full buffer (broadcast reads the root's only);
// all-gather: one shard per rank (equal sizes); reduce-scatter: the full buffer, shard r =
// elements [r*ceil(n/p), (r+1)*ceil(n/p)); all-to-all: p equal slots, slot j for rank j;
// send/recv: the buffer rank r sends to rank r+1.
// Outputs: all-reduce / broadcast: full buffer on every rank; reduce: full buffer on the root,
// empty elsewhere; all-gather: shards concatenated in rank order; reduce-scatter: rank r's reduced
// shard; all-to-all: the slots received, in sender order; send/recv: the buffer from rank r-1.
// Sizes that do not divide into chunks are zero-padded internally and trimmed on the way out.
struct CollectiveRunOptions {
  int channels = 1;
  int root = 0;
  int ranks_per_node = 0;
  int pipeline = 0;
  float (*round_fn)(float) = nullptr;
};
std::vector<std::vector<float>> run_collective(CollectiveOp op, Algorithm algorithm,
                                               const std::vector<std::vector<float>>& inputs,
                                               const CollectiveRunOptions& options = {});
// Same for a resolved instance: every channel runs the instance's schedule on its slice of the
// data with the ranks in the channel's order (op, algorithm, pipeline and ranks_per_node from it).
// `edit`, when given, is applied to each channel's schedule before it runs (tests plant bugs).
std::vector<std::vector<float>> run_collective(CollectiveOp op, const CollectiveInstance& instance,
                                               const std::vector<std::vector<float>>& inputs, int root = 0,
                                               float (*round_fn)(float) = nullptr,
                                               const std::function<void(Schedule&)>& edit = {});
// Same, reading the inputs and writing the outputs where they are: outputs[r] must hold
// collective_output_length(op, r, n, p) elements (n = the longest input). The interpreter's chunk
// buffers live in `scratch`, which keeps its memory for the next call: a 7B layer's collectives
// otherwise page-fault fresh 32 MiB buffers in on every call. Returns which ranks got an output.
struct CollectiveScratch {
  std::vector<std::vector<float>> buffers;   // per participant: chunks x chunk elements
  std::vector<float> snapshot;               // round-start copies (run_schedule)
};
std::vector<char> run_collective(CollectiveOp op, const CollectiveInstance& instance,
                                 const std::vector<std::span<const float>>& inputs,
                                 const std::vector<std::span<float>>& outputs, CollectiveScratch& scratch, int root = 0,
                                 float (*round_fn)(float) = nullptr, const std::function<void(Schedule&)>& edit = {});
// The natural output length of rank `rank` for inputs of n elements over p ranks (reduce: the
// root's; all-gather p*n; reduce-scatter rank's shard of ceil(n/p), clipped to n).
size_t collective_output_length(CollectiveOp op, int rank, size_t n, int p);
// Same on a given schedule (inputs.size() == s.ranks).
std::vector<std::vector<float>> run_collective(const Schedule& s, const std::vector<std::vector<float>>& inputs,
                                               float (*round_fn)(float) = nullptr);

}  // namespace tpsim
