// Which layers each pipeline stage holds (spec.hpp: stage_layers): the one place the even and the
// uneven (Megatron's first/last stage) splits are worked out, for the checks, the lowering, the
// memory model and the planner alike.
#include <fmt/core.h>

#include <algorithm>

#include "tpsim/spec.hpp"

namespace tpsim {

namespace {

bool uneven(const PlanSpec& p) { return p.first_stage_layers > 0 || p.last_stage_layers > 0; }

}  // namespace

std::string stage_split_problem(const ModelSpec& m, const PlanSpec& p) {
  const int pp = std::max(1, p.pp), v = std::max(1, p.virtual_stages);
  if (!uneven(p)) {
    if (m.layers % (int64_t(pp) * v) == 0) return "";
    return fmt::format("pp {} x virtual_stages {} does not divide model.layers {} (set plan.first_stage_layers / "
                       "last_stage_layers for an uneven split)",
                       pp, v, m.layers);
  }
  if (pp < 2) return "first_stage_layers / last_stage_layers need a pipeline (pp >= 2)";
  if (v > 1) return fmt::format("uneven first/last stages run without virtual stages (virtual_stages {})", v);
  if (p.first_stage_layers < 0 || p.last_stage_layers < 0) return "first_stage_layers / last_stage_layers must be >= 0";
  const int middle = pp - (p.first_stage_layers > 0) - (p.last_stage_layers > 0);
  const int64_t rest = m.layers - p.first_stage_layers - p.last_stage_layers;
  if (middle == 0)
    return rest == 0 ? "" : fmt::format("with pp {} the first and last stages are all of them: first_stage_layers {} + "
                                        "last_stage_layers {} must be model.layers {}",
                                        pp, p.first_stage_layers, p.last_stage_layers, m.layers);
  const std::string left = fmt::format("{} layers less first_stage_layers {} and last_stage_layers {} leave {} for {} other "
                                       "stage{}",
                                       m.layers, p.first_stage_layers, p.last_stage_layers, rest, middle,
                                       middle == 1 ? "" : "s");
  if (rest < middle) return left + ": each stage needs at least one layer";
  if (rest % middle != 0) return fmt::format("{}, which do not share them evenly ({} is not a multiple of {})", left, rest, middle);
  return "";
}

StageLayers stage_layers(const ModelSpec& m, const PlanSpec& p, int stage) {
  const int pp = std::max(1, p.pp);
  if (stage < 0 || stage >= pp || !stage_split_problem(m, p).empty()) return {};
  if (!uneven(p)) {
    const int64_t per = m.layers / pp;
    return {stage * per, per};
  }
  const int middle = pp - (p.first_stage_layers > 0) - (p.last_stage_layers > 0);
  const int64_t share = middle > 0 ? (m.layers - p.first_stage_layers - p.last_stage_layers) / middle : 0;
  auto count = [&](int s) {
    if (s == 0 && p.first_stage_layers > 0) return p.first_stage_layers;
    if (s == pp - 1 && p.last_stage_layers > 0) return p.last_stage_layers;
    return share;
  };
  int64_t first = 0;
  for (int s = 0; s < stage; ++s) first += count(s);
  return {first, count(stage)};
}

std::string stage_split_text(const ModelSpec& m, const PlanSpec& p) {
  if (!uneven(p) || !stage_split_problem(m, p).empty()) return "";
  const int64_t first = stage_layers(m, p, 0).count, last = stage_layers(m, p, p.pp - 1).count;
  if (p.pp == 2) return fmt::format("{} + {} layers", first, last);
  return fmt::format("{} + {} x {} + {} layers", first, p.pp - 2, stage_layers(m, p, 1).count, last);
}

std::pair<int64_t, int64_t> uneven_split(int64_t layers, int pp) {
  if (pp < 2 || layers % pp == 0) return {0, 0};
  const int64_t middle = (layers + pp - 1) / pp;
  const int64_t rest = layers - (pp - 2) * middle;
  if (rest < 2) return {0, 0};
  return {rest / 2, rest - rest / 2};
}

}  // namespace tpsim
