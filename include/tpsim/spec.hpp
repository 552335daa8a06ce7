// Spec: the validated description of one scenario (topology, model, plan, workload).
// Every quantity is stored in SI base units (seconds, bytes, bytes/s, FLOP/s); the YAML files may
// write units ("450 GB/s", "1.5 us", "80 GiB", "989 TFLOP/s") and the loader converts them.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace tpsim {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;   // bytes: memory is reported in GiB, as nvidia-smi does

// ---------------------------------------------------------------------------------------------
// Bad input. Carries where and what, so the CLI prints one line and exits 2:
//   "topologies/x.yaml:12:5: topology.intra.bandwidth: expected a bandwidth like '450 GB/s', got 'fast'"
struct InputError : std::runtime_error {
  std::string file;      // "" when the input came from the command line
  int line = 0;          // 1-based; 0 when unknown
  int column = 0;        // 1-based; 0 when unknown
  std::string key;       // dotted key path, e.g. "plan.tp"
  std::string problem;   // what was expected / what is wrong (may hold a "did you mean" hint)
  InputError(std::string file_, int line_, int column_, std::string key_, std::string problem_);
};

enum class DType { fp32, tf32, bf16, fp16, fp8 };
int dtype_bytes(DType t);            // storage bytes per element (tf32 is stored as fp32)
const char* to_string(DType t);

// What each class of tensor is stored and moved in (an inference deployment's quantisation: FP8
// weights with a BF16 KV cache, ...). Read from workload.precision; a class not given takes the
// model's dtype, so a scenario that sets none runs as the model's one dtype.
struct Precision {
  DType weights = DType::bf16;         // weight memory; the weight operand of every GEMM
  DType activations = DType::bf16;     // GEMM activation operands and outputs, other kernels, the
                                       // prefill working set
  DType kv_cache = DType::bf16;        // KV cache memory; what decode attention reads
  DType communication = DType::bf16;   // TP collectives and pipeline sends
};

// The precision a GEMM of `weights` x `activations` computes in: the wider of the two. An FP8 GEMM
// runs at the FP8 peak only when both operands are FP8 (W8A8); a narrower weight is dequantised
// to the activation type inside the kernel (W8A16 computes on BF16 tensor cores, reading 1-byte
// weights).
DType gemm_compute_dtype(DType weights, DType activations);

// ---------------------------------------------------------------------------------------------
// Topology
// One measured GEMM: C[m, n] = A[m, k] B[k, n] in `dtype`, `seconds` per call, launch included.
struct GemmMeasurement {
  int64_t m = 0, n = 0, k = 0;
  std::string dtype;   // "bf16", "fp8", ... (to_string(DType))
  double seconds = 0;
  auto key() const { return std::tie(m, n, k, dtype); }
};

struct GpuSpec {
  std::string name;                       // "H100-SXM"
  std::map<DType, double> peak_flops;     // dense FLOP/s per dtype (no sparsity)
  double hbm_bytes = 0;                   // capacity
  double hbm_bandwidth = 0;               // B/s
  // Fraction of hbm_bandwidth a streaming kernel realises (GEMMs' memory term, decode attention's
  // KV-cache reads). 1 = the datasheet roofline; hgx-h200 is fitted to measured decode GEMMs.
  double hbm_efficiency = 1.0;
  int sms = 0;                            // streaming multiprocessors (wave quantisation)
  double launch_overhead = 0;             // s per kernel
  double gemm_efficiency = 0.8;           // fraction of peak large GEMMs sustain (presets: MAMF x 0.884)
  double gemm_efficiency_fp8 = 0;         // the same for FP8 GEMMs (their own MAMF); 0 = gemm_efficiency
  // The GEMM ceiling for GEMMs computing in `d`: FP8's own measured fraction where one is given.
  double gemm_ceiling(DType d) const {
    return d == DType::fp8 && gemm_efficiency_fp8 > 0 ? gemm_efficiency_fp8 : gemm_efficiency;
  }
  // The GEMM library spreads a partial last wave of output tiles over every SM (stream-K and
  // persistent kernels: Hopper's cuBLAS, measured on H200); false: whole tiles run in waves and a
  // partial wave idles SMs (Ampere-era cuBLAS).
  bool gemm_stream_k = false;
  std::string gemm_table;                 // optional CSV m,n,k,dtype,time_us overriding the model
  std::vector<GemmMeasurement> gemm_measured;   // its rows, read and checked at load, sorted by key()
  // HBM bytes the attention kernels move per attention score element (batch x heads x seq^2, causal
  // half) in the forward pass (backward: twice). 0 = fused flash attention (scores stay on chip);
  // an unfused scale-mask-softmax + dropout stack (Megatron-LM 2021) moves tens of bytes.
  double attention_score_bytes = 0;
  // CUDA compute capability x10 (80 A100, 90 H100/H200, 100 B200), read from `name`
  // (gpu_compute_capability); 0 when the name names no known generation.
  int compute_capability = 0;
};

