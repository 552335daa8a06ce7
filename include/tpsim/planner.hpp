// Planner: sweep every layout a cluster allows for one model and one target, reject the layouts
// that cannot run (invalid mesh, out of memory, late, too slow) with the reason, time the rest and
// rank them. A sweep runs layouts in forked worker processes (SimGrid allows one Engine per
// process), appends each result to its CSV as it finishes, resumes from that file, and can be cut
// into deterministic shards whose merged CSVs equal the unsharded sweep line for line.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "tpsim/progress.hpp"
#include "tpsim/spec.hpp"

namespace tpsim {

// What "best" means. throughput: tokens/s (higher first); time_to_train: seconds to train the
// target's tokens; cost: currency to train them (or per step without a token target); latency:
// seconds per inference request (prefill + every decode step).
enum class Objective { throughput, time_to_train, cost, latency };
const char* to_string(Objective o);
Objective parse_objective(const std::string& text);   // throws std::invalid_argument

struct TrainingTarget {
  int64_t global_batch = 1024;   // sequences per optimizer step
  int64_t seq = 0;               // tokens per sequence; 0 = the model's max_seq
  double tokens = 0;             // tokens to train; 0 = none (time/cost are then per step)
  double deadline_s = 0;         // 0 = none; layouts that would train longer are rejected
};

struct InferenceTarget {
  int64_t batch = 1;             // largest batch tried; the sweep tries 1, 2, 4, ... up to it
  int64_t prompt = 512;          // prompt tokens per request
  int64_t generate = 128;        // output tokens per request
  double latency_bound_s = 0;    // 0 = none; layouts whose request latency exceeds it are rejected
};

struct SweepSpec {
  ModelSpec model;
  Topology topology;                         // its `nodes` is replaced by each entry of node_counts
  std::vector<int> node_counts;              // empty = the topology's node count
  WorkloadKind kind = WorkloadKind::training;
  TrainingTarget training;
  InferenceTarget inference;
  Objective objective = Objective::throughput;
  // Training dimensions swept besides the mesh (tp, pp, dp are derived from the GPU count).
  std::vector<int64_t> micro_batches = {1, 2, 4};
  std::vector<Recompute> recomputes = {Recompute::none, Recompute::selective, Recompute::full};
  std::vector<int> virtual_stages = {1, 2};
  // Megatron's distributed optimizer (Adam states sharded over dp; reduce-scatter + all-gather in
  // place of the all-reduce): off, on, or both tried for layouts with dp > 1.
  std::vector<bool> distributed_optimizers = {false};
  // Context-parallel sizes tried (training; a mesh axis of its own: GPUs = tp x cp x pp x dp).
  std::vector<int> context_parallel = {1};
  // Expert-parallel sizes tried (a mixture-of-experts model; carved out of dp, so layouts whose dp
  // or expert count it does not divide are skipped). Empty = every power of two dividing the experts.
  std::vector<int> expert_parallel = {1};
  int max_tp = 0;                            // 0 = gpus_per_node (Megatron keeps TP inside a node)
};

// One point of the sweep. Training uses micro_batch/sp/recompute/virtual_stages; inference uses batch.
struct Layout {
  int nodes = 1;
  int tp = 1, pp = 1, dp = 1;
  int64_t micro_batch = 1;
  bool sp = false;
  Recompute recompute = Recompute::none;
  int virtual_stages = 1;
  int64_t batch = 0;              // inference batch (0 for training layouts)
  // Megatron's uneven pipeline when pp does not divide the layers (uneven_split in spec.hpp): the
  // first and last stages' layers; 0 = an even split.
  int64_t first_stage_layers = 0, last_stage_layers = 0;
  bool distributed_optimizer = false;   // training, dp > 1 only
  int cp = 1;                           // context parallelism (training)
  int ep = 1;                           // expert parallelism, carved out of dp (a MoE model)
  int gpus() const { return tp * cp * pp * dp; }
};
bool operator<(const Layout& a, const Layout& b);    // numeric order: nodes, tp, pp, dp, mb, ...
bool operator==(const Layout& a, const Layout& b);

// Stable, human-readable id: "n8-tp8-pp4-dp2-mb1-sp-rsel-v1" (training), "n1-tp4-pp1-b16" (inference);
// the distributed optimizer adds "-do", an uneven pipeline "-first7-last7", context and expert
// parallelism "-cp2", "-ep8".
std::string layout_id(const Layout& l);
Layout parse_layout_id(const std::string& id);        // throws std::invalid_argument
const char* recompute_name(Recompute r);              // "none" | "selective" | "full"

// Every layout of the sweep in numeric order (deterministic; includes layouts the checks reject).
std::vector<Layout> enumerate_layouts(const SweepSpec& spec);

// The scenario that times one layout: the topology resized to layout.nodes, a Megatron plan with the
// layout's mesh, the target's workload, numerics off.
Scenario scenario_for(const SweepSpec& spec, const Layout& layout);

// The layouts this shard runs: index % parts == shard over enumerate_layouts() (shard is 0-based).
struct Shard {
  int index = 0, parts = 1;
};
Shard parse_shard(const std::string& text);            // "i/N", 0 <= i < N; throws std::invalid_argument
std::vector<Layout> shard_layouts(const std::vector<Layout>& all, Shard shard);

// ---------------------------------------------------------------------------------------------
// Results
enum class Verdict { ok, invalid, oom, deadline, latency, error };
const char* to_string(Verdict v);

struct LayoutResult {
  Layout layout;
  Verdict verdict = Verdict::ok;
  std::string reason;            // why it was rejected ("" when ok)
  // What the evaluator measured (seconds per optimizer step, or per request for inference).
  double step_time_s = 0;
  double compute_s = 0, exposed_comm_s = 0, bubble_s = 0;   // slowest GPU, per step
  // Tensor-parallel collectives on the critical path (the evaluator folds them into the compute
  // ops at their uncontended time); compute_s excludes them.
  double tp_comm_s = 0;
  double memory_bytes = 0;       // peak per GPU (0 = unknown)
  double ttft_s = 0, tpot_s = 0; // inference: time to first token, time per output token
  // Derived by the planner from the above and the target (finish_result).
  double tokens_per_s = 0;
  double tflops_per_gpu = 0;     // model FLOPs (Narayanan et al. 2021, model_flops_per_step) per second per GPU
  double time_to_train_s = 0;    // training: target tokens / tokens_per_s (0 without a target)
  // GPU-hours: training, to train the target tokens (one step without a token target); inference,
  // per million output tokens. cost = gpu_hours x the topology's price (0 when the price is unknown).
  double gpu_hours = 0;
  double cost = 0;
};

// The seam between the sweep and the simulator: time one scenario, or say why it cannot run.
// The sweep calls it in a forked worker, so it may start a SimGrid Engine and may crash safely.
using Evaluator = std::function<LayoutResult(const Scenario&)>;

// The real evaluator: validate() -> memory model (OOM names the component) -> run_scenario() with
// numerics off. What it simulates is a representative slice of the step; see sim/plan/evaluate.cpp.
LayoutResult evaluate_layout(const Scenario& scenario);

// Fills the derived metrics (tokens/s, TFLOP/s, time to train, cost) and applies the target's
// deadline / latency bound. Idempotent.
void finish_result(const SweepSpec& spec, LayoutResult& r);

// Ranking: ok layouts by the objective (ties by layout order), then rejected ones by layout order.
// `cost` ranks by GPU-hours, which orders layouts as cost does and still works without a price.
void rank_results(std::vector<LayoutResult>& results, Objective objective);

// A reason the planner rejects a layout before simulating it (batch not divisible, interleaving
// that does not fit), or "" when the layout is worth evaluating.
std::string layout_problem(const SweepSpec& spec, const Layout& layout);

// ---------------------------------------------------------------------------------------------
// Sweep identity. Every row of a result file says which sweep and which part of it it belongs to,
// so a resume never reuses rows of other inputs and a merge can prove it holds every part, whole.
struct SweepTag {
  std::string context;   // for people: "llama2-70b on cluster-h100-ndr (8 GPUs/node); training gb 1024 ..."
  std::string id;        // sweep_id(): what the numbers depend on, hashed
  Objective objective = Objective::throughput;
  Shard shard;           // the part of the sweep the file holds; 0/1 = all of it
  int layouts = 0;       // layouts in the whole sweep (every shard together)
};
SweepTag sweep_tag(const SweepSpec& spec, Shard shard = {});

// The canonical text of everything a sweep's numbers depend on: the resolved model, topology (the
// GEMM table's content, not its path), node counts, target, search space, objective and the tpsim
// version. Fixed field order, exact number format: the same inputs give the same text anywhere,
// however they were written (presets, YAML layout, --set). Files' `source` paths are left out.
std::string sweep_canonical(const SweepSpec& spec);
// 64-bit FNV-1a of sweep_canonical(), as 16 hex digits.
std::string sweep_id(const SweepSpec& spec);
// Layouts shard `shard` holds out of a sweep of `layouts` (index % parts == shard index).
int shard_size(int layouts, Shard shard);

// The sweep's description written into every row:
// "llama2-70b on cluster-h100-ndr (8 GPUs/node); training gb 1024 seq 4096, 2T tokens to train, no deadline".
std::string sweep_context(const SweepSpec& spec);

// ---------------------------------------------------------------------------------------------
// Result files. One CSV row per layout, fixed columns, numbers in a fixed format, no timestamps:
// the same sweep gives the same bytes. `rank` is 0 in rows appended while the sweep runs. Every
// number is finite: tpsim writes none other, and a reader refuses nan and inf.
std::string csv_header();
std::string csv_row(const LayoutResult& r, int rank, const SweepTag& tag);
struct CsvRecord {
  LayoutResult result;
  int rank = 0;
  SweepTag tag;
};
CsvRecord parse_csv_row(const std::string& line);      // throws std::invalid_argument

// The number a text starts with and what follows it ("2T" -> {2, "T"}, "1.5e12" -> {1.5e12, ""});
// `ok` is false when the text does not start with a number. Shared by the CSV reader and the
// planner's count / duration flags.
struct LeadingNumber {
  bool ok = false;
  double value = 0;
  std::string rest;
};
LeadingNumber leading_number(const std::string& text);

// A result file as read. A last line without its newline was cut by a killed run: it is not a
// row, and `torn_line` says where it was.
struct CsvFile {
  bool has_header = false;       // false: missing or empty file
  std::vector<CsvRecord> records;
  std::vector<int> lines;        // the line number of each record
  int torn_line = 0;             // 0 = the file ends with a newline
};
CsvFile read_csv(const std::string& path);   // missing file = no rows; a bad row throws InputError
// Writes the ranked file (header + rows with ranks) atomically (temp file + rename).
void write_ranked_csv(const std::string& path, const std::vector<LayoutResult>& ranked, const SweepTag& tag);
std::string results_json(const std::vector<LayoutResult>& ranked, const SweepTag& tag);

// Combines the parts of a sharded sweep into one ranked list, tagged as the unsharded sweep (0/1).
// Throws InputError unless the parts are one sweep's, every shard present once and whole: no part
// empty, torn or short, no layout twice.
struct Merged {
  SweepTag tag;
  std::vector<LayoutResult> ranked;
};
Merged merge_csv_files(const std::vector<std::string>& paths);

// ---------------------------------------------------------------------------------------------
// Running a sweep
struct SweepOptions {
  int jobs = 0;                   // worker processes; 0 = all cores
  Shard shard;
  std::string csv;                // result file: appended as layouts finish, resumed, then ranked
  std::string json;               // optional ranked JSON
  ProgressFn progress;   // called in the parent after each simulated layout: (simulated, to simulate)
};

struct SweepOutcome {
  std::vector<LayoutResult> ranked;   // this shard's layouts, ranked
  int total = 0;                      // layouts in this shard
  int resumed = 0;                    // taken from the CSV instead of evaluated
  int evaluated = 0;                  // evaluated in this call
};

SweepOutcome run_sweep(const SweepSpec& spec, const SweepOptions& options, const Evaluator& evaluate);

// ---------------------------------------------------------------------------------------------
// Reading the result
// Megatron's usual choice: TP = min(8, GPUs per node), sequence parallel, selective recompute,
// micro-batch 1, no interleaving, the smallest PP that fits in memory; on the largest node count.
// `tp` is that TP (megatron_tp(topology)); training sweeps only.
int megatron_tp(const Topology& t);
std::optional<LayoutResult> megatron_choice(const std::vector<LayoutResult>& ranked, int tp);

// The terminal report: the top rows, where Megatron's choice ranks and why the best differs, and
// how many layouts were rejected for which reason.
std::string plan_table(const std::vector<LayoutResult>& ranked, Objective objective, int megatron_tp, int top);
// When no layout ran: what would make one run (GPUs the model's state needs, pipeline sizes that
// split the layers, the global batch); "" when some layout ran.
std::string rejection_hints(const SweepSpec& spec, const std::vector<LayoutResult>& ranked);

// The sweep's progress line on stderr (tpsim/progress.hpp) when `terminal`; nothing otherwise.
ProgressFn progress_printer(bool terminal);

}  // namespace tpsim
