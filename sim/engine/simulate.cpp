// simulate(): every rank's Program as SimGrid actors, one per (rank, stream). Ops on a stream run
// in program order, each after its deps; compute ops sleep their roofline time; a collective starts
// when the last rank of its group reaches it and moves its schedule's bytes on the shared platform,
// so concurrent collectives contend; send/recv meet in a (src, dst, tag) mailbox.
// A collective holds its NCCL CTAs' share of the SMs on each of its GPUs from the rank's arrival
// to its end (sm_share.hpp): a compute-stream op beside it runs at the rate the SMs left allow.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <numeric>
#include <stdexcept>
#include <string>
#include <tuple>
#include <unordered_map>

#include <spdlog/spdlog.h>

#include "engine/collective_run.hpp"
#include "engine/select.hpp"
#include "engine/sm_share.hpp"
#include "engine/unit_times.hpp"
#include "tpsim/cost.hpp"
#include "tpsim/engine.hpp"
#include "tpsim/wall_clock.hpp"

namespace tpsim {

namespace {

namespace sg = simgrid::s4u;
using engine::CollectivePlan;

bool is_comm(const Op& op) { return op.kind == OpKind::collective || op.kind == OpKind::send || op.kind == OpKind::recv; }

// Completion of every op of one rank. A stream that must wait parks on its own semaphore and the
// op's finisher releases it: two simcalls per wait, where a mutex and condition variable took ~7.
struct RankState {
  struct Waiter {
    int op = -1;                  // the op this stream waits for, -1 when it is not waiting
    sg::SemaphorePtr wake = sg::Semaphore::create(0);
  };
  std::vector<char> done;
  std::vector<double> finish;
  std::vector<Waiter> waiters;    // one per stream of the rank (Stream's value)
  // Collectives holding SMs of this GPU, in arrival order (end: infinity while running), with ids
  // to end them by; the compute stream parks on `sm_wake` while one it shares SMs with runs. Only
  // a compute op in flight needs a hold's past, so holds that end outside one are dropped at once.
  std::vector<engine::SmHold> holds;
  std::vector<long> hold_ids;
  long next_hold = 0;
  bool computing = false, sm_waiting = false;
  sg::SemaphorePtr sm_wake = sg::Semaphore::create(0);
};

// One occurrence of a collective on a group: ranks arrive, the last one starts it.
struct Instance {
  int arrived = 0;
  bool done = false;
  double start = 0, end = 0;
  const Op* first = nullptr;   // the first arrival's op, to check the others agree
  const CollectiveInfo* first_info = nullptr;   // its collective as its rank ran it
  sg::MutexPtr mutex = sg::Mutex::create();
  sg::ConditionVariablePtr finished = sg::ConditionVariable::create();
};

// A send and its recv: the first to arrive parks here until the other has moved the bytes.
struct P2PKey {
  int src, dst, tag;
  bool operator==(const P2PKey&) const = default;
};
struct P2PKeyHash {
  size_t operator()(const P2PKey& k) const {
    return std::hash<uint64_t>{}((uint64_t(uint32_t(k.src)) << 32 | uint32_t(k.dst)) * 0x9E3779B97F4A7C15ull ^ uint32_t(k.tag));
  }
};
struct P2PMeeting {
  bool first_is_send = false;
  int64_t bytes = 0;
  sg::SemaphorePtr wake;   // the first arrival's stream semaphore
};

// A collective as the program asked for it, and the instance it runs (resolved or not).
using RequestKey = std::tuple<int, int, std::vector<int>, int64_t, int>;
using PlanKey = std::tuple<RequestKey, int, std::string, std::vector<std::vector<int>>, int, int>;

RequestKey request_key(const CollectiveInfo& c) { return {int(c.op), int(c.algorithm), c.group, c.bytes, c.root}; }

// The op's typed fields, so reports never parse a name (stalls copy the op they held up).
void copy_op_fields(Span& s, const Op& op) {
  s.op_kind = op.kind;
  s.pass = op.pass;
  s.layer = op.layer;
  s.micro_batch = op.micro_batch;
  s.stage = op.stage;
  s.recompute = op.recompute;
  s.mapping = op.mapping;
  if (op.kind == OpKind::collective) s.collective = op.collective.op;
}

// Ranks of one group occurrence must run one instance; comparing the orders themselves would cost
// O(p) per arrival, so compare what names it.
bool same_instance(const CollectiveInstance& a, const CollectiveInstance& b) {
  return a.algorithm == b.algorithm && a.protocol == b.protocol && a.pipeline == b.pipeline &&
         a.ranks_per_node == b.ranks_per_node && a.channel_orders.size() == b.channel_orders.size();
}

// Link utilisation over time: per link, the bytes in equal time bins. A transfer's wire bytes are
// spread evenly over its [start, finish], i.e. at its mean rate (SimGrid shares a link max-min, so
// its instantaneous rate may change within the transfer; the bins show the mean). Bins start
// 2^-30 s (about 1 ns) wide and double, pairs merged, whenever a transfer ends past the last of
// kLinkBins: memory is kLinkBins doubles per link that carried traffic, whatever the number of
// transfers, and a transfer touches at most kLinkBins + 1 bins. Every width is a power of two, so
// merges are exact and each link can be brought to the same final width.
constexpr int kLinkBins = 512;
constexpr double kFirstLinkBin = 0x1p-30;

struct LinkHistogram {
  double width = kFirstLinkBin;
  std::vector<double> bytes;   // kLinkBins, once the link carried anything

