// The collective selector, modelled on NCCL's tuner (see resolve_collective in tpsim/engine.hpp):
// the only place that chooses an algorithm, channels, pipeline chunks or a protocol. Everything
// downstream (numerics, the step and flow backends, reports) reads the instance it returns.
#pragma once

#include <vector>

#include "engine/fabric.hpp"
#include "tpsim/collective.hpp"
#include "tpsim/engine.hpp"

namespace tpsim::engine {

// resolve_collective on an already built Fabric (the public functions build it once).
CollectiveInstance resolve(const Fabric& fabric, CollectiveOp op, Algorithm requested, const std::vector<int>& group,
                           double bytes, int root);

// nccl_selection on an already built Fabric; `followed`, when given, receives the instance of the
// followed candidate (left alone when none is followed).
NcclSelection nccl_select(const Fabric& fabric, CollectiveOp op, const std::vector<int>& group, double bytes, int root,
                          CollectiveInstance* followed = nullptr);

}  // namespace tpsim::engine