enum class IntraFabric { nvswitch, nvlink_mesh, pcie };

struct IntraNodeSpec {
  IntraFabric fabric = IntraFabric::nvswitch;
  double bandwidth = 0;       // B/s per GPU per direction into the fabric (line rate)
  double efficiency = 1.0;    // fraction of line rate a bulk transfer achieves (protocol overhead)
  double latency = 0;         // s per hop (GPU->switch->GPU counts as one hop for nvswitch)
  bool nvls = false;          // in-switch reduction (NVLink SHARP) available
  double nvls_bandwidth = 0;  // B/s per GPU achievable by in-switch all-reduce (busbw)
  int pcie_switches = 0;      // pcie fabric: GPUs are split evenly over this many PCIe switches
  double host_bandwidth = 0;  // pcie fabric: B/s of each PCIe switch's uplink to the CPU root
};

// The host CPU whose proxy threads post the NICs' work: NCCL's cost of posting one network step
// depends on its vendor. unstated = NCCL's figure for every host that is not AMD x86.
enum class HostCpu { unstated, intel, amd, arm };

// NCCL's net post overhead (tuning.cc getNetOverhead; data/reference/nccl_model_constants_and_statements.md):
// the host time the proxy spends posting one step of a ring across nodes, 2 us on AMD x86 hosts and
// 1 us on every other; NCCL charges the Simple protocol three times it.
inline double net_post_overhead(HostCpu cpu, bool simple) {
  return (cpu == HostCpu::amd ? 2e-6 : 1e-6) * (simple ? 3 : 1);
}

struct NicSpec {
  int count = 0;                        // NICs per node
  double bandwidth = 0;                 // B/s per NIC per direction (line rate)
  double efficiency = 1.0;              // achievable fraction of line rate
  double latency = 0;                   // s per NIC traversal
  std::vector<std::vector<int>> gpus;   // gpus[i] = local GPU indices NIC i serves (rail-optimised);
                                        // [] = a NIC that carries no GPU traffic (storage, management)
  // The path between a GPU and its NICs. 0 / empty = not modelled (not a bottleneck).
  double pcie_bandwidth = 0;            // B/s per direction of each GPU's PCIe path to its NICs
  std::vector<int> sockets;             // per NIC: the CPU socket it hangs off
  std::vector<int> gpu_sockets;         // per local GPU: its CPU socket
  double socket_bandwidth = 0;          // B/s per direction between two sockets (UPI / xGMI)
  HostCpu host_cpu = HostCpu::unstated; // whose proxy posts each network step (net_post_overhead)
};

// The NICs each local GPU sends and receives through (its traffic spreads over all of them, as
// NCCL spreads channels over a GPU's NICs): from nic.gpus, or, when nic.gpus is empty (a topology
// built in code), NIC g * count / gpus_per_node. GPUs that share a NIC must share all their NICs.
std::vector<std::vector<int>> nics_of_gpus(const NicSpec& nic, int gpus_per_node);

enum class NetworkKind { single_switch, fat_tree, dragonfly };

// How a dragonfly routes between groups: `minimal` over the direct global links of the two groups
// only; `adaptive` as if every path were open (ideal UGAL: a group's global links limited only by
// their total, as a fat tree's spine uplinks are).
enum class GroupRouting { adaptive, minimal };

struct NetworkSpec {
  NetworkKind kind = NetworkKind::single_switch;
  double switch_latency = 0;    // s per switch traversal
  int nodes_per_leaf = 0;       // nodes under one leaf switch (fat_tree), in one group (dragonfly,
                                // YAML nodes_per_group): the nodes one uplink bundle serves
  double oversubscription = 1;  // the bundle's downlink / uplink bandwidth (2 = 2:1): a leaf's NICs /
                                // its spine uplinks, a group's NICs / its global links
  int groups = 0;               // dragonfly: groups in the whole machine (0: those the nodes fill);
                                // a group's global links are spread evenly over the others
  GroupRouting routing = GroupRouting::adaptive;   // dragonfly only
};

