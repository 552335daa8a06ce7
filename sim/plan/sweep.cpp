// Running a sweep: one forked worker per layout (SimGrid allows one Engine per process, and a crash
// costs one layout, not the sweep), at most `jobs` at a time. Each result comes back as its CSV row
// over a pipe, is appended to the result file as it finishes, and a re-run resumes from that file.
#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fmt/format.h>
#include <map>
#include <set>
#include <thread>

#include "report/atomic_file.hpp"
#include "tpsim/planner.hpp"

namespace tpsim {

namespace {

struct Worker {
  pid_t pid = -1;
  int fd = -1;
  Layout layout;
  std::string output;
};

// Writes all of `text` to `fd`, retrying short and interrupted writes; false on an error.
bool write_all(int fd, const std::string& text) {
  std::size_t sent = 0;
  while (sent < text.size()) {
    const ssize_t n = ::write(fd, text.data() + sent, text.size() - sent);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    sent += static_cast<std::size_t>(n);
  }
  return true;
}

// The worker's whole life: evaluate one layout, send its CSV row, exit without running the parent's
// destructors or flushing its stdio buffers.
[[noreturn]] void worker_main(int fd, const SweepSpec& spec, const Layout& layout, const Evaluator& evaluate,
                              const SweepTag& tag) {
  LayoutResult r;
  try {
    r = evaluate(scenario_for(spec, layout));
  } catch (const InputError& e) {
    r = LayoutResult{};
    r.verdict = Verdict::invalid;
    r.reason = e.key.empty() ? e.problem : e.key + ": " + e.problem;
  } catch (const std::exception& e) {
    r = LayoutResult{};
    r.verdict = Verdict::error;
    r.reason = e.what();
  }
  r.layout = layout;
  finish_result(spec, r);
  ::_exit(write_all(fd, csv_row(r, 0, tag) + "\n") ? 0 : 3);
}

Worker start_worker(const SweepSpec& spec, const Layout& layout, const Evaluator& evaluate, const SweepTag& tag) {
  int fds[2];
  if (::pipe(fds) != 0) throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
  std::fflush(nullptr);   // nothing buffered in the parent may be written twice
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
  }
  if (pid == 0) {
    ::close(fds[0]);
    worker_main(fds[1], spec, layout, evaluate, tag);
  }
  ::close(fds[1]);
  return Worker{pid, fds[0], layout, {}};
}

// The worker's result: its row, or an error verdict saying how it died.
LayoutResult collect_worker(Worker& w) {
  int status = 0;
  while (::waitpid(w.pid, &status, 0) < 0 && errno == EINTR) {
  }
  LayoutResult r;
  r.layout = w.layout;
  r.verdict = Verdict::error;
  if (WIFSIGNALED(status)) {
    r.reason = fmt::format("the worker died of signal {} ({})", WTERMSIG(status), strsignal(WTERMSIG(status)));
    return r;
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || w.output.empty() || w.output.back() != '\n') {
    r.reason = fmt::format("the worker exited with status {}", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return r;
  }
  try {
    r = parse_csv_row(w.output.substr(0, w.output.size() - 1)).result;
  } catch (const std::exception& e) {
    r.reason = std::string("the worker's row did not parse: ") + e.what();
  }
  return r;
}

// The resumable result file. It starts as the header and the kept rows, written to a temporary
// file and renamed into place, then each row is appended with one write(2) as its layout finishes.
// A kill -9 at any moment leaves the old file or the new one whole, plus at most a last row without
// its newline, which the next run drops and redoes: no row is lost, torn or written twice.
class ResultFile {
 public:
  ResultFile(const std::string& path, const std::vector<LayoutResult>& kept, const SweepTag& tag)
      : path_(path), tag_(tag) {
    if (path.empty()) return;
    std::string text = csv_header() + "\n";
    for (const auto& r : kept) text += csv_row(r, 0, tag) + "\n";
    write_file_atomically("--csv", path, text);
    fd_ = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd_ < 0) throw InputError("", 0, 0, "--csv", "cannot append to '" + path + "': " + std::strerror(errno));
  }
  ~ResultFile() {
    if (fd_ >= 0) ::close(fd_);
  }
  ResultFile(const ResultFile&) = delete;
  ResultFile& operator=(const ResultFile&) = delete;
  void append(const LayoutResult& r) {
    if (fd_ < 0) return;
    if (!write_all(fd_, csv_row(r, 0, tag_) + "\n"))
      throw InputError("", 0, 0, "--csv", "appending to '" + path_ + "' failed: " + std::strerror(errno));
  }

 private:
  int fd_ = -1;
  std::string path_;
  SweepTag tag_;
};

// The refusal when a file's rows were computed from other inputs than this run's. The contexts are
// named only when they differ: a --set changes the id, not the context.
InputError other_sweep(const std::string& path, int line, const SweepTag& file, const SweepTag& run) {
  const bool same = file.context == run.context;
  return InputError(path, line, 1, "sweep_id",
                    fmt::format("this file holds sweep {}{}, this run is sweep {}{}: its rows were computed from other "
                                "inputs (scenario, --set, flags or tpsim version); write to a new --csv file or "
                                "delete this one",
                                file.id, same ? "" : " ('" + file.context + "')", run.id,
                                same ? "" : " ('" + run.context + "')"));
}

// Rows of an earlier run of this very sweep and shard are reused, except errors (a worker that
// crashed, was OOM-killed or threw): those say nothing about the layout, so they are redone.
std::map<std::string, LayoutResult> resumable(const std::string& path, const SweepTag& tag,
                                              const std::set<std::string>& wanted) {
  std::map<std::string, LayoutResult> out;
  if (path.empty()) return out;
  const CsvFile file = read_csv(path);
  std::map<std::string, int> line_of;
  for (std::size_t i = 0; i < file.records.size(); ++i) {
    const CsvRecord& rec = file.records[i];
    const int line = file.lines[i];
    const std::string id = layout_id(rec.result.layout);
    if (rec.tag.id != tag.id) throw other_sweep(path, line, rec.tag, tag);
    if (rec.tag.shard.index != tag.shard.index || rec.tag.shard.parts != tag.shard.parts)
      throw InputError(path, line, 1, "shard",
                       fmt::format("this file holds shard {}/{} of the sweep, this run is shard {}/{}; write to a new "
                                   "--csv file or delete this one",
                                   rec.tag.shard.index, rec.tag.shard.parts, tag.shard.index, tag.shard.parts));
    if (!wanted.count(id))
      throw InputError(path, line, 1, "layout",
                       "this file holds layout " + id + ", which this sweep (or shard) does not run; "
                       "write to a new --csv file or delete this one");
    if (auto [it, fresh] = line_of.emplace(id, line); !fresh)
      throw InputError(path, line, 1, "layout",
                       fmt::format("layout {} is also on line {}: a damaged file; write to a new --csv file or "
                                   "delete this one", id, it->second));
    if (rec.result.verdict != Verdict::error) out.emplace(id, rec.result);
  }
  return out;
}

}  // namespace

