// Every collective operation and algorithm tpsim defines, for tests that sweep them all.
#pragma once

#include "tpsim/collective.hpp"

inline constexpr tpsim::CollectiveOp kOps[] = {
    tpsim::CollectiveOp::all_reduce, tpsim::CollectiveOp::all_gather, tpsim::CollectiveOp::reduce_scatter,
    tpsim::CollectiveOp::broadcast,  tpsim::CollectiveOp::reduce,     tpsim::CollectiveOp::all_to_all,
    tpsim::CollectiveOp::send_recv};
inline constexpr tpsim::Algorithm kAlgorithms[] = {tpsim::Algorithm::ring,   tpsim::Algorithm::tree,
                                                   tpsim::Algorithm::halving_doubling, tpsim::Algorithm::direct,
                                                   tpsim::Algorithm::nvls,   tpsim::Algorithm::hierarchical,
                                                   tpsim::Algorithm::nvls_tree, tpsim::Algorithm::pat,
                                                   tpsim::Algorithm::one_shot, tpsim::Algorithm::two_shot};