// How the collective library (NCCL) turns link bandwidth into collective time: a fixed launch
// overhead plus, per protocol, NCCL's tuning-model terms. The engine picks the protocol with the
// least predicted time for each collective, as NCCL does. No protocols = ideal alpha-beta (one
// protocol, no overheads): a ring all-reduce then takes exactly 2(p-1)/p*S/B + 2(p-1)*latency.
// YAML (topology.collectives): launch_latency, protocols: [{name, base_latency, intra_step_latency,
// inter_step_latency, efficiency, max_bandwidth, min_time}, ...].
struct ProtocolSpec {
  std::string name;                 // "LL" | "LL128" | "Simple"
  double base_latency = 0;          // s once per collective (NCCL baseLat)
  double intra_step_latency = 0;    // s added to every intra-node step on top of the route latency
  double inter_step_latency = 0;    // s added to every inter-node step on top of the route latency
  double efficiency = 1;            // payload share of the bytes on the wire (LL128: 120/128)
  double max_bandwidth = 0;         // B/s cap on each flow's payload rate (NCCL llMaxBw); 0 = none
  double min_time = 0;              // s floor of the bandwidth term: small collectives use few
                                    // channels, so they cannot fill the link (channel ramp-up)
};

struct CollectiveTuning {
  double launch_latency = 0;        // s per collective: kernel launch and host-side overhead
  std::vector<ProtocolSpec> protocols;
  // NCCL version whose own tuning model (src/graph/tuning.cc) picks `auto`'s algorithm and protocol
  // ("2.23"; one of known_nccl_versions()); "" = tpsim's own selector. The engine still times the
  // pick with its own physical model.
  std::string nccl_version;
  // The fraction of one node's NVLS rate (intra.nvls_bandwidth) that NVLS-tree's NVLink stages
  // reach: its kernel splits each channel's warps over more roles (the tree's up and down). Fitted
  // (README); 1 = the one-node rate.
  double nvls_tree_efficiency = 1;
};

// The NCCL versions whose tuning model tpsim carries (collectives.nccl_version).
const std::vector<std::string>& known_nccl_versions();
// Compute capability x10 of a GPU by its name ("H100-SXM" -> 90, "A100-SXM-80GB" -> 80, "B200" -> 100,
// "L40S" -> 89, "V100" -> 70); 0 when no known generation appears in it.
int gpu_compute_capability(const std::string& gpu_name);

struct Topology {
  std::string name;
  std::string source;             // file it came from ("" for embedded)
  GpuSpec gpu;
  int gpus_per_node = 0;
  int nodes = 1;
  IntraNodeSpec intra;
  NicSpec nic;
  NetworkSpec network;
  double price_per_gpu_hour = 0;  // currency units; 0 = unknown
  CollectiveTuning collectives;    // calibration of collective overheads; empty = ideal
  int total_gpus() const { return gpus_per_node * nodes; }
};

// What one leaf's spine uplinks (one dragonfly group's global links) carry per direction: its
// nodes' NICs that serve GPUs, at their realised rate, over the network's oversubscription.
double uplink_bandwidth(const Topology& t);

// ---------------------------------------------------------------------------------------------
// Model (decoder-only transformer)
enum class Activation { gelu, swiglu };
enum class Norm { layernorm, rmsnorm };

// A mixture-of-experts MLP (Mixtral, OLMoE): every layer's MLP is `experts` SwiGLU/GELU FFNs of width
// `expert_ffn`; a replicated router [hidden, experts] picks `top_k` per token, whose outputs are
// summed with the router's softmax weights. experts == 0: a dense model.
struct MoeSpec {
  int64_t experts = 0;
  int64_t top_k = 0;
  int64_t expert_ffn = 0;         // intermediate size of one expert (per gate for swiglu)
  // Slots per expert and source rank = capacity_factor * top_k * tokens / experts (GShard, Switch):
  // tokens past them are dropped and every expert's buffer is padded to them. 0 = dropless
  // (Megatron's default): each expert takes every token routed to it.
  double capacity_factor = 0;
  // The top-k weights are renormalised to sum to 1 (Mixtral: softmax over the chosen k); false: the
  // full softmax's values are used as they are (OLMoE, Qwen2-MoE's norm_topk_prob: false).
  bool normalize_top_k = true;
  // An always-on shared expert beside the routed ones (Qwen2-MoE, DeepSeek-MoE): an FFN of this
  // width every token passes through, its output added to the routed experts'; 0 = none.
  // shared_expert_gate: its output scaled by sigmoid(x w_gate) per token (Qwen2-MoE).
  int64_t shared_expert_ffn = 0;
  bool shared_expert_gate = false;
  bool enabled() const { return experts > 0; }
};

