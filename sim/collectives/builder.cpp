// Schedule-building helpers shared by the algorithm files (see builder.hpp).
#include "collectives/builder.hpp"

#include <algorithm>

namespace tpsim::coll {

void unsupported(const ScheduleRequest& r, const std::string& why) {
  throw std::invalid_argument(std::string(to_string(r.op)) + " with algorithm " + to_string(r.algorithm) + ": " +
                              why);
}

Schedule empty_schedule(const ScheduleRequest& r, int chunks, int participants) {
  Schedule s;
  s.op = r.op;
  s.algorithm = r.algorithm;
  s.ranks = r.ranks;
  s.participants = participants;
  s.chunks = chunks;
  s.input_chunks.assign(r.ranks, {});
  s.output_chunks.assign(r.ranks, {});
  return s;
}

std::vector<int> iota(int n, int start) {
  std::vector<int> v(std::max(n, 0));
  for (int i = 0; i < n; ++i) v[i] = start + i;
  return v;
}

void add_transfer(Schedule& s, int round, int src, int dst, int src_chunk, int dst_chunk, bool reduce) {
  if (static_cast<int>(s.rounds.size()) <= round) s.rounds.resize(round + 1);
  Transfer t;
  t.src = src;
  t.dst = dst;
  t.src_chunk = src_chunk;
  t.dst_chunk = dst_chunk;
  t.reduce = reduce;
  s.rounds[round].transfers.push_back(t);
}

int ring_reduce_scatter(Schedule& s, const std::vector<int>& members, const std::vector<std::vector<int>>& blocks,
                        int round0) {
  const int m = static_cast<int>(members.size());
  for (int step = 0; step < m - 1; ++step)
    for (int i = 0; i < m; ++i)
      for (int c : blocks[positive_mod(i - step - 1, m)])
        add_transfer(s, round0 + step, members[i], members[positive_mod(i + 1, m)], c, c, true);
  return std::max(m - 1, 0);
}

int ring_all_gather(Schedule& s, const std::vector<int>& members, const std::vector<std::vector<int>>& blocks,
                    int round0) {
  const int m = static_cast<int>(members.size());
  for (int step = 0; step < m - 1; ++step)
    for (int i = 0; i < m; ++i)
      for (int c : blocks[positive_mod(i - step, m)])
        add_transfer(s, round0 + step, members[i], members[positive_mod(i + 1, m)], c, c, false);
  return std::max(m - 1, 0);
}

void replicate_channels(Schedule& s, int channels) {
  if (channels == 1) return;
  const int k = s.chunks;
  for (Round& round : s.rounds) {
    std::vector<Transfer> all;
    all.reserve(round.transfers.size() * channels);
    for (int c = 0; c < channels; ++c)
      for (Transfer t : round.transfers) {
        t.src_chunk += c * k;
        t.dst_chunk += c * k;
        t.channel = c;
        all.push_back(t);
      }
    round.transfers = std::move(all);
  }
  auto spread = [&](std::vector<std::vector<int>>& lists) {
    for (auto& list : lists) {
      std::vector<int> pieces;
      for (int chunk : list)
        for (int c = 0; c < channels; ++c) pieces.push_back(c * k + chunk);
      list = std::move(pieces);
    }
  };
  spread(s.input_chunks);
  spread(s.output_chunks);
  s.chunks = k * channels;
}

int pipeline_chunks(const ScheduleRequest& r) { return r.pipeline > 0 ? r.pipeline : std::max(r.ranks, 4); }

}  // namespace tpsim::coll
