// A sweep's identity: the canonical text of every input its numbers depend on, hashed. A resume or
// a merge compares ids, so rows computed for another topology, model, target, search space or tpsim
// version are refused instead of reused. The text is built field by field from the resolved specs
// (after presets, YAML and --set): however the inputs were written, equal values give equal ids.
#include <algorithm>
#include <cstdint>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include "tpsim/planner.hpp"

namespace tpsim {

namespace {

// "key=value" lines. Strings carry their length (no escaping to get wrong); numbers print in the
// shortest text that reads back exactly, the same on every machine.
class Canon {
 public:
  void text(const std::string& key, const std::string& v) { out_ += fmt::format("{}={}:{}\n", key, v.size(), v); }
  void num(const std::string& key, double v) { out_ += fmt::format("{}={}\n", key, v); }
  void num(const std::string& key, int64_t v) { out_ += fmt::format("{}={}\n", key, v); }
  void num(const std::string& key, int v) { num(key, static_cast<int64_t>(v)); }
  void flag(const std::string& key, bool v) { out_ += fmt::format("{}={}\n", key, v ? "yes" : "no"); }
  template <class T>
  void list(const std::string& key, const std::vector<T>& v) {
    out_ += fmt::format("{}=[{}]\n", key, fmt::join(v, ","));
  }
  const std::string& str() const { return out_; }

