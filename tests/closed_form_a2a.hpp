// The closed-form all-to-all (collective_plan.hpp) against its materialised schedule, on any
// topology: the same path latency and estimate, the same bytes on every link, and the same finish
// to SimGrid's own resolution of event times. Shared by the fat-tree and dragonfly suites.
#pragma once

#include <doctest/doctest.h>

#include "relative.hpp"

#include <cmath>
#include <memory>
#include <vector>

#include "engine/collective_plan.hpp"
#include "engine/collective_run.hpp"
#include "engine/select.hpp"
#include "tpsim/engine.hpp"

// When a plan, alone on the fabric at flow fidelity, finishes (closed forms against built plans).
inline double flow_finish(const tpsim::engine::Fabric& fabric, const tpsim::engine::CollectivePlan& plan) {
  tpsim::engine::SimPlatform platform(fabric);
  tpsim::engine::RunContext ctx;
  ctx.platform = &platform;
  double end = -1;
  tpsim::engine::start_collective(ctx, std::make_shared<const tpsim::engine::CollectivePlan>(plan),
                                  tpsim::Fidelity::flow, [&] { end = platform.now(); });
  platform.run();
  REQUIRE(!ctx.error);
  return end;
}

// Checks the two forms agree; returns their flow counts {closed, built} for bounds of the caller's.
inline std::pair<size_t, size_t> check_a2a_closed_form(const tpsim::engine::Fabric& fabric, const std::vector<int>& group,
                                                       double bytes) {
  using namespace tpsim;
  engine::CollectiveSpec spec;
  spec.op = CollectiveOp::all_to_all;
  spec.group = group;
  spec.bytes = bytes;
  spec.instance = engine::resolve(fabric, spec.op, Algorithm::direct, spec.group, bytes, 0);
  const auto closed = engine::plan_collective(fabric, spec, Fidelity::flow);
  spec.closed_form = false;
  const auto built = engine::plan_collective(fabric, spec, Fidelity::flow);
  CHECK(closed.closed_form);
  CHECK(!built.closed_form);
  REQUIRE(closed.phases.size() == 1);
  REQUIRE(built.phases.size() == 1);
  CHECK(closed.path_latency == rel(built.path_latency, 1e-12));
  CHECK(closed.estimate == rel(built.estimate, 1e-12));
  // Every link carries the same bytes.
  std::vector<double> load[2] = {std::vector<double>(fabric.links().size()), std::vector<double>(fabric.links().size())};
  std::vector<int> route;
  for (int k = 0; k < 2; ++k)
    for (const engine::FlowEdge& e : (k == 0 ? closed : built).phases[0].flows) {
      route.clear();
      fabric.route(e.src, e.dst, route);
      for (int l : route) load[k][l] += e.payload;
    }
  for (size_t l = 0; l < load[0].size(); ++l) CHECK(load[0][l] == rel(load[1][l], 1e-12));
  const double end[2] = {flow_finish(fabric, closed), flow_finish(fabric, built)};
  CHECK(end[0] > 0);
  // The halves drain in another order than the pairs (uneven groups, shared NICs, meshes,
  // oversubscribed spines, caps), so the two agree to SimGrid's own resolution of event times
  // (surf/precision: 1 ns, absolute) whatever the size; even uncapped groups to float rounding.
  CHECK(std::fabs(end[0] - end[1]) <= 1e-9);
  return {closed.phases[0].flows.size(), built.phases[0].flows.size()};
}
