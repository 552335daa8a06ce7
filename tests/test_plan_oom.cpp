// The real evaluator's rejections, which need no simulation: an invalid mesh (validate()'s message)
// and planted out-of-memory layouts of Llama-2-70B on cluster-h100-ndr, named by their largest
// component.
#include <doctest/doctest.h>

#include "relative.hpp"

#include "tpsim/memory.hpp"
#include "tpsim/planner.hpp"

using namespace tpsim;

namespace {

SweepSpec llama70b_on_8_nodes() {
  SweepSpec spec;
  spec.model = load_model("llama2-70b");
  spec.topology = load_topology("cluster-h100-ndr");
  spec.node_counts = {8};
  return spec;   // default target: global batch 1024 at the model's 4096 tokens
}

Layout training_layout(int tp, int pp, int64_t mb, Recompute rc) {
  Layout l;
  l.nodes = 8;
  l.tp = tp;
  l.pp = pp;
  l.dp = 64 / (tp * pp);
  l.micro_batch = mb;
  l.sp = tp > 1;
  l.recompute = rc;
  return l;
}

}  // namespace

TEST_CASE("a whole replica on one GPU is rejected: its bf16 weights alone overflow HBM") {
  const SweepSpec spec = llama70b_on_8_nodes();
  const LayoutResult r = evaluate_layout(scenario_for(spec, training_layout(1, 1, 1, Recompute::none)));
  CHECK(r.verdict == Verdict::oom);
  // 2 bytes per parameter of ~69 billion = ~128 GiB > 80 GB (74.5 GiB); the line names the largest
  // part, the optimizer states at 12 bytes per parameter.
  CHECK(r.reason.rfind("OOM: optimizer overflow HBM (74.5 GiB)", 0) == 0);
  CHECK(r.memory_bytes > 2 * 68e9);
  CHECK(r.step_time_s == 0);   // rejected before any simulation
}

TEST_CASE("a planted activation OOM: TP8 PP2, micro-batch 8, no recomputation") {
  const SweepSpec spec = llama70b_on_8_nodes();
  const Scenario s = scenario_for(spec, training_layout(8, 2, 8, Recompute::none));
  const LayoutResult r = evaluate_layout(s);
  CHECK(r.verdict == Verdict::oom);
  CHECK(r.reason.rfind("OOM: activations overflow HBM", 0) == 0);
  // cluster-h100-ndr times fused (flash) attention, so memory keeps no scores: with SP,
  // 34 s b h / t + 4 s b a / t per layer = 4096*8*8192*34/8 + 4*4096*8*64/8 bytes (1.14 GB),
  // 40 layers on stage 0, which holds pp - 0 = 2 micro-batches in flight under 1F1B: 91 GB, more
  // than the 52 GB of optimizer states.
  const double per_layer = 4096.0 * 8 * 8192 * 34 / 8 + 4.0 * 4096 * 8 * 64 / 8;
  CHECK(activation_bytes_per_layer(s) == rel(per_layer));
  CHECK(r.memory_bytes > 2 * 40 * per_layer);
  // Unfused attention would keep Korthikanti's s b h (34 + 5 a s / h) / t.
  CHECK(activation_bytes_per_layer(s.model, s.plan, 4096, 8, AttentionKernel::unfused) ==
        rel(4096.0 * 8 * 8192 * (34 + 5.0 * 64 * 4096 / 8192) / 8));
  // Megatron's usual setting (micro-batch 1, selective recompute) needs PP4 to fit: at PP2 the
  // optimizer states of 40 layers leave too little room, at PP4 there are 25 GiB to spare.
  CHECK_FALSE(peak_memory(scenario_for(spec, training_layout(8, 2, 1, Recompute::selective))).fits);
  const MemoryBreakdown pp4 = peak_memory(scenario_for(spec, training_layout(8, 4, 1, Recompute::selective)));
  CHECK(pp4.fits);
  CHECK(pp4.total < pp4.capacity - 20 * 1024.0 * 1024 * 1024);
}

TEST_CASE("an invalid mesh is rejected with validate()'s message, before memory or timing") {
  SweepSpec spec = llama70b_on_8_nodes();
  // 80 layers do not split over 32 pipeline stages.
  const LayoutResult r = evaluate_layout(scenario_for(spec, training_layout(2, 32, 1, Recompute::full)));
  CHECK(r.verdict == Verdict::invalid);
  CHECK(r.reason.find("80") != std::string::npos);
  CHECK(r.memory_bytes == 0);
}