 private:
  std::string out_;
};

void add_model(Canon& c, const ModelSpec& m) {
  c.text("model.name", m.name);
  c.num("model.hidden", m.hidden);
  c.num("model.ffn", m.ffn);
  c.num("model.heads", m.heads);
  c.num("model.kv_heads", m.kv_heads);
  c.num("model.layers", m.layers);
  c.num("model.vocab", m.vocab);
  c.num("model.max_seq", m.max_seq);
  c.num("model.sliding_window", m.sliding_window);
  c.num("model.activation", static_cast<int>(m.activation));
  c.num("model.norm", static_cast<int>(m.norm));
  c.text("model.dtype", to_string(m.dtype));
  // A dense model writes no moe lines, so its id is the one it had before experts existed.
  if (m.moe.enabled()) {
    c.num("model.moe.experts", m.moe.experts);
    c.num("model.moe.top_k", m.moe.top_k);
    c.num("model.moe.expert_ffn", m.moe.expert_ffn);
    c.num("model.moe.capacity_factor", m.moe.capacity_factor);
    c.flag("model.moe.normalize_top_k", m.moe.normalize_top_k);
    if (m.moe.shared_expert_ffn > 0) {
      c.num("model.moe.shared_expert_ffn", m.moe.shared_expert_ffn);
      c.flag("model.moe.shared_expert_gate", m.moe.shared_expert_gate);
    }
  }
}

void add_gpu(Canon& c, const GpuSpec& g) {
  c.text("gpu.name", g.name);
  for (const auto& [dtype, flops] : g.peak_flops) c.num(std::string("gpu.peak_flops.") + to_string(dtype), flops);
  c.num("gpu.hbm_bytes", g.hbm_bytes);
  c.num("gpu.hbm_bandwidth", g.hbm_bandwidth);
  c.num("gpu.hbm_efficiency", g.hbm_efficiency);
  c.num("gpu.sms", g.sms);
  c.num("gpu.launch_overhead", g.launch_overhead);
  c.num("gpu.gemm_efficiency", g.gemm_efficiency);
  c.num("gpu.gemm_efficiency_fp8", g.gemm_efficiency_fp8);
  c.flag("gpu.gemm_stream_k", g.gemm_stream_k);
  // The GEMM table's rows, not its path: editing a time changes the numbers, moving the file does not.
  std::string rows;
  for (const GemmMeasurement& r : g.gemm_measured) rows += fmt::format("{},{},{},{},{}\n", r.m, r.n, r.k, r.dtype, r.seconds);
  c.text("gpu.gemm_table", rows);
  c.num("gpu.attention_score_bytes", g.attention_score_bytes);
  c.num("gpu.compute_capability", g.compute_capability);
}

void add_links(Canon& c, const Topology& t) {
  const IntraNodeSpec& i = t.intra;
  c.num("intra.fabric", static_cast<int>(i.fabric));
  c.num("intra.bandwidth", i.bandwidth);
  c.num("intra.efficiency", i.efficiency);
  c.num("intra.latency", i.latency);
  c.flag("intra.nvls", i.nvls);
  c.num("intra.nvls_bandwidth", i.nvls_bandwidth);
  c.num("intra.pcie_switches", i.pcie_switches);
  c.num("intra.host_bandwidth", i.host_bandwidth);
  const NicSpec& n = t.nic;
  c.num("nic.count", n.count);
  c.num("nic.bandwidth", n.bandwidth);
  c.num("nic.efficiency", n.efficiency);
  c.num("nic.latency", n.latency);
  c.num("nic.gpus.size", static_cast<int64_t>(n.gpus.size()));
  for (std::size_t k = 0; k < n.gpus.size(); ++k) c.list(fmt::format("nic.gpus.{}", k), n.gpus[k]);
  c.num("nic.pcie_bandwidth", n.pcie_bandwidth);
  c.list("nic.sockets", n.sockets);
  c.list("nic.gpu_sockets", n.gpu_sockets);
  c.num("nic.socket_bandwidth", n.socket_bandwidth);
  c.num("nic.host_cpu", static_cast<int>(n.host_cpu));
  c.num("network.kind", static_cast<int>(t.network.kind));
  c.num("network.switch_latency", t.network.switch_latency);
  c.num("network.nodes_per_leaf", t.network.nodes_per_leaf);
  c.num("network.oversubscription", t.network.oversubscription);
  if (t.network.kind == NetworkKind::dragonfly) {   // only here, so earlier kinds keep their ids
    c.num("network.groups", t.network.groups);
    c.num("network.routing", static_cast<int>(t.network.routing));
  }
}

void add_topology(Canon& c, const SweepSpec& spec) {
  const Topology& t = spec.topology;
  c.text("topology.name", t.name);
  add_gpu(c, t.gpu);
  c.num("topology.gpus_per_node", t.gpus_per_node);
  // The node counts swept, as enumerate_layouts reads them: topology.nodes only without --nodes.
  std::vector<int> nodes = spec.node_counts.empty() ? std::vector<int>{t.nodes} : spec.node_counts;
  std::sort(nodes.begin(), nodes.end());
  nodes.erase(std::unique(nodes.begin(), nodes.end()), nodes.end());
  c.list("topology.nodes", nodes);
  add_links(c, t);
  c.num("topology.price_per_gpu_hour", t.price_per_gpu_hour);
  const CollectiveTuning& ct = t.collectives;
  c.num("collectives.launch_latency", ct.launch_latency);
  for (const ProtocolSpec& p : ct.protocols) {
    const std::string k = "collectives.protocol." + p.name + ".";
    c.num(k + "base_latency", p.base_latency);
    c.num(k + "intra_step_latency", p.intra_step_latency);
    c.num(k + "inter_step_latency", p.inter_step_latency);
    c.num(k + "efficiency", p.efficiency);
    c.num(k + "max_bandwidth", p.max_bandwidth);
    c.num(k + "min_time", p.min_time);
  }
  c.text("collectives.nccl_version", ct.nccl_version);
  c.num("collectives.nvls_tree_efficiency", ct.nvls_tree_efficiency);
}

// The target and the search space: only the workload kind's own fields (the other kind's do not
// change a number), lists sorted as the enumeration sorts its layouts.
void add_search(Canon& c, const SweepSpec& spec) {
  c.text("objective", to_string(spec.objective));
  c.num("max_tp", spec.max_tp);
  if (spec.kind == WorkloadKind::inference) {
    c.text("workload", "inference");
    c.num("inference.batch", spec.inference.batch);
    c.num("inference.prompt", spec.inference.prompt);
    c.num("inference.generate", spec.inference.generate);
    c.num("inference.latency_bound_s", spec.inference.latency_bound_s);
    return;
  }
  c.text("workload", "training");
  c.num("training.global_batch", spec.training.global_batch);
  c.num("training.seq", spec.training.seq > 0 ? spec.training.seq : spec.model.max_seq);
  c.num("training.tokens", spec.training.tokens);
  c.num("training.deadline_s", spec.training.deadline_s);
  std::vector<int64_t> mbs = spec.micro_batches;
  std::sort(mbs.begin(), mbs.end());
  c.list("search.micro_batches", mbs);
  std::vector<int> recomputes;
  for (Recompute r : spec.recomputes) recomputes.push_back(static_cast<int>(r));
  std::sort(recomputes.begin(), recomputes.end());
  c.list("search.recomputes", recomputes);
  std::vector<int> vs = spec.virtual_stages;
  std::sort(vs.begin(), vs.end());
  c.list("search.virtual_stages", vs);
  std::vector<int> dos(spec.distributed_optimizers.begin(), spec.distributed_optimizers.end());
  std::sort(dos.begin(), dos.end());
  c.list("search.distributed_optimizers", dos);
  // Listed only when swept, so the ids of sweeps from before these axes stay as they were.
  std::vector<int> cps = spec.context_parallel;
  std::sort(cps.begin(), cps.end());
  if (cps != std::vector<int>{1}) c.list("search.context_parallel", cps);
  std::vector<int> eps = spec.expert_parallel;
  std::sort(eps.begin(), eps.end());
  if (eps != std::vector<int>{1}) c.list("search.expert_parallel", eps);
}

// "2T", "300B", "1.5M": a token count as people write it (the --tokens flag's own form).
std::string count_text(double v) {
  const char* suffix[] = {"", "K", "M", "B", "T"};
  int k = 0;
  for (; v >= 1000 && k < 4; ++k) v /= 1000;
  return fmt::format("{:.4g}{}", v, suffix[k]);
}

}  // namespace

std::string sweep_canonical(const SweepSpec& spec) {
  Canon c;
  c.text("tpsim", TPSIM_VERSION);   // a new version may time the same layout differently
  add_model(c, spec.model);
  add_topology(c, spec);
  add_search(c, spec);
  return c.str();
}

std::string sweep_id(const SweepSpec& spec) {
  uint64_t h = 0xcbf29ce484222325ULL;   // FNV-1a, 64 bits: stable, no library, no seed
  for (unsigned char byte : sweep_canonical(spec)) {
    h ^= byte;
    h *= 0x100000001b3ULL;
  }
  return fmt::format("{:016x}", h);
}

std::string sweep_context(const SweepSpec& spec) {
  std::string out = fmt::format("{} on {} ({} GPUs/node); ", spec.model.name, spec.topology.name,
                                spec.topology.gpus_per_node);
  if (spec.kind == WorkloadKind::inference) {
    const auto& t = spec.inference;
    return out + fmt::format("inference batch {} prompt {} generate {}, {}", t.batch, t.prompt, t.generate,
                             t.latency_bound_s > 0 ? fmt::format("latency bound {:.4g} s", t.latency_bound_s)
                                                   : "no latency bound");
  }
  const auto& t = spec.training;
  return out + fmt::format("training gb {} seq {}, {}, {}", t.global_batch, t.seq > 0 ? t.seq : spec.model.max_seq,
                           t.tokens > 0 ? count_text(t.tokens) + " tokens to train" : "no token target",
                           t.deadline_s > 0 ? fmt::format("deadline {:.4g} days", t.deadline_s / 86400) : "no deadline");
}

SweepTag sweep_tag(const SweepSpec& spec, Shard shard) {
  SweepTag tag;
  tag.context = sweep_context(spec);
  tag.id = sweep_id(spec);
  tag.objective = spec.objective;
  tag.shard = shard;
  tag.layouts = static_cast<int>(enumerate_layouts(spec).size());
  return tag;
}

}  // namespace tpsim