  void coarsen() {   // width x 2: bins 2i and 2i+1 become bin i
    for (int i = 0; i < kLinkBins / 2; ++i) bytes[size_t(i)] = bytes[size_t(2 * i)] + bytes[size_t(2 * i + 1)];
    std::fill(bytes.begin() + kLinkBins / 2, bytes.end(), 0.0);
    width *= 2;
  }
  void add(double start, double finish, double b) {
    if (bytes.empty()) bytes.assign(kLinkBins, 0.0);
    start = std::max(0.0, start);
    finish = std::max(start, finish);
    while (finish > kLinkBins * width) coarsen();
    const int last = kLinkBins - 1;
    const int i0 = std::min(last, static_cast<int>(start / width));
    const int i1 = std::max(i0, std::min(last, static_cast<int>(finish / width)));   // finish on the last edge: last bin
    if (i0 == i1 || !(finish > start)) {
      bytes[size_t(i0)] += b;
      return;
    }
    const double rate = b / (finish - start);   // the transfer's mean rate, B/s
    bytes[size_t(i0)] += rate * ((i0 + 1) * width - start);
    for (int i = i0 + 1; i < i1; ++i) bytes[size_t(i)] += rate * width;
    bytes[size_t(i1)] += rate * (finish - i1 * width);
  }
};

// The intervals of one link's bins of `width` (a power-of-two multiple of its own) over [0, end],
// the last bin cut at `end`. A bin asking more than the link's capacity (the mean-rate spread of a
// transfer whose rate changed midway) passes the excess to the next bins with room, then to the
// previous ones: no bin reads over 100% and the bins still sum to the link's bytes. Zero bins are
// dropped; adjacent bins of equal utilisation merge.
std::vector<LinkInterval> link_intervals(LinkHistogram& h, double width, double end, double bandwidth) {
  std::vector<LinkInterval> out;
  if (h.bytes.empty() || !(bandwidth > 0) || !(end > 0)) return out;
  while (h.width < width) h.coarsen();
  const int bins = std::min(kLinkBins, std::max(1, static_cast<int>(std::ceil(end / width))));
  std::vector<double> b(h.bytes.begin(), h.bytes.begin() + bins);
  for (int i = bins; i < kLinkBins; ++i) b.back() += h.bytes[size_t(i)];   // past `end`: none, but never lost
  auto capacity = [&](int i) { return bandwidth * (std::min(end, (i + 1) * width) - i * width); };
  double excess = 0;
  for (int i = 0; i < bins; ++i) {
    b[size_t(i)] += excess;
    excess = std::max(0.0, b[size_t(i)] - capacity(i));
    b[size_t(i)] -= excess;
  }
  for (int i = bins - 1; i >= 0 && excess > 0; --i) {
    const double take = std::min(excess, std::max(0.0, capacity(i) - b[size_t(i)]));
    b[size_t(i)] += take;
    excess -= take;
  }
  b.back() += excess;   // only if the link carried more than its capacity over [0, end]
  for (int i = 0; i < bins; ++i) {
    if (!(b[size_t(i)] > 0)) continue;
    const double start = i * width, stop = std::min(end, (i + 1) * width);
    double u = b[size_t(i)] / (bandwidth * (stop - start));
    if (u > 1 && u < 1 + 1e-9) u = 1;   // rounding only
    if (!out.empty() && out.back().end == start && out.back().utilisation == u) out.back().end = stop;
    else out.push_back({start, stop, u});
  }
  return out;
}

struct Simulation {
  const Topology& topology;
  const ProgramSet& programs;
  EngineOptions options;
  engine::Fabric fabric;
  std::unique_ptr<engine::SimPlatform> platform;
  engine::RunContext ctx;
  std::vector<RankState> ranks;
  std::map<std::pair<std::vector<int>, int>, std::shared_ptr<Instance>> instances;   // (group, k)
  std::vector<std::map<std::vector<int>, int>> issued;                                 // rank -> group -> k
  std::unordered_map<P2PKey, P2PMeeting, P2PKeyHash> meetings;
  std::map<RequestKey, CollectiveInstance> resolved;   // unresolved ops, through the selector
  std::map<PlanKey, std::shared_ptr<const CollectivePlan>> plans;
  std::unordered_map<const CollectivePlan*, double> plan_share;   // the SM share each plan holds
  engine::UnitTimes units;                        // fused ops and symmetric collectives, timed alone
  std::vector<double> folded;                     // rank -> collective seconds inside fused ops
  std::vector<double> tp_tail;                    // rank -> when its folded collectives are done
  // Collectives of bound ranks (ProgramSet::bindings) whose group is their own: the op's info with
  // that group and the instance resolved for it, by (op's info, group); per rank, by op id.
  std::map<std::pair<const CollectiveInfo*, std::vector<int>>, CollectiveInfo> rebound;
  std::vector<std::vector<const CollectiveInfo*>> bound_collectives;
  std::vector<Span> spans;
  std::vector<double> link_bytes;
  std::vector<std::vector<std::pair<double, double>>> link_busy;
  std::vector<LinkHistogram> link_bins;
  double last_finish = 0;   // of any transfer
  std::vector<int> route_scratch;
  bool platform_running = false;
  int64_t ops_done = 0, ops_total = 0;   // for the progress line of a long step