SweepOutcome run_sweep(const SweepSpec& spec, const SweepOptions& options, const Evaluator& evaluate) {
  const std::vector<Layout> mine = shard_layouts(enumerate_layouts(spec), options.shard);
  const SweepTag tag = sweep_tag(spec, options.shard);
  std::set<std::string> wanted;
  for (const auto& l : mine) wanted.insert(layout_id(l));
  const std::map<std::string, LayoutResult> earlier = resumable(options.csv, tag, wanted);

  SweepOutcome outcome;
  outcome.total = static_cast<int>(mine.size());
  std::vector<LayoutResult> kept;
  std::vector<Layout> queue;
  for (const auto& l : mine) {
    auto it = earlier.find(layout_id(l));
    if (it != earlier.end()) kept.push_back(it->second);
    else queue.push_back(l);
  }
  outcome.resumed = static_cast<int>(kept.size());
  ResultFile file(options.csv, kept, tag);
  std::vector<LayoutResult> results = kept;

  // The planner's own checks need no simulator: those rejections are written first, so the
  // progress line counts (and its time left extrapolates) only layouts that take a simulation.
  int to_simulate = 0, simulated = 0;
  auto finished = [&](LayoutResult r, bool by_worker) {
    file.append(r);
    results.push_back(std::move(r));
    ++outcome.evaluated;
    if (!by_worker) return;
    ++simulated;
    if (options.progress) options.progress(simulated, to_simulate);
  };
  std::vector<Layout> simulate;
  for (const Layout& l : queue) {
    if (const std::string problem = layout_problem(spec, l); !problem.empty()) {
      LayoutResult r;
      r.layout = l;
      r.verdict = Verdict::invalid;
      r.reason = problem;
      finished(r, false);
    } else {
      simulate.push_back(l);
    }
  }
  queue = std::move(simulate);
  to_simulate = static_cast<int>(queue.size());
  if (options.progress) options.progress(0, to_simulate);

  const int jobs = options.jobs > 0 ? options.jobs : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  std::vector<Worker> running;
  std::size_t next = 0;
  while (next < queue.size() || !running.empty()) {
    while (next < queue.size() && static_cast<int>(running.size()) < jobs) {
      running.push_back(start_worker(spec, queue[next++], evaluate, tag));
    }
    if (running.empty()) continue;
    std::vector<pollfd> fds;
    for (const auto& w : running) fds.push_back(pollfd{w.fd, POLLIN, 0});
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(std::string("poll: ") + std::strerror(errno));
    }
    for (std::size_t i = fds.size(); i-- > 0;) {
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      Worker& w = running[i];
      char buffer[4096];
      const ssize_t n = ::read(w.fd, buffer, sizeof buffer);
      if (n < 0 && errno == EINTR) continue;
      if (n > 0) {
        w.output.append(buffer, static_cast<std::size_t>(n));
        continue;
      }
      ::close(w.fd);
      LayoutResult r = collect_worker(w);
      running.erase(running.begin() + static_cast<std::ptrdiff_t>(i));
      finished(std::move(r), true);
    }
  }

  rank_results(results, spec.objective);
  if (!options.csv.empty()) write_ranked_csv(options.csv, results, tag);
  if (!options.json.empty()) write_file_atomically("--json", options.json, results_json(results, tag));
  outcome.ranked = std::move(results);
  return outcome;
}

}  // namespace tpsim