struct ModelSpec {
  std::string name;
  std::string source;
  int64_t hidden = 0;
  int64_t ffn = 0;          // intermediate size (per gate for swiglu)
  int64_t heads = 0;
  int64_t kv_heads = 0;     // == heads for multi-head attention
  int64_t layers = 0;
  int64_t vocab = 0;
  int64_t max_seq = 0;
  // A sliding attention window (Mistral-7B-v0.1's 4096), 0 = none. tpsim times full attention,
  // which is the window's cost up to the window, so max_seq is capped at it.
  int64_t sliding_window = 0;
  Activation activation = Activation::gelu;
  Norm norm = Norm::layernorm;
  DType dtype = DType::bf16;
  MoeSpec moe;
  int64_t head_dim() const { return hidden / heads; }
};

// ---------------------------------------------------------------------------------------------
// Plan: a device mesh plus how each weight is split over it.
enum class PlanPreset { megatron, naive, custom };
enum class Recompute { none, selective, full };

// A JAX-style partition spec: one entry per tensor dimension, naming the mesh axis it is split over
// ("" = not split). Weights are stored [in, out], so {"", "tp"} is column-parallel, {"tp", ""} row.
using PartitionSpec = std::vector<std::string>;

// Weight names a plan can address (per layer): attn.qkv [h, (heads+2*kv_heads)*head_dim],
// attn.proj [h, h], mlp.fc1 [h, ffn], mlp.gate [h, ffn] (swiglu only), mlp.fc2 [ffn, h], norm1, norm2
// ([1, h]); outside layers: embedding [vocab, h], output [h, vocab], final_norm [1, h].

// A plan may spell out the communication around one linear, Megatron style, instead of letting
// the lowering derive it from the partition specs. Unset fields are derived. Writing them lets a
// plan be wrong on purpose: numerics then reports the op whose result differs.
struct LinearMapping {
  std::optional<bool> input_is_parallel;   // input already split over tp (skip the scatter/copy)
  std::optional<bool> gather_output;       // all-gather a column-parallel output
  std::optional<bool> reduce_output;       // all-reduce (or reduce-scatter under sp) a row-parallel output
};

