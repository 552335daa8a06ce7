// Rank bindings (program.hpp): a rank that runs another rank's ops with its own groups and peers.
#include <stdexcept>
#include <string>

#include "tpsim/program.hpp"

namespace tpsim {

namespace {

const RankBinding* binding(const ProgramSet& set, int rank) {
  if (set.bindings.empty()) return nullptr;
  const RankBinding& b = set.bindings.at(size_t(rank));
  return b.from >= 0 ? &b : nullptr;
}

}  // namespace

const Program& program_of(const ProgramSet& set, int rank) {
  const RankBinding* b = binding(set, rank);
  return set.ranks.at(size_t(b ? b->from : rank));
}

const std::vector<int>& group_of(const ProgramSet& set, int rank, const CollectiveInfo& c) {
  if (const RankBinding* b = binding(set, rank))
    for (const auto& [from, to] : b->groups)
      if (from == c.group) return to;
  return c.group;
}

int peer_of(const ProgramSet& set, int rank, const P2PInfo& p) {
  if (const RankBinding* b = binding(set, rank))
    for (const auto& [from, to] : b->peers)
      if (from == p.peer) return to;
  return p.peer;
}

void expand_bindings(ProgramSet& set) {
  for (int rank = 0; rank < static_cast<int>(set.bindings.size()); ++rank) {
    const RankBinding* b = binding(set, rank);
    if (!b) continue;
    if (set.bindings[size_t(b->from)].from >= 0)
      throw std::logic_error("expand_bindings: rank " + std::to_string(rank) + " is bound to a bound rank");
    Program copy = set.ranks[size_t(b->from)];
    copy.rank = rank;
    for (Op& op : copy.ops) {
      if (op.kind == OpKind::collective) {
        const std::vector<int>& group = group_of(set, rank, op.collective);
        if (group != op.collective.group) {
          op.collective.group = group;
          op.collective.instance = CollectiveInstance{};   // resolved for its own group
        }
      } else if (op.kind == OpKind::send || op.kind == OpKind::recv) {
        op.p2p.peer = peer_of(set, rank, op.p2p);
      }
    }
    set.ranks[size_t(rank)] = std::move(copy);
  }
  set.bindings.clear();
}

}  // namespace tpsim