  Simulation(const Topology& t, const ProgramSet& p, const EngineOptions& o)
      : topology(t), programs(p), options(o), fabric(t), units(t, o) {}

  // Under replica symmetry a collective reaching a rank with no program stands for every
  // replica's identical copy: it takes its time alone on the full topology.
  bool symmetric(const CollectiveInfo& c) const {
    if (!programs.dp_symmetry) return false;
    return std::any_of(c.group.begin(), c.group.end(), [&](int g) {
      return g < 0 || g >= static_cast<int>(programs.ranks.size()) || program_of(programs, g).ops.empty();
    });
  }

  // The collective as `rank` runs it: the op's own, or for a bound rank with a group of its own, a
  // copy with that group and the instance resolved for it (made here, before the run).
  const CollectiveInfo& collective_of(int rank, const Op& op) {
    if (rank < static_cast<int>(bound_collectives.size()) && !bound_collectives[size_t(rank)].empty())
      if (const CollectiveInfo* c = bound_collectives[size_t(rank)][size_t(op.id)]) return *c;
    return op.collective;
  }
  void bind_collective(int rank, const Op& op) {
    const std::vector<int>& group = group_of(programs, rank, op.collective);
    if (group == op.collective.group) return;
    auto [it, fresh] = rebound.try_emplace({&op.collective, group});
    if (fresh) {
      it->second = op.collective;
      it->second.group = group;
      it->second.instance = CollectiveInstance{};
      it->second.instance = instance_of(it->second);
    }
    std::vector<const CollectiveInfo*>& mine = bound_collectives[size_t(rank)];
    if (mine.empty()) mine.resize(program_of(programs, rank).ops.size(), nullptr);
    mine[size_t(op.id)] = &it->second;
  }

  // Everything timed alone is timed before the platform exists (one SimGrid engine at a time).
  void prepare(int rank, const Op& op) {
    if (op.kind == OpKind::collective) {
      if (!programs.bindings.empty()) bind_collective(rank, op);
      const CollectiveInfo& c = collective_of(rank, op);
      if (symmetric(c)) units.alone(c);
      else plan_for(c);
    } else if (op.parts) {
      units.fused(op);
    }
  }

  // SimGrid runs actors one at a time (no parallel contexts), so `done` and the waiter list need no
  // lock: nothing else runs between a stream's check and its acquire.
  void mark_done(int rank, int op) {
    RankState& rs = ranks[rank];
    rs.done[op] = 1;
    if (options.progress) options.progress(++ops_done, ops_total);
    rs.finish[op] = platform->now();
    for (RankState::Waiter& w : rs.waiters)
      if (w.op == op) {
        w.op = -1;
        w.wake->release();
      }
  }

  void wait_op(int rank, Stream stream, int op) {
    RankState& rs = ranks[rank];
    RankState::Waiter& w = rs.waiters[size_t(stream)];
    while (!rs.done[op]) {
      w.op = op;
      w.wake->acquire();
    }
  }

  // The instance an op runs: its own when resolved, else the selector's (as resolve_collectives).
  const CollectiveInstance& instance_of(const CollectiveInfo& c) {
    if (c.instance.resolved()) return c.instance;
    auto [it, fresh] = resolved.try_emplace(request_key(c));
    if (fresh) {
      if (platform_running) throw std::logic_error("simulate: collective resolved during the run");
      it->second = engine::resolve(fabric, c.op, c.algorithm, c.group, double(c.bytes), c.root);
    }
    return it->second;
  }

