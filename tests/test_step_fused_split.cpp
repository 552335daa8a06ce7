// A folded training step (TP collectives folded into each layer piece): the lowering merges a 1F1B
// backward and the next micro-batch's forward into one op, and the timeline shows them as two spans,
// the backward's then the forward's, split where the unit-time run of the parts was through the
// backward. Checked against the backward pieces and the forward pieces timed as units of their own.
#include <doctest/doctest.h>

#include "relative.hpp"

#include <memory>

#include "engine/unit_times.hpp"
#include "tpsim/engine.hpp"
#include "tpsim/spec.hpp"
#include "tpsim/step_lowering.hpp"

using namespace tpsim;

namespace {

// GPT 1.7B (24 layers) on TP 8 x PP 2 of one 16-GPU slice: stage 0 holds layers 0-11.
Scenario scenario() {
  ScenarioRequest request;
  request.topology = "cluster-h100-ndr";
  request.model = "gpt-1.7b";
  request.overrides = {{"topology.nodes", "2"},          {"plan.tp", "8"},          {"plan.pp", "2"},
                       {"plan.dp", "1"},                 {"plan.sp", "true"},       {"plan.recompute", "none"},
                       {"workload.kind", "training"},    {"workload.global_batch", "4"},
                       {"workload.micro_batch", "1"},    {"workload.seq", "2048"}};
  return load_scenario(request);
}

Op fused_of(const Op& like, std::vector<Op> parts) {
  Op op = like;
  op.parts = std::make_shared<const std::vector<Op>>(std::move(parts));
  return op;
}

}  // namespace

TEST_CASE("a folded 1F1B step shows a merged backward-then-forward op as a backward span, then a forward span") {
  const Scenario s = scenario();
  lowering::StepOptions options;
  options.fold_tp = true;
  options.micro_batches = 4;
  ProgramSet set = lowering::lower_training_step(s, options);
  resolve_collectives(s.topology, set);
  const EngineOptions engine{Fidelity::flow};
  const Timeline tl = simulate(s.topology, set, engine);

  // Stage 0 runs F0 F1 B0 F2 B1 F3 B2 B3: B0 (layers 11..0, embedding) and F2 (embedding, layers
  // 0..11) have no message between them on the first stage, so they are one op of 26 pieces.
  const Program& p = set.ranks[0];
  const Op* op = nullptr;
  for (const Op& o : p.ops)
    if (o.parts && o.parts->front().pass == Pass::backward && o.parts->back().pass == Pass::forward) {
      op = &o;
      break;
    }
  REQUIRE(op);
  CHECK(op->name == "layer11.bwd .. layer11.fwd (26 pieces)");
  const std::vector<Op>& parts = *op->parts;
  size_t split = 0;
  while (parts[split].pass == Pass::backward) ++split;
  CHECK(split == 13);

  std::vector<const Span*> spans;
  for (const Span& x : tl.spans)
    if (x.rank == 0 && x.op == op->id) spans.push_back(&x);
  REQUIRE(spans.size() == 2);
  CHECK(spans[0]->name == "layer11.bwd .. embedding.bwd (13 pieces)");
  CHECK(spans[1]->name == "embedding.fwd .. layer11.fwd (13 pieces)");
  CHECK(spans[0]->pass == Pass::backward);
  CHECK(spans[1]->pass == Pass::forward);
  CHECK(spans[0]->micro_batch == op->micro_batch);
  CHECK(spans[1]->micro_batch == op->micro_batch);
  CHECK(spans[1]->start == spans[0]->end);
  const double whole = spans[1]->end - spans[0]->start;
  const double b = spans[0]->end - spans[0]->start, f = spans[1]->end - spans[1]->start;
  CHECK(b + f == rel(whole, 1e-12));

  // Independently: the backward pieces as one unit, then the forward pieces as one unit starting
  // with the TP tail the backward leaves (its last layer's norm-weight gradient all-reduce). The
  // op started with no tail (CHECK below), so the two units are the merged op's two halves.
  // (UnitTimes memoises by the parts list's address: both ops live until the end.)
  engine::UnitTimes units(s.topology, engine);
  const Op backward_op = fused_of(*op, {parts.begin(), parts.begin() + ptrdiff_t(split)});
  const Op forward_op = fused_of(*op, {parts.begin() + ptrdiff_t(split), parts.end()});
  const engine::UnitTime whole_unit = units.fused(*op);
  const engine::UnitTime bwd = units.fused(backward_op);
  const engine::UnitTime fwd = units.fused(forward_op, std::max(0.0, bwd.tp_free - bwd.seconds));
  CHECK(bwd.seconds + fwd.seconds == rel(whole_unit.seconds, 1e-12));
  CHECK(whole == rel(whole_unit.seconds, 1e-12));   // no tail at its start, nothing beside it
  CHECK(b == rel(bwd.seconds, 1e-12));
  CHECK(f == rel(fwd.seconds, 1e-12));
  MESSAGE("backward ", b, " s, forward ", f, " s");
}
