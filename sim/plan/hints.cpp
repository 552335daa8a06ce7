// When a sweep runs no layout, what would make one run: the planner knows the model and the
// cluster, so it says how many GPUs the model's own state needs, which pipeline sizes split the
// layers, and which global batch every rejected dp x micro-batch divides.
#include <algorithm>
#include <cmath>
#include <fmt/format.h>
#include <numeric>

#include "tpsim/memory.hpp"
#include "tpsim/planner.hpp"

namespace tpsim {

namespace {

// Bytes per parameter a training step keeps on the GPUs without the distributed optimizer.
double training_state_bytes(DType model_dtype) { return kWeightBytes + main_grad_bytes(model_dtype) + kOptimizerBytes; }

std::string pipeline_sizes(int64_t layers, int most) {
  std::string out;
  for (int pp = 1; pp <= most && pp <= layers; ++pp)
    if (layers % pp == 0) out += fmt::format("{}{}", out.empty() ? "" : ", ", pp);
  return out;
}

}  // namespace

std::string rejection_hints(const SweepSpec& spec, const std::vector<LayoutResult>& ranked) {
  if (ranked.empty() || std::any_of(ranked.begin(), ranked.end(), [](const LayoutResult& r) { return r.verdict == Verdict::ok; }))
    return "";
  const bool training = spec.kind == WorkloadKind::training;
  int most_nodes = 1;   // the largest cluster the sweep tried
  for (const LayoutResult& r : ranked) most_nodes = std::max(most_nodes, r.layout.nodes);
  const int per_node = std::max(1, spec.topology.gpus_per_node);
  const int gpus = most_nodes * per_node;
  std::string out = "\nwhat would make a layout run:\n";

  // The model's own state, split over every GPU with nothing else on them: a floor on the GPUs.
  // The distributed optimizer does not lower it: sharding Adam over dp leaves tp x pp = GPUs / dp
  // to hold 6 B/param, P (6 dp + 12) / GPUs in all, which is least at dp 1.
  const double params = double(parameter_count(spec.model));
  const double per_param = training ? training_state_bytes(spec.model.dtype) : dtype_bytes(spec.model.dtype);
  const double usable = spec.topology.gpu.hbm_bytes - kRuntimeReserveBytes;
  const bool oom = std::any_of(ranked.begin(), ranked.end(), [](const LayoutResult& r) { return r.verdict == Verdict::oom; });
  if (usable > 0 && oom) {
    const double state = params * per_param;
    const int64_t need = static_cast<int64_t>(std::ceil(state / usable));
    const std::string what = training ? fmt::format("weights, {} gradients and Adam states", to_string(main_grad_dtype(spec.model.dtype))) : std::string("weights");
    if (need > gpus)
      out += fmt::format("  memory: the model's {} alone ({:g} B/param x {:.3g} params = {:.1f} GiB) need at least {} "
                         "GPUs of {:.1f} usable GiB, more than the {} here: try --nodes {} or more (activations need "
                         "more still)\n",
                         what, per_param, params, state / kGiB, need, usable / kGiB, gpus, (need + per_node - 1) / per_node);
    else
      out += fmt::format("  memory: the model's {} take {:.1f} GiB, {:.1f} GiB per GPU over all {}: what overflows is "
                         "the rest (see the rejections below)\n",
                         what, state / kGiB, state / kGiB / gpus, gpus);
  }
  // The layer split, when it rejected layouts.
  const bool split = std::any_of(ranked.begin(), ranked.end(), [](const LayoutResult& r) {
    return r.reason.find("do not split") != std::string::npos;
  });
  if (split)
    out += fmt::format("  pipeline: {} layers split evenly over pp in {{{}}}; other pp run with smaller first and last "
                       "stages (without virtual stages)\n",
                       spec.model.layers, pipeline_sizes(spec.model.layers, gpus));
  // The global batch, when it rejected every layout that was not out of memory.
  if (training) {
    int batch = 0, other = 0;
    int64_t every = 1;   // a global batch every such layout divides (lcm of dp x micro-batch), capped
    for (const LayoutResult& r : ranked) {
      if (r.reason.find("global batch") != std::string::npos) {
        ++batch;
        if (every > 0) every = std::lcm(every, int64_t{r.layout.dp} * r.layout.micro_batch);
        if (every > (int64_t{1} << 40)) every = 0;
      } else if (r.verdict != Verdict::oom) {
        ++other;
      }
    }
    if (batch > 0 && other == 0)
      out += fmt::format("  batch: {} layouts need dp x micro-batch to divide --global-batch {}{}\n", batch,
                         spec.training.global_batch,
                         every > 0 ? fmt::format("; --global-batch {} (or a multiple) divides for all of them", every) : "");
  }
  return out;
}

}  // namespace tpsim