  // Plans are made before the simulation starts (on the main stack: actor stacks are small).
  std::shared_ptr<const CollectivePlan> plan_for(const CollectiveInfo& c) {
    const CollectiveInstance& use = instance_of(c);
    PlanKey key{request_key(c), int(use.algorithm), use.protocol, use.channel_orders, use.pipeline, use.ranks_per_node};
    auto [it, fresh] = plans.try_emplace(key, nullptr);
    if (fresh) {
      if (platform_running) throw std::logic_error("simulate: collective planned during the run");
      engine::CollectiveSpec spec;
      spec.op = c.op;
      spec.group = c.group;
      spec.bytes = double(c.bytes);
      spec.root = c.root;
      spec.instance = use;
      it->second = std::make_shared<const CollectivePlan>(engine::plan_collective(fabric, spec, options.fidelity));
      plan_share[it->second.get()] = engine::collective_sm_share(topology, c.op, use, c.group, double(c.bytes));
    }
    return it->second;
  }

  // NCCL's kernel takes `share` of this GPU's SMs now, until end_hold (-1: it holds none).
  long start_hold(int rank, double share) {
    if (!(share > 0)) return -1;
    RankState& rs = ranks[rank];
    rs.holds.push_back({platform->now(), std::numeric_limits<double>::infinity(), share});
    rs.hold_ids.push_back(rs.next_hold);
    return rs.next_hold++;
  }
  // The compute beside it speeds up now: wake it if it is parked on the hold.
  void end_hold(int rank, long id) {
    if (id < 0) return;
    RankState& rs = ranks[rank];
    const size_t i = size_t(std::find(rs.hold_ids.begin(), rs.hold_ids.end(), id) - rs.hold_ids.begin());
    if (i == rs.holds.size()) throw std::logic_error("simulate: an SM hold ended twice");
    if (!rs.computing) {
      rs.holds.erase(rs.holds.begin() + ptrdiff_t(i));
      rs.hold_ids.erase(rs.hold_ids.begin() + ptrdiff_t(i));
      return;
    }
    rs.holds[i].end = platform->now();
    if (rs.sm_waiting) rs.sm_wake->release();
  }

  // A compute-stream op needing `seconds` of the whole GPU. Alone (no hold at its start) it sleeps
  // exactly that, as before; a hold that began meanwhile makes it finish the work left at the
  // rate the holds allow. While a hold runs, it waits for the end that rate predicts or for a hold
  // to end, whichever is first, and recomputes from the holds' history (a hold ending or starting
  // only changes the rate from then on). Waits under SimGrid's 1 ns precision are skipped.
  void compute(int rank, double seconds) {
    RankState& rs = ranks[rank];
    const double start = platform->now();
    for (size_t i = rs.holds.size(); i-- > 0;)   // the one compute stream: ended holds are past
      if (rs.holds[i].end <= start) {
        rs.holds.erase(rs.holds.begin() + ptrdiff_t(i));
        rs.hold_ids.erase(rs.hold_ids.begin() + ptrdiff_t(i));
      }
    rs.computing = true;
    if (rs.holds.empty()) {
      sg::this_actor::sleep_for(seconds);
      if (rs.holds.empty()) {
        rs.computing = false;
        return;
      }
    }
    for (;;) {
      const double end = engine::stretched_end(start, seconds, rs.holds);   // running holds: as if forever
      const double left = end - platform->now();
      if (left < 1e-9) break;
      bool running = false;
      for (const engine::SmHold& h : rs.holds) running |= h.end == std::numeric_limits<double>::infinity();
      if (!running) {
        sg::this_actor::sleep_for(left);
        continue;
      }
      rs.sm_waiting = true;
      if (left == std::numeric_limits<double>::infinity()) rs.sm_wake->acquire();   // no SM left
      else rs.sm_wake->acquire_timeout(left);
      rs.sm_waiting = false;
    }
    rs.computing = false;
  }

  // A finished transfer, on every link of its route (Fabric::route: the links SimGrid sent it over).
  void record_comm(const engine::CommRecord& r) {
    route_scratch.clear();
    fabric.route(r.src, r.dst, route_scratch);
    last_finish = std::max(last_finish, r.finish);
    for (int l : route_scratch) {
      link_bytes[l] += r.wire_bytes;
      link_busy[l].push_back({r.start, r.finish});
      link_bins[l].add(r.start, r.finish, r.wire_bytes);
    }
  }

