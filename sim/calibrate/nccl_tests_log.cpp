// Reading nccl-tests stdout as the *_perf programs print it (src/common.cu): '#' preamble lines
// (version, "Collective test starting: X_perf", "nThread T nGpus G ...", one "Rank" line per GPU),
// the column header, which fixes the layout, one row per size, and the "# Avg bus bandwidth"
// footer. Layouts differ by version: v2.13+ prints size count type redop root, older ones size
// count type redop or size count type, and "error" where newer ones print "#wrong"; the header
// says which, so rows are read by the header's column names, not by position.
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <fmt/core.h>

#include "tpsim/calibrate.hpp"

namespace tpsim {

namespace {

std::vector<std::string> split_words(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

bool parse_number(const std::string& s, double& out) {
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  out = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size() && errno == 0 && std::isfinite(out);
}

// The collective a *_perf program measures; nullopt for a word that names none.
std::optional<CollectiveOp> perf_program_op(std::string word) {
  if (const size_t slash = word.rfind('/'); slash != std::string::npos) word = word.substr(slash + 1);
  if (word == "all_reduce_perf") return CollectiveOp::all_reduce;
  if (word == "all_gather_perf") return CollectiveOp::all_gather;
  if (word == "reduce_scatter_perf") return CollectiveOp::reduce_scatter;
  if (word == "broadcast_perf") return CollectiveOp::broadcast;
  if (word == "reduce_perf") return CollectiveOp::reduce;
  if (word == "alltoall_perf") return CollectiveOp::all_to_all;
  if (word == "sendrecv_perf") return CollectiveOp::send_recv;
  return std::nullopt;
}

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// Where each column sits in a row, from the header line.
struct Layout {
  size_t fields = 0;   // columns the header names (a row may carry more: nccl-tests' timestamp)
  int size = -1, count = -1, type = -1, redop = -1, root = -1, time = -1, algbw = -1, busbw = -1;
};

std::optional<Layout> read_header(const std::vector<std::string>& words) {
  if (words.empty() || words[0] != "size") return std::nullopt;
  Layout l;
  l.fields = words.size();
  for (int i = 0; i < int(words.size()); ++i) {
    const std::string& w = words[i];
    int* slot = w == "size" ? &l.size : w == "count" ? &l.count : w == "type" ? &l.type : w == "redop" ? &l.redop
              : w == "root" ? &l.root : w == "time" ? &l.time : w == "algbw" ? &l.algbw : w == "busbw" ? &l.busbw : nullptr;
    if (slot && *slot < 0) *slot = i;   // the first time/algbw/busbw are out-of-place
  }
  if (l.count < 0 || l.type < 0 || l.time < 0 || l.algbw < 0 || l.busbw < 0) return std::nullopt;
  return l;
}

class Reader {
 public:
  explicit Reader(std::string file) { log_.file = std::move(file); }

  void line(int n, std::string text) {
    if (!text.empty() && text.back() == '\r') text.pop_back();
    const std::vector<std::string> words = split_words(text);
    if (words.empty()) return;
    if (words[0][0] == '#') {
      comment(n, text.substr(text.find('#') + 1));
    } else if (text.find("NCCL INFO") != std::string::npos || text.find("NCCL WARN") != std::string::npos) {
      return;   // NCCL_DEBUG output interleaved with the table
    } else if (const auto op = named_program(words)) {
      name_op(n, *op);   // the command line that ran the test
    } else {
      row(n, words);
    }
  }

  NcclTestsLog finish() {
    if (log_.rows.empty())
      throw InputError(log_.file, 0, 0, "",
                       layout_ ? "no result rows under nccl-tests' column header: expected lines 'size count type ... time algbw busbw ...'"
                               : "no nccl-tests table: expected the column header '#  size  count  type ...  time  algbw  busbw ...' and result rows");
    return std::move(log_);
  }

 private:
  [[noreturn]] void fail(int n, const std::string& problem) const { throw InputError(log_.file, n, 1, "", problem); }

  static std::optional<CollectiveOp> named_program(const std::vector<std::string>& words) {
    for (const std::string& w : words)
      if (ends_with(w, "_perf")) return perf_program_op(w);
    return std::nullopt;
  }

  void name_op(int n, CollectiveOp op) {
    if (log_.named_op && *log_.named_op != op)
      fail(n, fmt::format("this log names {} here and {} on line {}: one log, one collective", to_string(op),
                          to_string(*log_.named_op), log_.named_op_line));
    if (!log_.named_op) log_.named_op_line = n;
    log_.named_op = op;
  }

  void comment(int n, const std::string& body) {
    const std::vector<std::string> w = split_words(body);
    if (w.empty()) return;
    if (body.find("Avg bus bandwidth") != std::string::npos) {
      const size_t colon = body.find(':');
      const std::vector<std::string> value = split_words(colon == std::string::npos ? "" : body.substr(colon + 1));
      double v = 0;
      if (value.empty() || !parse_number(value[0], v)) fail(n, "expected '# Avg bus bandwidth : NUMBER'");
      log_.avg_busbw = v;
    } else if (w[0] == "nThread") {
      double t = 0, g = 0;
      if (w.size() < 4 || w[2] != "nGpus" || !parse_number(w[1], t) || !parse_number(w[3], g))
        fail(n, "expected '# nThread T nGpus G minBytes ...'");
      log_.threads = int(t), log_.gpus_per_thread = int(g);
    } else if (w[0] == "Rank") {
      rank(n, w, body);
    } else if (auto layout = read_header(w)) {
      layout_ = layout;
    } else if (w[0] == "size") {
      fail(n, "expected nccl-tests' column header '#  size  count  type  [redop  [root]]  time  algbw  busbw ...'");
    } else if (w[0] == "tpsim" && w.size() >= 3 && w[1] == "collective:") {
      std::string name = w[2];
      if (!name.empty() && name.back() == ',') name.pop_back();
      name_op(n, parse_collective_op(name));
    } else if (const auto op = named_program(w)) {
      name_op(n, *op);   // "Collective test starting: all_reduce_perf"
    }
  }

  // "#  Rank  3 Group  0 Pid  6902 on HOST device  3 [0000:0c:00] NVIDIA H100 80GB HBM3"; older
  // versions print no Group.
  void rank(int n, const std::vector<std::string>& w, const std::string& body) {
    NcclTestsRank r;
    double v = 0;
    size_t on = 0, device = 0;
    for (size_t i = 0; i < w.size(); ++i) {
      if (w[i] == "on" && !on) on = i;
      if (w[i] == "device" && !device) device = i;
    }
    if (w.size() < 2 || !parse_number(w[1], v) || !on || on + 1 >= w.size())
      fail(n, "expected '#  Rank N Group G Pid P on HOST device D [BUS] GPU'");
    r.rank = int(v);
    r.host = w[on + 1];
    if (device && device + 1 < w.size() && parse_number(w[device + 1], v)) r.device = int(v);
    if (const size_t bracket = body.find(']'); bracket != std::string::npos) {
      const auto rest = split_words(body.substr(bracket + 1));
      for (const auto& x : rest) r.gpu += (r.gpu.empty() ? "" : " ") + x;
    }
    log_.ranks.push_back(r);
  }

  void row(int n, const std::vector<std::string>& w) {
    if (!layout_)
      fail(n, "expected a '#' comment or nccl-tests' column header ('#  size  count  type ...') before result rows");
    const Layout& l = *layout_;
    if (w.size() < l.fields)
      fail(n, fmt::format("expected a result row of {} fields as the header names (size count type ... time algbw "
                          "busbw ...), got {}", l.fields, w.size()));
    auto number = [&](int column, const char* name) {
      double v = 0;
      if (!parse_number(w[column], v) || v < 0)
        fail(n, fmt::format("column '{}' (field {}): expected a number >= 0, got '{}'", name, column + 1, w[column]));
      return v;
    };
    NcclTestsRow r;
    r.line = n;
    r.bytes = number(l.size, "size");
    r.count = number(l.count, "count");
    r.type = w[l.type];
    if (l.redop >= 0) r.redop = w[l.redop];
    if (l.root >= 0) {
      double v = 0;
      if (!parse_number(w[l.root], v)) fail(n, fmt::format("column 'root' (field {}): expected an integer, got '{}'", l.root + 1, w[l.root]));
      r.root = int(v);
    }
    r.time_us = number(l.time, "time");
    r.algbw = number(l.algbw, "algbw");
    r.busbw = number(l.busbw, "busbw");
    log_.rows.push_back(r);
  }

  NcclTestsLog log_;
  std::optional<Layout> layout_;
};

}  // namespace

std::vector<std::string> NcclTestsLog::hosts() const {
  std::vector<std::string> out;
  for (const NcclTestsRank& r : ranks)
    if (std::find(out.begin(), out.end(), r.host) == out.end()) out.push_back(r.host);
  return out;
}

int NcclTestsLog::ranks_per_host() const {
  const std::vector<std::string> h = hosts();
  if (h.empty()) return 0;
  int per = -1;
  for (const std::string& host : h) {
    const int k = int(std::count_if(ranks.begin(), ranks.end(), [&](const NcclTestsRank& r) { return r.host == host; }));
    if (per >= 0 && k != per) return 0;
    per = k;
  }
  return per;
}

NcclTestsLog parse_nccl_tests_log(const std::string& text, const std::string& file) {
  Reader reader(file);
  std::istringstream in(text);
  int n = 0;
  for (std::string line; std::getline(in, line);) reader.line(++n, line);
  return reader.finish();
}

NcclTestsLog read_nccl_tests_log(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path, 0, 0, "", "cannot read this nccl-tests log (no such file, or not readable)");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw InputError(path, 0, 0, "", "cannot read this nccl-tests log (is it a folder?)");
  return parse_nccl_tests_log(text.str(), path);
}

std::optional<CollectiveOp> infer_collective(const NcclTestsLog& log, int ranks) {
  if (log.named_op) return log.named_op;
  if (ranks < 2 || log.rows.empty()) return std::nullopt;
  // The largest row's busbw / algbw is nccl-tests' bus factor (2 decimals each: exact enough there).
  const NcclTestsRow* big = &log.rows.front();
  for (const NcclTestsRow& r : log.rows)
    if (r.bytes > big->bytes) big = &r;
  if (big->algbw <= 0) return std::nullopt;
  const double ratio = big->busbw / big->algbw;
  auto near = [&](CollectiveOp op) { return std::fabs(ratio / busbw_factor(op, ranks) - 1) < 0.02; };
  if (big->redop == "sum" && big->root < 0) {
    if (near(CollectiveOp::all_reduce)) return CollectiveOp::all_reduce;
    if (near(CollectiveOp::reduce_scatter)) return CollectiveOp::reduce_scatter;
  }
  if (big->redop == "sum" && big->root >= 0 && near(CollectiveOp::reduce)) return CollectiveOp::reduce;
  if (big->redop == "none" && big->root >= 0 && near(CollectiveOp::broadcast)) return CollectiveOp::broadcast;
  return std::nullopt;   // all_gather and alltoall print the same columns and the same factor
}

}  // namespace tpsim
