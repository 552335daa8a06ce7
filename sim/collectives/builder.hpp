// Private helpers the algorithm files share: growing a schedule round by round, ring passes over
// any member list (used by ring and hierarchical), and copying a one-channel schedule onto
// `channels` parallel channels.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include "tpsim/collective.hpp"

namespace tpsim::coll {

// The request with `automatic` resolved and its numbers checked (throws std::invalid_argument).
ScheduleRequest validated(const ScheduleRequest& r);

// Chunks that make up the collective's nccl-tests size (the largest input or output list).
int size_chunks(const Schedule& s);

// Throws std::invalid_argument "<op> with <algorithm>: <why>".
[[noreturn]] void unsupported(const ScheduleRequest& r, const std::string& why);

// A schedule with no rounds; every rank's input and output chunk lists empty.
Schedule empty_schedule(const ScheduleRequest& r, int chunks, int participants);

// a mod m in 0..m-1, also for negative a (ring positions counted backwards).
inline int positive_mod(int a, int m) { return ((a % m) + m) % m; }

// 0, 1, ..., n-1 shifted by `start`.
std::vector<int> iota(int n, int start = 0);

// Appends one transfer to round `round` (rounds are created as needed).
void add_transfer(Schedule& s, int round, int src, int dst, int src_chunk, int dst_chunk, bool reduce);

// Ring reduce-scatter over members[0] -> members[1] -> ... -> members[0], block q = a list of
// chunks. m-1 rounds from `round0`; round s: member i adds block (i-s-1) mod m into member i+1.
// Afterwards member q holds block q summed over all members. Returns the rounds used.
int ring_reduce_scatter(Schedule& s, const std::vector<int>& members, const std::vector<std::vector<int>>& blocks,
                        int round0);

// Ring all-gather: member q starts with block q; m-1 rounds, round s: member i copies block
// (i-s) mod m to member i+1. Returns the rounds used.
int ring_all_gather(Schedule& s, const std::vector<int>& members, const std::vector<std::vector<int>>& blocks,
                    int round0);

// Copies a one-channel schedule of K chunks onto `channels` channels: chunk k of channel c becomes
// chunk c*K + k, its transfers are tagged channel c and run in the same rounds. Each chunk in the
// input/output lists becomes its `channels` pieces, in channel order.
void replicate_channels(Schedule& s, int channels);

// Chunks a pipelined schedule cuts its data into (ScheduleRequest::pipeline, 0 = max(ranks, 4)).
int pipeline_chunks(const ScheduleRequest& r);

// One-channel schedules, one per algorithm file.
Schedule ring_schedule(const ScheduleRequest& r);
Schedule tree_schedule(const ScheduleRequest& r);
Schedule halving_doubling_schedule(const ScheduleRequest& r);
Schedule direct_schedule(const ScheduleRequest& r);
Schedule nvls_schedule(const ScheduleRequest& r);
Schedule hierarchical_schedule(const ScheduleRequest& r);
Schedule nvls_tree_schedule(const ScheduleRequest& r);
Schedule pat_schedule(const ScheduleRequest& r);
Schedule one_shot_schedule(const ScheduleRequest& r);   // custom_all_reduce.cpp
Schedule two_shot_schedule(const ScheduleRequest& r);

// One tree over the ranks of a group, in rank space: parent (-1 at the root), children in the order
// their reductions are applied, depth from the root and height above the deepest leaf below.
struct RankTree {
  int root = 0;
  std::vector<int> parent, depth, height;
  std::vector<std::vector<int>> children;
};
// Tree 0 or 1 of the double binary tree the request describes (tree.cpp): over all ranks, or, for
// an all_reduce with ranks_per_node > 1, each node's chain under the inter-node double binary tree.
RankTree double_tree(const ScheduleRequest& r, int tree);

// Tree flow view without building the transfers (flow_view.cpp calls it).
FlowView tree_flow_view(const ScheduleRequest& r);

// send/recv as nccl-tests' sendrecv: rank i sends its buffer (chunk 0) to rank i+1's chunk 1.
Schedule send_recv_schedule(const ScheduleRequest& r);

}  // namespace tpsim::coll