  // Returns the plan the collective ran (its instance names what was timed).
  std::shared_ptr<const CollectivePlan> run_collective(int rank, const Op& op, const CollectiveInfo& c) {
    if (std::find(c.group.begin(), c.group.end(), rank) == c.group.end())
      throw std::invalid_argument("rank " + std::to_string(rank) + " op '" + op.name + "': rank is not in its own collective group");
    const int k = issued[rank][c.group]++;
    // Only the first rank to arrive creates the occurrence. Creating SimGrid mutexes may yield to
    // other actors, so after creating, take whichever instance is in the map by now.
    const auto key = std::make_pair(c.group, k);
    std::shared_ptr<Instance> inst;
    if (auto it = instances.find(key); it != instances.end()) {
      inst = it->second;
    } else {
      auto created = std::make_shared<Instance>();
      inst = instances.try_emplace(key, created).first->second;
    }
    auto plan = plan_for(c);
    // NCCL's kernel is launched on arrival and holds its CTAs while it waits for the group.
    const long hold = start_hold(rank, plan_share.at(plan.get()));
    sg::MutexPtr m = inst->mutex;
    std::unique_lock lock(*m);
    if (!inst->first) {
      inst->first = &op;
      inst->first_info = &c;
    }
    const CollectiveInfo& f = *inst->first_info;
    if (f.op != c.op || f.bytes != c.bytes || f.root != c.root || !same_instance(f.instance, c.instance))
      throw std::invalid_argument("collective mismatch on group: rank " + std::to_string(rank) + " op '" + op.name +
                                  "' does not match '" + inst->first->name + "' (op, size, root or instance differ)");
    if (++inst->arrived == static_cast<int>(c.group.size())) {
      inst->start = platform->now();
      engine::start_collective(ctx, plan, options.fidelity, [this, inst] {
        sg::MutexPtr im = inst->mutex;
        std::unique_lock l(*im);
        inst->done = true;
        inst->end = platform->now();
        inst->finished->notify_all();
      });
    }
    while (!inst->done) inst->finished->wait(lock);
    end_hold(rank, hold);
    return plan;
  }

  // Send and recv meet by (src, dst, tag): whichever comes second starts the transfer and waits
  // for it, then wakes the first (parked on its stream's semaphore). A SimGrid mailbox per tag did
  // the same but created an engine object per name, the largest cost of a pipelined step.
  void run_p2p(int rank, Stream stream, const Op& op, int peer) {
    const P2PInfo& x = op.p2p;
    if (peer < 0 || peer >= static_cast<int>(programs.ranks.size()) || peer == rank)
      throw std::invalid_argument("rank " + std::to_string(rank) + " op '" + op.name + "': bad peer " + std::to_string(peer));
    const bool send = op.kind == OpKind::send;
    const int src = send ? rank : peer, dst = send ? peer : rank;
    auto [it, first] = meetings.try_emplace(P2PKey{src, dst, x.tag});
    if (first) {
      it->second.first_is_send = send;
      it->second.bytes = x.bytes;
      it->second.wake = ranks[rank].waiters[size_t(stream)].wake;
      it->second.wake->acquire();
    } else {
      P2PMeeting meeting = it->second;
      meetings.erase(it);
      if (meeting.first_is_send == send)
        throw std::invalid_argument("rank " + std::to_string(rank) + " op '" + op.name + "': two " + (send ? "sends" : "recvs") +
                                    " with tag " + std::to_string(x.tag) + " between GPUs " + std::to_string(src) + " and " +
                                    std::to_string(dst));
      if (meeting.bytes != x.bytes)
        throw std::invalid_argument("rank " + std::to_string(rank) + " op '" + op.name + "': send and recv sizes differ (" +
                                    std::to_string(meeting.bytes) + " and " + std::to_string(x.bytes) + " bytes)");
      const double bytes = double(std::max<int64_t>(x.bytes, 1));
      const double start = platform->now();
      sg::Comm::sendto_async(platform->host(src), platform->host(dst), static_cast<uint64_t>(bytes))->wait();
      record_comm({src, dst, bytes, start, platform->now()});
      meeting.wake->release();
    }
    // The receiver sees the data one launch and one path latency after the last byte left.
    if (!send) sg::this_actor::sleep_for(topology.collectives.launch_latency + fabric.latency(src, dst));
  }

