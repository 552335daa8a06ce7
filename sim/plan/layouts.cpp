// The layout space of a sweep: enumeration in a fixed numeric order, stable ids, the scenario that
// times one layout, the planner's own cheap rejections, and deterministic sharding.
#include <algorithm>
#include <fmt/format.h>
#include <stdexcept>
#include <tuple>

#include "tpsim/planner.hpp"

namespace tpsim {

namespace {

auto as_tuple(const Layout& l) {
  return std::make_tuple(l.nodes, l.tp, l.cp, l.pp, l.dp, l.ep, l.micro_batch, l.sp, static_cast<int>(l.recompute),
                         l.virtual_stages, l.distributed_optimizer, l.batch, l.first_stage_layers, l.last_stage_layers);
}

std::vector<int> divisors(int n) {
  std::vector<int> d;
  for (int i = 1; i <= n; ++i)
    if (n % i == 0) d.push_back(i);
  return d;
}

// Tensor-parallel degrees worth trying: powers of two up to max_tp that divide the GPU count.
std::vector<int> tp_degrees(int gpus, int max_tp) {
  std::vector<int> out;
  for (int tp = 1; tp <= max_tp; tp *= 2)
    if (gpus % tp == 0) out.push_back(tp);
  return out;
}

// Inference batches: 1, 2, 4, ... below the target's batch, then the batch itself.
std::vector<int64_t> batch_sizes(int64_t largest) {
  std::vector<int64_t> out;
  for (int64_t b = 1; b < largest; b *= 2) out.push_back(b);
  out.push_back(std::max<int64_t>(largest, 1));
  return out;
}

// Expert-parallel sizes for a layout with `dp` replicas: those asked for (every power of two up to
// the experts when none are) that divide dp and the experts; 1 for a dense model.
std::vector<int> expert_degrees(const SweepSpec& spec, int dp) {
  const int64_t experts = spec.model.moe.experts;
  if (experts <= 0) return {1};
  std::vector<int> asked = spec.expert_parallel;
  if (asked.empty())
    for (int64_t ep = 1; ep <= experts; ep *= 2) asked.push_back(int(ep));
  std::vector<int> out;
  for (int ep : asked)
    if (ep >= 1 && dp % ep == 0 && experts % ep == 0) out.push_back(ep);
  return out;
}

int64_t training_seq(const SweepSpec& spec) {
  return spec.training.seq > 0 ? spec.training.seq : spec.model.max_seq;
}

}  // namespace

bool operator<(const Layout& a, const Layout& b) { return as_tuple(a) < as_tuple(b); }
bool operator==(const Layout& a, const Layout& b) { return as_tuple(a) == as_tuple(b); }

const char* recompute_name(Recompute r) {
  switch (r) {
    case Recompute::none: return "none";
    case Recompute::selective: return "selective";
    case Recompute::full: return "full";
  }
  return "?";
}

namespace {
const char* recompute_short(Recompute r) {
  return r == Recompute::none ? "rnone" : r == Recompute::selective ? "rsel" : "rfull";
}
}  // namespace

std::string layout_id(const Layout& l) {
  std::string id = fmt::format("n{}-tp{}-pp{}-dp{}", l.nodes, l.tp, l.pp, l.dp);
  if (l.batch > 0) return id + fmt::format("-b{}", l.batch);
  id += fmt::format("-mb{}-{}-{}-v{}", l.micro_batch, l.sp ? "sp" : "nosp", recompute_short(l.recompute),
                    l.virtual_stages);
  if (l.distributed_optimizer) id += "-do";
  if (l.first_stage_layers > 0 || l.last_stage_layers > 0)
    id += fmt::format("-first{}-last{}", l.first_stage_layers, l.last_stage_layers);
  if (l.cp > 1) id += fmt::format("-cp{}", l.cp);
  if (l.ep > 1) id += fmt::format("-ep{}", l.ep);
  return id;
}

Layout parse_layout_id(const std::string& id) {
  Layout l;
  l.micro_batch = 0;
  std::size_t pos = 0;
  auto fail = [&] { throw std::invalid_argument("bad layout id '" + id + "'"); };
  while (pos < id.size()) {
    std::size_t end = id.find('-', pos);
    if (end == std::string::npos) end = id.size();
    const std::string part = id.substr(pos, end - pos);
    pos = end + 1;
    auto number = [&](std::size_t skip) -> long long {
      if (part.size() <= skip) fail();
      std::size_t used = 0;
      long long v = std::stoll(part.substr(skip), &used);
      if (used != part.size() - skip || v <= 0) fail();
      return v;
    };
    if (part == "sp") l.sp = true;
    else if (part == "nosp") l.sp = false;
    else if (part == "rnone") l.recompute = Recompute::none;
    else if (part == "rsel") l.recompute = Recompute::selective;
    else if (part == "rfull") l.recompute = Recompute::full;
    else if (part == "do") l.distributed_optimizer = true;
    else if (part.rfind("first", 0) == 0) l.first_stage_layers = number(5);
    else if (part.rfind("last", 0) == 0) l.last_stage_layers = number(4);
    else if (part.rfind("cp", 0) == 0) l.cp = static_cast<int>(number(2));
    else if (part.rfind("ep", 0) == 0) l.ep = static_cast<int>(number(2));
    else if (part.rfind("tp", 0) == 0) l.tp = static_cast<int>(number(2));
    else if (part.rfind("pp", 0) == 0) l.pp = static_cast<int>(number(2));
    else if (part.rfind("dp", 0) == 0) l.dp = static_cast<int>(number(2));
    else if (part.rfind("mb", 0) == 0) l.micro_batch = number(2);
    else if (part.rfind("n", 0) == 0) l.nodes = static_cast<int>(number(1));
    else if (part.rfind("v", 0) == 0) l.virtual_stages = static_cast<int>(number(1));
    else if (part.rfind("b", 0) == 0) l.batch = number(1);
    else fail();
  }
  if (l.batch == 0 && l.micro_batch == 0) fail();
  if (l.batch > 0) l.micro_batch = 1;
  if (layout_id(l) != id) fail();   // one spelling per layout, so ids compare as layouts do
  return l;
}

std::vector<Layout> enumerate_layouts(const SweepSpec& spec) {
  std::vector<int> node_counts = spec.node_counts;
  if (node_counts.empty()) node_counts.push_back(spec.topology.nodes);
  std::sort(node_counts.begin(), node_counts.end());
  node_counts.erase(std::unique(node_counts.begin(), node_counts.end()), node_counts.end());
  const int max_tp = spec.max_tp > 0 ? spec.max_tp : std::max(1, spec.topology.gpus_per_node);

  std::vector<Layout> out;
  for (int nodes : node_counts) {
    if (nodes < 1) throw std::invalid_argument(fmt::format("node count must be at least 1, got {}", nodes));
    const int gpus = nodes * spec.topology.gpus_per_node;
    const std::vector<int> cps = spec.kind == WorkloadKind::inference ? std::vector<int>{1} : spec.context_parallel;
    for (int tp : tp_degrees(gpus, max_tp))
    for (int cp : cps) {
      if (cp < 1 || (gpus / tp) % cp != 0) continue;
      for (int pp : divisors(gpus / (tp * cp))) {
        Layout base;
        base.nodes = nodes;
        base.tp = tp;
        base.cp = cp;
        base.pp = pp;
        base.dp = gpus / (tp * cp * pp);
        if (spec.kind == WorkloadKind::inference) {
          for (int64_t b : batch_sizes(spec.inference.batch)) {
            Layout l = base;
            l.batch = b;
            out.push_back(l);
          }
          continue;
        }
        for (int64_t mb : spec.micro_batches)
          for (bool sp : {false, true}) {
            if (sp && tp == 1) continue;   // sequence parallelism splits over TP ranks: none to split over
            for (Recompute rc : spec.recomputes)
              for (int v : spec.virtual_stages) {
                if (v > 1 && pp == 1) continue;   // interleaving needs a pipeline
                Layout l = base;
                l.micro_batch = mb;
                l.sp = sp;
                l.recompute = rc;
                l.virtual_stages = v;
                if (v == 1) std::tie(l.first_stage_layers, l.last_stage_layers) = uneven_split(spec.model.layers, pp);
                for (bool shard_adam : spec.distributed_optimizers) {
                  if (shard_adam && base.dp * base.cp == 1) continue;   // nothing to shard over
                  l.distributed_optimizer = shard_adam;
                  for (int ep : expert_degrees(spec, base.dp)) {
                    l.ep = ep;
                    out.push_back(l);
                  }
                }
              }
          }
      }
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string layout_problem(const SweepSpec& spec, const Layout& l) {
  // Megatron-Core's rule: MoE with tensor parallelism needs sequence parallelism.
  if (spec.model.moe.enabled() && l.tp > 1 && !l.sp) return "a mixture of experts with tp > 1 needs sequence parallelism";
  if (spec.model.moe.enabled() && spec.model.moe.expert_ffn % l.tp != 0)
    return fmt::format("expert ffn {} does not divide over tp {}", spec.model.moe.expert_ffn, l.tp);
  if (spec.kind == WorkloadKind::inference) return "";
  if (l.cp > 1 && training_seq(spec) % (2 * l.cp) != 0)
    return fmt::format("seq {} does not cut into 2 x cp = {} chunks", training_seq(spec), 2 * l.cp);
  if (l.cp > 1 && spec.model.moe.enabled()) return "context parallelism with a mixture of experts is not modelled yet";
  const int64_t gb = spec.training.global_batch;
  const int64_t per_step = static_cast<int64_t>(l.dp) * l.micro_batch;
  if (gb % per_step != 0)
    return fmt::format("global batch {} is not a multiple of dp x micro-batch = {} x {}", gb, l.dp, l.micro_batch);
  const int64_t micro_batches = gb / per_step;
  if (l.virtual_stages == 1 && spec.model.layers % l.pp != 0 && l.first_stage_layers == 0)
    return fmt::format("{} layers do not split over {} stages, evenly or with Megatron's smaller first and last stages",
                       spec.model.layers, l.pp);
  if (l.virtual_stages > 1) {
    if (spec.model.layers % (static_cast<int64_t>(l.pp) * l.virtual_stages) != 0)
      return fmt::format("{} layers do not split into pp x virtual stages = {} x {} chunks", spec.model.layers, l.pp,
                         l.virtual_stages);
    if (micro_batches % l.pp != 0)
      return fmt::format("interleaved 1F1B needs micro-batches ({}) to be a multiple of pp ({})", micro_batches, l.pp);
  }
  return "";
}

Scenario scenario_for(const SweepSpec& spec, const Layout& l) {
  Scenario s;
  s.name = "plan " + layout_id(l);
  s.topology = spec.topology;
  s.model = spec.model;
  s.numerics = "off";
  PlanSpec& p = s.plan;
  p.name = layout_id(l);
  p.preset = PlanPreset::megatron;
  p.tp = l.tp;
  p.pp = l.pp;
  WorkloadSpec& w = s.workload;
  if (spec.kind == WorkloadKind::inference) {
    // One replica of tp x pp GPUs serves a batch; the dp replicas beside it serve their own requests
    // and share nothing, so timing one replica on the nodes it spans is exact.
    p.dp = 1;
    const int gpn = std::max(1, spec.topology.gpus_per_node);
    s.topology.nodes = std::max(1, (l.tp * l.pp + gpn - 1) / gpn);
    w.kind = WorkloadKind::inference;
    w.batch = l.batch;
    w.prompt = spec.inference.prompt;
    w.generate = spec.inference.generate;
    w.seq = spec.inference.prompt + spec.inference.generate;
    return s;
  }
  s.topology.nodes = l.nodes;
  p.dp = l.dp;
  p.cp = l.cp;
  p.ep = l.ep;
  p.sp = l.sp;
  p.recompute = l.recompute;
  p.virtual_stages = l.virtual_stages;
  p.distributed_optimizer = l.distributed_optimizer;
  p.first_stage_layers = l.first_stage_layers;
  p.last_stage_layers = l.last_stage_layers;
  w.kind = WorkloadKind::training;
  w.global_batch = spec.training.global_batch;
  w.micro_batch = l.micro_batch;
  w.seq = training_seq(spec);
  w.partial_micro_batches = 0;   // a full step; the evaluator chooses what slice of it to simulate
  return s;
}

Shard parse_shard(const std::string& text) {
  const auto slash = text.find('/');
  auto bad = [&] {
    return std::invalid_argument("--shard expects i/N with 0 <= i < N (e.g. 0/4), got '" + text + "'");
  };
  if (slash == std::string::npos) throw bad();
  Shard s;
  try {
    std::size_t used_i = 0, used_n = 0;
    s.index = std::stoi(text.substr(0, slash), &used_i);
    s.parts = std::stoi(text.substr(slash + 1), &used_n);
    if (used_i != slash || used_n != text.size() - slash - 1) throw bad();
  } catch (const std::logic_error&) {
    throw bad();
  }
  if (s.parts < 1 || s.index < 0 || s.index >= s.parts) throw bad();
  return s;
}

std::vector<Layout> shard_layouts(const std::vector<Layout>& all, Shard shard) {
  // Round-robin over the sorted list: neighbours (similar cost) land on different shards, so the
  // parts take about the same time.
  std::vector<Layout> out;
  for (std::size_t i = static_cast<std::size_t>(shard.index); i < all.size(); i += static_cast<std::size_t>(shard.parts))
    out.push_back(all[i]);
  return out;
}

int shard_size(int layouts, Shard shard) {
  return layouts > shard.index ? (layouts - shard.index + shard.parts - 1) / shard.parts : 0;
}

}  // namespace tpsim
