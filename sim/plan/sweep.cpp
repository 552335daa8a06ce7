// Running a sweep: one forked worker per layout (SimGrid allows one Engine per process, and a crash
// costs one layout, not the sweep), at most `jobs` at a time. Each result comes back as its CSV row
// over a pipe, is appended to the result file as it finishes, and a re-run resumes from that file.
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

#include "tpsim/planner.hpp"

namespace tpsim {

namespace {

struct Worker {
  pid_t pid = -1;
  int fd = -1;
  Layout layout;
  std::string output;
};

// The worker's whole life: evaluate one layout, send its CSV row, exit without running the parent's
// destructors or flushing its stdio buffers.
[[noreturn]] void worker_main(int fd, const SweepSpec& spec, const Layout& layout, const Evaluator& evaluate,
                              const std::string& context) {
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
  const std::string line = csv_row(r, 0, spec.objective, context) + "\n";
  std::size_t sent = 0;
  while (sent < line.size()) {
    const ssize_t n = ::write(fd, line.data() + sent, line.size() - sent);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) ::_exit(3);
    sent += static_cast<std::size_t>(n);
  }
  ::_exit(0);
}

Worker start_worker(const SweepSpec& spec, const Layout& layout, const Evaluator& evaluate,
                    const std::string& context) {
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
    worker_main(fds[1], spec, layout, evaluate, context);
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

// Appends rows as they finish; a crash loses at most the row being written, which resume ignores.
class ResultFile {
 public:
  ResultFile(const std::string& path, const std::vector<LayoutResult>& kept, Objective objective,
             const std::string& context)
      : context_(context), objective_(objective) {
    if (path.empty()) return;
    // Start from the header and the kept rows (dropping a row a killed run left half-written),
    // written whole and renamed into place, then append.
    const std::string tmp = path + ".tmp";
    std::FILE* fresh = std::fopen(tmp.c_str(), "wb");
    if (!fresh) throw InputError("", 0, 0, "--csv", "cannot write '" + tmp + "'");
    std::string text = csv_header() + "\n";
    for (const auto& r : kept) text += csv_row(r, 0, objective, context) + "\n";
    const bool written = std::fwrite(text.data(), 1, text.size(), fresh) == text.size();
    if (std::fclose(fresh) != 0 || !written || std::rename(tmp.c_str(), path.c_str()) != 0)
      throw InputError("", 0, 0, "--csv", "cannot write '" + path + "'");
    file_ = std::fopen(path.c_str(), "ab");
    if (!file_) throw InputError("", 0, 0, "--csv", "cannot append to '" + path + "'");
  }
  ~ResultFile() {
    if (file_) std::fclose(file_);
  }
  ResultFile(const ResultFile&) = delete;
  ResultFile& operator=(const ResultFile&) = delete;
  void append(const LayoutResult& r) {
    if (!file_) return;
    const std::string line = csv_row(r, 0, objective_, context_) + "\n";
    std::fwrite(line.data(), 1, line.size(), file_);
    std::fflush(file_);
  }

 private:
  std::FILE* file_ = nullptr;
  std::string context_;
  Objective objective_;
};

// Rows of an earlier run of this very sweep (same context, a layout of this shard) are reused.
std::map<std::string, LayoutResult> resumable(const std::string& path, const std::string& context,
                                              const std::set<std::string>& wanted) {
  std::map<std::string, LayoutResult> out;
  if (path.empty()) return out;
  for (const CsvRecord& rec : read_csv(path)) {
    const std::string id = layout_id(rec.result.layout);
    if (rec.context != context)
      throw InputError(path, 0, 0, "sweep",
                       "this file holds another sweep ('" + rec.context + "'); write to a new file or delete it");
    if (!wanted.count(id))
      throw InputError(path, 0, 0, "layout",
                       "this file holds layout " + id + ", which this sweep (or shard) does not run; "
                       "write to a new file or delete it");
    out.emplace(id, rec.result);
  }
  return out;
}

}  // namespace

SweepOutcome run_sweep(const SweepSpec& spec, const SweepOptions& options, const Evaluator& evaluate) {
  const std::vector<Layout> mine = shard_layouts(enumerate_layouts(spec), options.shard);
  const std::string context = sweep_context(spec);
  std::set<std::string> wanted;
  for (const auto& l : mine) wanted.insert(layout_id(l));
  const std::map<std::string, LayoutResult> earlier = resumable(options.csv, context, wanted);

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
  ResultFile file(options.csv, kept, spec.objective, context);
  std::vector<LayoutResult> results = kept;

  int done = outcome.resumed;
  auto finished = [&](LayoutResult r) {
    file.append(r);
    results.push_back(std::move(r));
    ++outcome.evaluated;
    ++done;
    if (options.progress) options.progress(done, outcome.total);
  };
  if (options.progress) options.progress(done, outcome.total);

  const int jobs = options.jobs > 0 ? options.jobs : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  std::vector<Worker> running;
  std::size_t next = 0;
  while (next < queue.size() || !running.empty()) {
    while (next < queue.size() && static_cast<int>(running.size()) < jobs) {
      const Layout& l = queue[next++];
      // The planner's own checks need no simulator: reject here without a worker.
      const std::string problem = layout_problem(spec, l);
      if (!problem.empty()) {
        LayoutResult r;
        r.layout = l;
        r.verdict = Verdict::invalid;
        r.reason = problem;
        finished(r);
        continue;
      }
      running.push_back(start_worker(spec, l, evaluate, context));
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
      finished(std::move(r));
    }
  }

  rank_results(results, spec.objective);
  if (!options.csv.empty()) write_ranked_csv(options.csv, results, spec.objective, context);
  if (!options.json.empty()) {
    std::FILE* out = std::fopen(options.json.c_str(), "wb");
    if (!out) throw InputError("", 0, 0, "--json", "cannot write '" + options.json + "'");
    const std::string text = results_json(results, spec.objective, context);
    std::fwrite(text.data(), 1, text.size(), out);
    std::fclose(out);
  }
  outcome.ranked = std::move(results);
  return outcome;
}

}  // namespace tpsim