  // A merged op's span as one span per pass run (UnitTime::runs): a 1F1B backward, then the next
  // micro-batch's forward. The boundaries are where the unit-time run, the parts alone one after
  // the other, was through each run. Here the op may have taken longer than alone (collectives
  // beside it held some SMs: compute() stretched it), so the boundaries are scaled by the op's
  // duration over its unit time, as though every part were stretched alike; the TP tail it started
  // with is already in the unit time. The spans tile the op's: the first starts at its start, each
  // ends where the next starts, the last ends at its end. Micro-batch and stage stay the op's.
  void push_pass_runs(const Span& whole, const engine::UnitTime& unit) {
    const double duration = whole.end - whole.start;
    const double scale = unit.seconds > 0 ? duration / unit.seconds : 0;
    double start = whole.start;
    const std::vector<engine::PassRun>& runs = *unit.runs;
    for (size_t k = 0; k < runs.size(); ++k) {
      const engine::PassRun& r = runs[k];
      Span s = whole;
      s.name = r.name;
      s.pass = r.pass;
      s.recompute = r.recompute;
      s.layer = r.layer;
      s.start = start;
      s.end = k + 1 == runs.size() ? whole.end : std::clamp(whole.start + r.end * scale, start, whole.end);
      start = s.end;
      spans.push_back(std::move(s));
    }
  }

