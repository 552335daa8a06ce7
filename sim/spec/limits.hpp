// The largest value each size in a spec may take. Each is far beyond any real model, plan or
// cluster, and small enough that the products the simulator forms (parameters, activation
// elements, ranks) stay inside int64 (and GPU and rank counts inside int): a size past its limit
// is refused at its key, with the limit in the message, before anything multiplies it.
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <string>

namespace tpsim::spec_detail::limits {

// Model: GPT-3 has hidden 12288, 96 layers, 96 heads, vocab 50257; Llama 3 405B hidden 16384,
// 126 layers, vocab 128256. Parameters <= layers x 3 x hidden x ffn ~ 2^16 x 2^44 < 2^62.
constexpr int64_t kHidden = 1 << 20;
constexpr int64_t kFfn = 1 << 22;
constexpr int64_t kHeads = 1 << 16;
constexpr int64_t kLayers = 1 << 16;
constexpr int64_t kVocab = 1 << 24;
constexpr int64_t kSequence = 1 << 24;   // tokens: max_seq, seq, prompt, generate, prefill_chunk
// Experts per mixture-of-experts layer (Mixtral 8, OLMoE 64, DeepSeek-V3 256). With them the expert
// weights layers x experts x 3 x hidden x expert_ffn can pass int64: check_model bounds that product
// by kParameters.
constexpr int64_t kExperts = 1 << 16;
constexpr int64_t kParameters = int64_t(1) << 62;

// Workload: sequences per batch or micro-batch (their products with kSequence and kHidden are
// checked where they are formed).
constexpr int64_t kBatch = 1 << 24;

// Cluster and plan: the largest GPU count a spec may name (the largest clusters built have ~2^17).
constexpr int64_t kGpus = 1 << 24;
constexpr int64_t kGpusPerNode = 4096;
constexpr int64_t kCount = 1 << 16;      // SMs, NICs, PCIe switches, virtual stages
// Dragonfly groups with minimal routing: one SimGrid link per ordered pair of groups (~262k here).
constexpr int64_t kMinimalRoutingGroups = 512;

// Memory a simulation takes per GPU of the topology (its links, routes and SimGrid hosts), measured
// as peak RSS of `tpsim run` on dgx-h100 with topology.nodes = 4096 and 32768: 0.18 and 1.17 GB,
// 4.3 KiB per GPU between them. Every GPU of the topology is built, used by the plan or not.
constexpr double kSimulatorBytesPerGpu = 4.5 * 1024;

// Why a topology of `gpus` GPUs cannot be built ("" when it can): past kGpus, said with the memory
// it would take. The caller names how the count was formed.
inline std::string too_many_gpus(int64_t gpus) {
  if (gpus <= kGpus) return "";
  return fmt::format("more than the {} a topology may hold (at ~{:g} KiB of simulator state per GPU it would need "
                     "~{:.0f} GiB of memory)",
                     kGpus, kSimulatorBytesPerGpu / 1024, double(gpus) * kSimulatorBytesPerGpu / (1 << 30));
}

}  // namespace tpsim::spec_detail::limits