struct PlanSpec {
  std::string name;
  std::string source;
  int tp = 1, pp = 1, dp = 1;
  // Expert parallelism, carved out of dp as Megatron does: the ep DP replicas with the same TP
  // index and consecutive dp indices hold model.moe.experts / ep experts each and trade tokens by
  // all-to-all. Experts are split over tp like the dense MLP (expert tensor parallel = tp). Needs
  // a mixture-of-experts model; ep divides dp and the experts.
  int ep = 1;
  // Context parallelism (Megatron's cp, ring attention): every sequence is cut into 2 cp chunks
  // and CP rank i holds chunks i and 2cp-1-i (causal load balancing), so each rank runs seq/cp
  // tokens of every layer; attention passes the keys and values around the CP ring. Its own mesh
  // axis (GPUs = tp x cp x pp x dp); weights are replicated over it and their gradients reduced
  // with dp's.
  int cp = 1;
  bool sp = false;                                   // sequence parallelism (needs tp > 1 to matter)
  PlanPreset preset = PlanPreset::megatron;
  std::map<std::string, PartitionSpec> partitions;   // "mlp.fc1" -> {"", "tp"}; overrides the preset
  std::map<std::string, LinearMapping> mappings;     // "mlp.fc2" -> {reduce_output: false}
  // Innermost (fastest-varying rank) first; cp, when not listed, sits right outside tp (Megatron's
  // order tp, cp, dp, pp).
  std::vector<std::string> mesh_order = {"tp", "dp", "pp"};
  std::string collective_algorithm = "auto";         // ring | tree | ... | auto
  // The algorithm of the TP group's all-reduces: "nccl" (collective_algorithm, NCCL's tuner by
  // default) or an inference engine's custom all-reduce inside one node, "one_shot" | "two_shot",
  // for all-reduces of at most tp_allreduce_max bytes (larger ones, a prefill's, stay NCCL's, as in
  // vLLM, whose CustomAllreduce buffer is max_size = 8 MiB).
  std::string tp_allreduce = "nccl";
  double tp_allreduce_max = 8.0 * 1024 * 1024;
  int virtual_stages = 1;                            // interleaved 1F1B when > 1
  // Megatron's num_layers_per_virtual_pipeline_stage: layers per model chunk, from which the loader
  // sets virtual_stages = layers / (pp x this) once the model is known; 0 = not given.
  int64_t layers_per_virtual_stage = 0;
  // Megatron's uneven pipeline (decoder_first/last_pipeline_num_layers): the first and last stages
  // hold these many layers (0 = an even share), since they also hold the embedding and the output
  // head; the other stages split the rest evenly. How 126 layers run on a 16-stage pipeline.
  int64_t first_stage_layers = 0, last_stage_layers = 0;
  Recompute recompute = Recompute::none;
  bool distributed_optimizer = false;
  // DP gradient reduction overlapped with the backward pass, bucket by bucket as it frees them
  // (Megatron's overlap_grad_reduce); false = every bucket after the last backward op (Megatron-LM
  // 2021, the Narayanan et al. runs).
  bool dp_overlap = true;
  // Weight-gradient GEMMs accumulate straight into the fp32 main gradient (Megatron's
  // gradient_accumulation_fusion, on by default since 2022); false = a bf16 product and then an
  // add kernel per weight and micro-batch (Megatron-LM 2021's DDP hook).
  bool grad_accumulation_fusion = true;
  // A linear's input gradient is reduced over TP (all-reduce, or reduce-scatter under SP) while its
  // weight gradient computes (Megatron's async_tensor_model_parallel_allreduce, on since late
  // 2021); false = the weight gradient first, then the reduction (Megatron-LM 2021).
  bool tp_grad_overlap = true;
  // Pipeline sends between TP groups: each TP rank sends 1/tp of the activation and the receiving
  // group all-gathers it over NVLink (Megatron's scatter_gather_tensors_in_pipeline); false = every
  // TP rank sends the whole tensor. Under sequence parallelism the tensor is already split.
  bool p2p_scatter_gather = true;
  int world() const { return tp * cp * pp * dp; }
};

// ---------------------------------------------------------------------------------------------
// Workload
enum class WorkloadKind { training, inference };

struct WorkloadSpec {
  WorkloadKind kind = WorkloadKind::training;
  // training
  int64_t global_batch = 1;   // sequences per optimizer step
  int64_t micro_batch = 1;    // sequences per micro-batch
  int64_t seq = 2048;         // tokens per sequence
  // 0 (the default): `tpsim run` simulates the whole step. N > 0: only the step's first N
  // micro-batches, and every output says PARTIAL with the fraction (a planner's slice, or a quick look).
  int64_t partial_micro_batches = 0;
  // Router load imbalance of a mixture-of-experts model: the busiest expert's tokens over the mean
  // (1 = balanced). Dropless routing pads every expert to the busiest one (the slowest expert sets
  // the all-to-all and GEMM times); with a capacity factor the buffers are the capacity.
  double expert_skew = 1.0;
  // inference
  int64_t batch = 1;
  int64_t prompt = 0;
  int64_t generate = 0;
  // Tokens of one prefill step under continuous batching with chunked prefill (vLLM's
  // max_num_batched_tokens): the memory peak is the decoding batch's KV cache plus one chunk's
  // working set. 0 (the default): the whole batch's prompts prefilled at once, as the prefill is
  // timed (time to first token).
  int64_t prefill_chunk = 0;
  // workload.precision: per tensor class; unset = the model's dtype (precision_of below).
  std::optional<DType> weights_dtype, activations_dtype, kv_cache_dtype, communication_dtype;
};

// ---------------------------------------------------------------------------------------------
// Serving: a request stream through model replicas under an inference engine's scheduler
// (`tpsim serve`, or a scenario with workload.kind: serving and a `serving:` section).