  // One stream of one rank: its ops in program order.
  void run_stream(int rank, Stream stream, const std::vector<int>& ops) {
    const Program& prog = program_of(programs, rank);
    double stream_free = platform->now();
    for (int id : ops) {
      const Op& op = prog.ops[size_t(id)];
      // Wait for deps; on the compute stream, time spent waiting on communication is a stall.
      int last_dep = -1;
      for (int d : op.deps) {
        if (d < 0 || d >= static_cast<int>(prog.ops.size()))
          throw std::invalid_argument("rank " + std::to_string(rank) + " op '" + op.name + "': dependency " + std::to_string(d) + " does not exist");
        wait_op(rank, stream, d);
        if (last_dep < 0 || ranks[rank].finish[d] > ranks[rank].finish[last_dep]) last_dep = d;
      }
      const double ready = platform->now();
      if (stream == Stream::compute && last_dep >= 0 && ready > stream_free && is_comm(prog.ops[last_dep])) {
        const Op& awaited = prog.ops[last_dep];
        // Waiting for a pipeline message is the pipeline's bubble, named after the receive: a
        // scattered message's TP all-gather (pipeline_p2p.hpp), or a TP collective the op needs
        // besides a receive, is a bubble until the receive arrived and a stall on the collective after.
        const bool pipeline_wait = awaited.stream == Stream::pp_comm || awaited.kind != OpKind::collective;
        double bubble_until = pipeline_wait ? ready : stream_free;
        const Op* receive = pipeline_wait ? &awaited : nullptr;
        auto consider_receive = [&](int d) {
          if (pipeline_wait || prog.ops[size_t(d)].stream != Stream::pp_comm) return;
          if (ranks[rank].finish[d] <= bubble_until) return;
          bubble_until = std::min(ranks[rank].finish[d], ready);
          receive = &prog.ops[size_t(d)];
        };
        for (int d : op.deps) consider_receive(d);
        for (int d : awaited.deps) consider_receive(d);
        auto wait_span = [&](const Op& waited, bool bubble, double from, double to) {
          if (to <= from) return;
          Span s;
          s.rank = rank;
          s.stream = stream;
          s.name = (bubble ? "bubble: " : "stall: ") + waited.name;
          s.kind = bubble ? "bubble" : "stall";
          s.start = from;
          s.end = to;
          s.waited_for = waited.name;
          s.waited_kind = waited.kind;
          s.waited_stream = waited.stream;
          if (waited.kind == OpKind::collective) s.waited_collective = waited.collective.op;
          copy_op_fields(s, op);
          spans.push_back(std::move(s));
        };
        if (receive) wait_span(*receive, true, stream_free, bubble_until);
        wait_span(awaited, false, bubble_until, ready);
      }
      Span span;
      span.rank = rank;
      span.stream = stream;
      span.op = op.id;
      span.name = op.name;
      span.start = ready;
      copy_op_fields(span, op);
      engine::UnitTime unit;   // a fused op's, for its pass runs
      switch (op.kind) {
        case OpKind::gemm:
        case OpKind::kernel:
          span.kind = op.kind == OpKind::gemm ? "gemm" : "kernel";
          if (op.parts) {
            const double now = platform->now();
            unit = units.fused(op, std::max(0.0, tp_tail[rank] - now));
            folded[rank] += unit.collectives;
            if (unit.tp_free > 0) tp_tail[rank] = now + unit.tp_free;
            if (stream == Stream::compute) compute(rank, unit.seconds);
            else sg::this_actor::sleep_for(unit.seconds);
          } else {
            const double seconds = op_cost(topology.gpu, op).seconds;
            if (stream == Stream::compute) compute(rank, seconds);
            else sg::this_actor::sleep_for(seconds);
          }
          break;
        case OpKind::collective: {
          const CollectiveInfo& c = collective_of(rank, op);
          span.kind = "collective";
          span.bytes = c.bytes;
          if (symmetric(c)) {
            span.instance = describe(c.instance);
            span.algorithm = to_string(c.instance.algorithm);
            const auto [seconds, share] = units.alone_with_share(c);
            const long hold = start_hold(rank, share);
            sg::this_actor::sleep_for(seconds);
            end_hold(rank, hold);
          } else {
            const auto plan = run_collective(rank, op, c);
            span.algorithm = to_string(plan->algorithm);
            span.instance = describe(plan->instance);
          }
          break;
        }
        case OpKind::send:
        case OpKind::recv:
          span.kind = op.kind == OpKind::send ? "send" : "recv";
          span.bytes = op.p2p.bytes;
          span.peer = peer_of(programs, rank, op.p2p);
          run_p2p(rank, stream, op, span.peer);
          break;
      }
      span.end = platform->now();
      stream_free = span.end;
      if (!unit.runs) spans.push_back(std::move(span));
      else push_pass_runs(span, unit);
      mark_done(rank, op.id);
    }
  }
};

// The index of every span in (rank, start, stream, op, end) order; ties cannot occur (a rank's op
// ids are distinct, its stalls start at distinct times), so the order never depends on which actor
// SimGrid ran first. Spans are bucketed by rank, then each rank's compact keys sorted: one sort of
// indices comparing the spans themselves was 7% of a run's instructions, mostly cache misses.
std::vector<uint32_t> span_order(const std::vector<Span>& spans, int ranks) {
  struct Key {
    double start, end;
    int stream, op;
    uint32_t index;
  };
  std::vector<size_t> first(size_t(ranks) + 1, 0);
  for (const Span& s : spans) ++first[size_t(s.rank) + 1];
  for (size_t r = 0; r < size_t(ranks); ++r) first[r + 1] += first[r];
  std::vector<Key> keys(spans.size());
  std::vector<size_t> next(first.begin(), first.end() - 1);
  for (uint32_t i = 0; i < spans.size(); ++i) {
    const Span& s = spans[i];
    keys[next[size_t(s.rank)]++] = Key{s.start, s.end, int(s.stream), s.op, i};
  }
  for (size_t r = 0; r < size_t(ranks); ++r)
    std::sort(keys.begin() + ptrdiff_t(first[r]), keys.begin() + ptrdiff_t(first[r + 1]), [](const Key& a, const Key& b) {
      return std::tie(a.start, a.stream, a.op, a.end) < std::tie(b.start, b.stream, b.op, b.end);
    });
  std::vector<uint32_t> order(spans.size());
  for (size_t i = 0; i < keys.size(); ++i) order[i] = keys[i].index;
  return order;
}

double union_length(std::vector<std::pair<double, double>>& v) {
  std::sort(v.begin(), v.end());
  double total = 0, start = 0, end = -1;
  for (auto [a, b] : v) {
    if (a > end) {
      if (end > start) total += end - start;
      start = a;
      end = b;
    } else {
      end = std::max(end, b);
    }
  }
  if (end > start) total += end - start;
  return total;
}

}  // namespace

Timeline simulate(const Topology& topology, const ProgramSet& programs, const EngineOptions& options) {
  const WallClock wall;
  Simulation sim(topology, programs, options);
  const int n = static_cast<int>(programs.ranks.size());
  if (n > sim.fabric.gpus())
    throw std::invalid_argument("simulate: " + std::to_string(n) + " ranks do not fit on topology '" + topology.name +
                                "' with " + std::to_string(sim.fabric.gpus()) + " GPUs");
  for (int r = 0; r < n; ++r) {
    const Program& p = programs.ranks[r];
    for (int i = 0; i < static_cast<int>(p.ops.size()); ++i)
      if (p.ops[i].id != i) throw std::invalid_argument("simulate: rank " + std::to_string(r) + " op ids must equal their index");
  }
  if (!programs.bindings.empty() && programs.bindings.size() != programs.ranks.size())
    throw std::invalid_argument("simulate: bindings must be empty or one per rank");
  sim.bound_collectives.resize(programs.bindings.size());
  for (int r = 0; r < n; ++r)
    for (const Op& op : program_of(programs, r).ops) sim.prepare(r, op);
  spdlog::debug("simulate: pieces timed alone and collectives planned in {:.3f} s wall, {:.0f} MiB resident", wall.lap(), resident_mib());
  sim.folded.assign(n, 0.0);
  size_t op_count = 0;
  for (int r = 0; r < n; ++r) op_count += program_of(programs, r).ops.size();
  sim.spans.reserve(op_count + op_count / 4);   // one span per op, plus stalls
  sim.tp_tail.assign(n, 0.0);
  sim.platform_running = true;
  sim.platform = std::make_unique<engine::SimPlatform>(sim.fabric);
  sim.ctx.platform = sim.platform.get();
  sim.ctx.on_comm = [&sim](const engine::CommRecord& r) { sim.record_comm(r); };
  sim.ranks.resize(n);
  sim.issued.resize(n);
  sim.link_bytes.assign(sim.fabric.links().size(), 0.0);
  sim.link_busy.resize(sim.fabric.links().size());
  sim.link_bins.resize(sim.fabric.links().size());
  for (int r = 0; r < n; ++r) {
    const Program& prog = program_of(programs, r);
    sim.ranks[r].done.assign(prog.ops.size(), 0);
    sim.ranks[r].finish.assign(prog.ops.size(), 0.0);
    sim.ops_total += int64_t(prog.ops.size());
    sim.ranks[r].waiters.resize(kStreamCount);
    // Each stream's ops, listed once: an actor then walks only its own.
    std::map<Stream, std::vector<int>> by_stream;
    for (const Op& op : prog.ops) by_stream[op.stream].push_back(op.id);
    for (auto& [s, ops] : by_stream)
      sg::Actor::create("rank" + std::to_string(r) + "." + std::to_string(int(s)), sim.platform->host(r),
                        [&sim, r, s, ops = std::move(ops)] { engine::guarded(sim.ctx, [&] { sim.run_stream(r, s, ops); }); });
  }
  spdlog::debug("simulate: actors created in {:.3f} s wall, {:.0f} MiB resident", wall.lap(), resident_mib());
  sim.platform->run();
  spdlog::debug("simulate: {} ops run in {:.3f} s wall, {:.0f} MiB resident", op_count, wall.lap(), resident_mib());
  if (sim.ctx.error) std::rethrow_exception(sim.ctx.error);
  for (int r = 0; r < n; ++r)
    for (size_t i = 0; i < sim.ranks[r].done.size(); ++i)
      if (!sim.ranks[r].done[i])
        throw std::runtime_error("simulate: deadlock, rank " + std::to_string(r) + " op '" + program_of(programs, r).ops[i].name +
                                 "' never ran (a collective not reached by its whole group, or an unmatched send/recv)");

  Timeline t;
  // Sorted by (rank, start, stream, op, end), then permuted in place, cycle by cycle: each span is
  // moved about once (a Span holds several strings) and no second buffer of spans is faulted in.
  std::vector<uint32_t> order = span_order(sim.spans, n);
  for (size_t i = 0; i < order.size(); ++i) {
    if (order[i] == i) continue;
    Span held = std::move(sim.spans[i]);
    size_t at = i;
    while (order[at] != i) {
      const size_t from = order[at];
      sim.spans[at] = std::move(sim.spans[from]);
      order[at] = uint32_t(at);
      at = from;
    }
    sim.spans[at] = std::move(held);
    order[at] = uint32_t(at);
  }
  t.spans = std::move(sim.spans);
  t.ranks.assign(n, RankTotals{});
  for (const Span& s : t.spans) {
    t.makespan = std::max(t.makespan, s.end);
    RankTotals& rt = t.ranks[s.rank];
    const double d = s.end - s.start;
    if (s.kind == "gemm" || s.kind == "kernel") rt.compute += d;
    else if (s.kind == "stall") rt.exposed_communication += d;
    else if (s.kind == "bubble") rt.bubble += d;
    else rt.communication += d;
  }
  for (RankTotals& rt : t.ranks) rt.idle = std::max(0.0, t.makespan - rt.compute - rt.exposed_communication - rt.bubble);
  for (int r = 0; r < n; ++r) t.ranks[r].folded_communication = sim.folded[r];
  // Every link's bins at one width: the smallest power of two that fits the traffic in kLinkBins.
  const double traffic_end = std::max(t.makespan, sim.last_finish);
  double bin = kFirstLinkBin;
  while (traffic_end > kLinkBins * bin) bin *= 2;
  bool binned = false;
  for (size_t l = 0; l < sim.link_bytes.size(); ++l)
    if (sim.link_bytes[l] > 0) {
      const engine::FabricLink& link = sim.fabric.links()[l];
      t.links.push_back({link.name, sim.link_bytes[l], union_length(sim.link_busy[l]), link.bandwidth,
                         link_intervals(sim.link_bins[l], bin, traffic_end, link.bandwidth)});
      binned = binned || !t.links.back().intervals.empty();
    }
  if (binned) t.link_bin = bin;
  spdlog::debug("simulate: timeline of {} spans assembled in {:.3f} s wall, {:.0f} MiB resident", t.spans.size(), wall.lap(), resident_mib());
  return t;
}

}  // namespace tpsim
