// One scenario through the whole data flow: spec -> program -> resolve collectives -> (numerics |
// timing) -> result. The numerics run the collective instances the timing resolved, so the
// reduction order that is verified is the one that is timed; what was not verified is listed.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>
#include <stdexcept>

#include "run/run_step.hpp"
#include "tpsim/engine.hpp"
#include "tpsim/lower.hpp"
#include "tpsim/numerics.hpp"
#include "tpsim/run.hpp"

namespace tpsim {

namespace {

// The piece of the model the numerics execute: embedding, one layer per pipeline stage (every
// layer is lowered by the same code, so one per stage exercises each stage's sends and receives),
// output head and loss; forward, and backward for training.
Scenario numerics_shape(const Scenario& s) {
  Scenario shape = s;
  shape.model.layers = s.plan.pp;
  // One layer on an uneven plan's first and last stages too.
  if (s.plan.first_stage_layers > 0) shape.plan.first_stage_layers = 1;
  if (s.plan.last_stage_layers > 0) shape.plan.last_stage_layers = 1;
  return shape;
}

LowerOptions numerics_lowering(const Scenario& s) {
  LowerOptions options;
  options.scope = LowerScope::stack;
  options.backward = s.workload.kind == WorkloadKind::training;
  options.embedding_and_loss = true;
  return options;
}

// Gives every collective of `to` the instance of the collective at the same position in the same
// rank's program of `from`: the same lowering at another scale emits the same ops in the same
// order, only the sizes differ.
void copy_instances(const ProgramSet& from, ProgramSet& to) {
  if (from.ranks.size() != to.ranks.size()) throw std::logic_error("copy_instances: rank counts differ");
  for (size_t r = 0; r < to.ranks.size(); ++r) {
    std::vector<const Op*> source;
    for (const Op& op : from.ranks[r].ops)
      if (op.kind == OpKind::collective) source.push_back(&op);
    size_t next = 0;
    for (Op& op : to.ranks[r].ops) {
      if (op.kind != OpKind::collective) continue;
      if (next >= source.size() || source[next]->collective.op != op.collective.op || source[next]->name != op.name)
        throw std::logic_error(fmt::format("copy_instances: rank {}: op {} has no counterpart at full scale", r, op.name));
      op.collective.instance = source[next++]->collective.instance;
    }
    if (next != source.size()) throw std::logic_error("copy_instances: the scaled program has fewer collectives");
  }
}

std::string shape_text(const Scenario& s) {
  const ModelSpec& m = s.model;
  const WorkloadSpec& w = s.workload;
  const int64_t tokens = w.kind == WorkloadKind::inference ? w.batch * (w.prompt > 0 ? w.prompt : w.seq) : w.micro_batch * w.seq;
  return fmt::format("hidden {}, ffn {}, {} heads ({} kv), vocab {}, {} tokens per micro-batch", m.hidden, m.ffn, m.heads,
                     m.kv_heads, m.vocab, tokens);
}

void check_numerics(const Scenario& s, const std::string& mode, const RunOptions& options, RunResult& result) {
  const Scenario shape = numerics_shape(s);
  const LowerOptions lowering = numerics_lowering(s);
  const Scenario checked = mode == "full" ? shape : proxy_scale(shape);
  NumericsOptions numerics_options;
  if (options.progress)
    numerics_options.progress = [&options](const std::string& phase, const std::string& unit) {
      return options.progress("numerics check, " + phase, unit);
    };
  numerics_options.dtype = options.numerics_dtype;
  result.numerics = verify_as_timed(shape, mode != "full", lowering, numerics_options);
  result.numerics_scale = mode;
  result.numerics_scope = fmt::format("embedding, {} (of {}), output head and loss; {}",
                                      s.plan.pp == 1 ? std::string("1 layer") : fmt::format("1 layer per stage ({} stages)", s.plan.pp),
                                      s.model.layers, lowering.backward ? "forward and backward" : "forward (prefill)");
  if (s.model.moe.enabled())
    result.numerics_scope += "; experts run dropless (buffers with room for every token), so the unsharded run keeps "
                             "the same tokens";
  result.numerics_shape = shape_text(checked);
}

// Timed collective instances the numerics did not execute (e.g. DP gradient reductions, decode-size
// collectives), so the output can say so.
std::vector<std::string> unverified(const Timeline& t, const NumericsReport& n) {
  const std::set<std::string> verified(n.instances.begin(), n.instances.end());
  std::set<std::string> missing;
  for (const Span& span : t.spans)
    if (span.op_kind == OpKind::collective && span.kind == "collective" && !span.instance.empty()) {
      const std::string key = instance_key(span.collective, span.instance);
      if (!verified.count(key)) missing.insert(key);
    }
  return {missing.begin(), missing.end()};
}

}  // namespace

// Expert buffers with room for every token (C = T): no choice is dropped, so the sharded run can
// equal the unsharded one, whose buffers hold other tokens side by side (a capacity drops
// different tokens per shard). What a capacity factor or a skew costs is timing's to say.
Scenario dropless_numerics(const Scenario& scenario) {
  Scenario s = scenario;
  MoeSpec& moe = s.model.moe;
  if (!moe.enabled()) return s;
  moe.capacity_factor = 0;
  s.workload.expert_skew = double(moe.experts) / double(moe.top_k);
  return s;
}

NumericsReport verify_as_timed(const Scenario& scenario, bool proxy, const LowerOptions& lowering,
                               const NumericsOptions& options) {
  ProgramSet timed = lower(scenario, lowering);
  resolve_collectives(scenario.topology, timed);
  const Scenario checked = dropless_numerics(proxy ? proxy_scale(scenario) : scenario);
  ProgramSet sharded = lower(checked, lowering);
  copy_instances(timed, sharded);
  return verify(sharded, lower(unsharded(checked), lowering), options);
}

RunResult run_scenario(const Scenario& scenario, const RunOptions& options) {
  if (scenario.serving)
    throw std::invalid_argument(fmt::format("scenario '{}' is a serving workload (workload.kind: serving): run it with "
                                            "`tpsim serve`", scenario.name));
  RunResult result;
  result.scenario = scenario;
  if (options.scope == "step") {
    // The workload as a whole: a training step (pipeline, DP, optimizer) or an inference request.
    run_step(scenario, options, result);
  } else {
    result.scope = "block";
    LowerOptions lower_options;
    lower_options.scope = LowerScope::block;
    spdlog::info("lowering {} for tp {} pp {} dp {}", result.scope, scenario.plan.tp, scenario.plan.pp, scenario.plan.dp);
    ProgramSet programs = lower(scenario, lower_options);
    resolve_collectives(scenario.topology, programs);
    result.timeline = simulate(scenario.topology, programs, EngineOptions{Fidelity::flow});   // as steps are timed
  }

  const std::string mode = options.numerics.empty() ? scenario.numerics : options.numerics;
  if (mode != "off") {
    // `proxy` shrinks the model so a plan for a 70B model is checked in seconds with every division
    // by the mesh still exact; the collective instances stay those of the full-size run.
    check_numerics(scenario, mode, options, result);
    result.unverified_instances = unverified(result.timeline, *result.numerics);
  }
  return result;
}

}  // namespace tpsim