// Token counts of a synthetic request stream. fixed: `mean`. uniform: integers in [min, max].
// lognormal: mean `mean` (of the lengths, not of the log) and sigma of the underlying normal,
// clipped to [min, max]. empirical: drawn uniformly from the lengths listed in `file` (a CSV, one
// column of integers, an optional header), then clipped.
struct LengthDistribution {
  std::string kind = "fixed";   // fixed | uniform | lognormal | empirical
  double mean = 0;
  double sigma = 0;
  int64_t min = 1, max = 0;     // max 0: no upper clip (uniform needs one)
  std::string file;
};

// A latency objective: a request is good when its time to first token is at most `ttft` and its
// mean time per output token at most `tpot`; the run meets the SLO when the ttft_percentile-th
// TTFT and the tpot_percentile-th TPOT are within them (DistServe's goodput).
struct SloSpec {
  double ttft = 2.0, tpot = 0.2;                          // s
  double ttft_percentile = 90, tpot_percentile = 99;
};

struct ServingSpec {
  // The request stream: a CSV trace, or synthetic arrivals at `rate` for `duration` seconds.
  std::string arrivals = "poisson";   // poisson | gamma | trace
  double rate = 1;                    // requests/s
  double cv = 1;                      // gamma: coefficient of variation of the gaps (1 = Poisson)
  double duration = 60;               // s of arrivals
  int64_t requests = 0;               // > 0: exactly this many arrivals (duration then unused)
  int64_t seed = 1;
  std::string trace;                  // arrivals: trace, a CSV of arrived_at, prompt_tokens, output_tokens
  // The trace's column names for arrived_at, prompt_tokens and output_tokens (other traces' headers,
  // e.g. BurstGPT's "Timestamp", "Request tokens", "Response tokens").
  std::string arrived_at_column = "arrived_at", prompt_column = "prompt_tokens", output_column = "output_tokens";
  // Chat-like defaults, clipped so prompt + output fits a 4096-token context (Llama 2).
  LengthDistribution prompt{"lognormal", 512, 1.0, 4, 2048, ""};
  LengthDistribution output{"lognormal", 256, 1.0, 1, 1024, ""};
  // The engine on each replica.
  std::string scheduler = "vllm";     // static | orca | vllm | sarathi
  int64_t max_batch = 256;            // sequences per iteration (vLLM's max_num_seqs)
  int64_t token_budget = 0;           // tokens per iteration (max_num_batched_tokens); 0 = the scheduler's default
  int64_t block_size = 16;            // tokens per paged KV block (vllm, sarathi)
  std::string preemption = "recompute";   // recompute | swap (vllm, sarathi)
  double memory_utilization = 0.9;    // fraction of HBM the engine takes (vLLM's gpu_memory_utilization)
  int64_t replicas = 1;               // model replicas of plan.tp x plan.pp GPUs each (decode replicas
                                      // when prefill_replicas > 0)
  // > 0: prefill/decode disaggregation (DistServe, Splitwise): this many replicas only prefill, then
  // send each request's KV cache over the network to a decode replica, which only decodes.
  int64_t prefill_replicas = 0;
  std::string router = "round_robin"; // round_robin | least_tokens (least outstanding tokens)
  SloSpec slo;
  std::string base_dir = ".";         // where trace and empirical files are found (the scenario's folder)
};
// The scheduler's token budget where the spec leaves it 0: 8192 for vllm (its prefill cap), 512
// for sarathi (its chunk), none (0) for static and orca.
int64_t token_budget_of(const ServingSpec& spec);

struct OutputSpec {
  std::string json, csv, trace, html;   // paths; "" = not written
};

struct Scenario {
  std::string name;
  std::string source;
  Topology topology;
  ModelSpec model;
  PlanSpec plan;
  WorkloadSpec workload;
  OutputSpec outputs;
  std::string numerics = "proxy";   // off | proxy | full
  // Set for a serving scenario (workload.kind: serving, whose workload.kind reads inference: each
  // iteration is an inference step); `tpsim run` refuses one, `tpsim serve` sets it.
  std::optional<ServingSpec> serving;
};

// The scenario's precision per tensor class: workload.precision where given, else model.dtype.
// Training with model.dtype fp8 runs as Transformer Engine's FP8 recipe does: GEMM operands in FP8,
// while the tensors that travel (TP collectives, pipeline sends, the distributed optimizer's
// parameter all-gather) stay BF16, as do the stored parameters.
Precision precision_of(const Scenario& s);

// ---------------------------------------------------------------------------------------------
// Loading. Each function throws InputError; none returns a half-valid object.

// Command-line overrides "section.key=value" (section: topology|model|plan|workload), applied on top of
// the YAML before validation so a bad override is reported like a bad file.
struct Override { std::string path; std::string value; };

// Where presets live: $TPSIM_DATA_DIR, else the source tree the binary was built from.
std::string data_dir();

// Resolve a reference to a preset name ("dgx-h100") or a path ("my/topo.yaml") in the given
// category ("topologies" | "models" | "plans" | "scenarios").
std::string resolve_preset(const std::string& category, const std::string& ref);

Topology load_topology(const std::string& ref, const std::vector<Override>& overrides = {});
// A measured GEMM table (CSV m,n,k,dtype,time_us; a header and # comments allowed), checked row by
// row and sorted by GemmMeasurement::key(): InputError at the row's line and column otherwise.
std::vector<GemmMeasurement> read_gemm_table(const std::string& path);
ModelSpec load_model(const std::string& ref, const std::vector<Override>& overrides = {});
PlanSpec load_plan(const std::string& ref, const std::vector<Override>& overrides = {});

// A scenario file names its topology/model/plan by preset or path (relative to the scenario's
// folder) or inlines them. Empty path = the embedded default scenario. The replacement refs come
// from -t/-m/-p.
struct ScenarioRequest {
  std::string path;
  std::string topology, model, plan;   // replacements, "" = keep the scenario's
  std::vector<Override> overrides;
};
Scenario load_scenario(const ScenarioRequest& request);

// Cross-checks between parts (plan divides the model, mesh fits the topology, ...).
void validate(const Scenario& s);

// The text of the embedded default scenario (Llama-2-7B, Megatron TP=8, dgx-h100, one micro-batch).
const char* default_scenario_yaml();

// Parses "450 GB/s", "1.5us", "80 GiB", "989 TFLOP/s", or a plain number for kind "number".
// unit_kind: "bandwidth" | "time" | "bytes" | "flops" | "number". Throws std::invalid_argument for
// text that is not such a quantity, std::out_of_range for one without its unit (a bare number but
// 0) or outside the kind's plausible range (an infinite or denormal bandwidth, say).
double parse_quantity(const std::string& text, const std::string& unit_kind);

// Human summaries for `tpsim validate` (several lines, no trailing newline).
std::string describe(const Topology& t);
std::string describe(const ModelSpec& m);
std::string describe(const PlanSpec& p);
std::string describe(const Scenario& s);

// Loads one YAML file of any kind (topology / model / plan / scenario, detected from its keys, else
// from its folder), validates it and returns describe() of it. Throws InputError.
std::string validate_file(const std::string& path);

// The built-in plan presets by name ("megatron", "naive"), tp = pp = dp = 1.
PlanSpec builtin_plan(const std::string& name);

// Total weight parameters of the model (embedding, layers, final norm, untied output head).
int64_t parameter_count(const ModelSpec& m);
// The parameters one token passes through: a mixture of experts' top_k experts (and its shared
// expert) instead of all of them; parameter_count for a dense model.
int64_t active_parameter_count(const ModelSpec& m);

// The layers pipeline stage `stage` holds: [first, first + count) of model.layers, as
// plan.first_stage_layers / last_stage_layers say (an even split when they are 0; under
// interleaving the count is right but the layers are the stage's v chunks, not one run). Empty
// when the split does not work out (stage_split_problem says why).
struct StageLayers {
  int64_t first = 0, count = 0;
};
StageLayers stage_layers(const ModelSpec& m, const PlanSpec& p, int stage);
// Why model.layers does not split over the plan's pipeline ("" when it does): uneven stages that
// leave a stage empty or a middle share that does not divide, or an even split that does not
// divide (pp x virtual_stages).
std::string stage_split_problem(const ModelSpec& m, const PlanSpec& p);
// Megatron's uneven split for pp stages when pp does not divide the layers: ceil(layers / pp) on
// every middle stage, the rest shared by the first and last (first <= last); {0, 0} when pp
// divides the layers or no such split leaves every stage a layer.
std::pair<int64_t, int64_t> uneven_split(int64_t layers, int pp);
// An uneven plan's stages as people write them: "7 + 14 x 8 + 7 layers" ("14 + 18 layers" on two
// stages); "" for an even split.
std::string stage_split_text(const ModelSpec& m, const PlanSpec& p);

}  // namespace tpsim
