// The request stream of a serving run: a CSV trace read row by row (every bad cell reported at its
// line and column), or synthetic arrivals drawn from tpsim's own PRNG and transforms, so a seed
// gives the same stream bit for bit with any standard library (std:: distributions do not).
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <compare>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numbers>
#include <optional>
#include <string_view>
#include <utility>

#include "tpsim/serving.hpp"

namespace tpsim {

namespace {

constexpr int64_t kMaxRequests = int64_t(1) << 22;   // requests (trace rows) a run may take
constexpr int64_t kMaxTokens = int64_t(1) << 24;     // tokens of one prompt or output (spec limits::kSequence)
constexpr double kMaxSpan = 1e9;                     // s between a trace's first and last arrival (~31 years)

// ---------------------------------------------------------------------------------------------
// PRNG: xoshiro256** (Blackman & Vigna), its state filled by splitmix64 as they recommend. One
// stream per purpose, so the lengths drawn never move the arrival times.
uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
  z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
  return z ^ (z >> 31);
}

class Rng {
 public:
  Rng(int64_t seed, uint64_t stream) {
    uint64_t x = uint64_t(seed) ^ (stream * 0xd1b54a32d192ed03);
    for (uint64_t& w : s_) w = splitmix64(x);
  }
  uint64_t next() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0], s_[3] ^= s_[1], s_[1] ^= s_[2], s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  // u ~ U(0, 1]: the top 53 bits, shifted off zero so log(u) is finite.
  double uniform() { return double((next() >> 11) + 1) * 0x1.0p-53; }
  // An integer in [0, n), n >= 1: x mod n, x drawn again while among the 2^64 mod n lowest values
  // (those would make small results likelier).
  uint64_t below(uint64_t n) {
    for (;;)
      if (const uint64_t x = next(); x >= (0 - n) % n) return x % n;
  }
  // z ~ N(0, 1): Box-Muller, z = sqrt(-2 ln u1) cos(2 pi u2) (the sine half is dropped).
  double normal() {
    const double r = std::sqrt(-2 * std::log(uniform()));
    return r * std::cos(2 * std::numbers::pi * uniform());
  }
  // x ~ Gamma(k, 1): Marsaglia-Tsang, d = k - 1/3, c = 1/sqrt(9d), x = d (1 + c z)^3 accepted when
  // ln u < z^2/2 + d - d v + d ln v; for k < 1, Gamma(k) = Gamma(k + 1) u^(1/k).
  double gamma(double k) {
    if (k < 1) return gamma(k + 1) * std::pow(uniform(), 1 / k);
    const double d = k - 1.0 / 3, c = 1 / std::sqrt(9 * d);
    for (;;) {
      const double z = normal(), v = (1 + c * z) * (1 + c * z) * (1 + c * z);
      if (v <= 0) continue;
      if (std::log(uniform()) < z * z / 2 + d - d * v + d * std::log(v)) return d * v;
    }
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

// ---------------------------------------------------------------------------------------------
// CSV: a line's cells with the 1-based column each starts at. "a,b" is one cell, "" inside quotes
// one quote; a quoted cell cannot span lines.
struct Cell {
  std::string text;
  int column = 1;
};

std::string trimmed(std::string_view t) {
  const size_t first = t.find_first_not_of(" \t");
  if (first == std::string_view::npos) return "";
  return std::string(t.substr(first, t.find_last_not_of(" \t") - first + 1));
}

std::vector<Cell> cells_of(const std::string& line) {
  std::vector<Cell> cells(1);
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (c == '"' && quoted && i + 1 < line.size() && line[i + 1] == '"') cells.back().text += line[++i];
    else if (c == '"') quoted = !quoted;
    else if (c == ',' && !quoted) cells.push_back(Cell{"", int(std::min<size_t>(i + 2, INT32_MAX))});
    else cells.back().text += c;
  }
  for (Cell& cell : cells) cell.text = trimmed(cell.text);
  return cells;
}

// A cell as an error message shows it: quoted, cut short, control characters made visible.
std::string shown(std::string_view t) {
  if (t.empty()) return "an empty cell";
  std::string out(t.substr(0, 40));
  for (char& c : out)
    if (static_cast<unsigned char>(c) < 0x20) c = '?';
  return "'" + out + (t.size() > 40 ? "...'" : "'");
}

// Where a trace or length file is: relative to the scenario's folder, absolute as given.
std::string resolve(const ServingSpec& spec, const std::string& file) {
  const std::filesystem::path p(file);
  return p.is_relative() && !spec.base_dir.empty() ? (std::filesystem::path(spec.base_dir) / p).string() : file;
}

// Calls row(text, line number) for each line of the file that is not blank, without its line ending
// (and a UTF-8 byte-order mark); returns how many. At most kMaxRequests + 1 (a header): a huge file
// fails at its cap rather than filling memory.
template <class Row>
int64_t for_each_line(const std::string& path, const std::string& key, const char* what, Row&& row) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (!std::filesystem::exists(status)) throw InputError(path, 0, 0, key, fmt::format("no such {} '{}'", what, path));
  if (std::filesystem::is_directory(status))
    throw InputError(path, 0, 0, key, fmt::format("'{}' is a folder, not a {}", path, what));
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(path, 0, 0, key, fmt::format("cannot read the {} '{}'", what, path));
  int64_t rows = 0;
  std::string text;
  for (int number = 1; std::getline(in, text); ++number) {
    if (!text.empty() && text.back() == '\r') text.pop_back();
    if (number == 1 && text.rfind("\xEF\xBB\xBF", 0) == 0) text.erase(0, 3);
    if (trimmed(text).empty()) continue;
    if (rows++ > kMaxRequests)
      throw InputError(path, number, 1, key,
                       fmt::format("the {} has more than {} rows, the most a run may take", what, kMaxRequests));
    row(text, number);
  }
  if (in.bad()) throw InputError(path, 0, 0, key, fmt::format("cannot read the {} '{}'", what, path));
  return rows;
}

// The whole cell as a number ("12", "0.5", "1e3"; no spaces or '+'), or nullopt.
std::optional<double> number_of(const std::string& t) {
  double v = 0;
  const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (ec != std::errc() || end != t.data() + t.size()) return std::nullopt;
  return v;
}

// A number of tokens: a whole number in [1, 2^24] ("12", or "12.0" as spreadsheets write it).
std::optional<int64_t> tokens_of(const std::string& t) {
  const std::optional<double> v = number_of(t);
  if (!v || !(*v >= 1 && *v <= double(kMaxTokens)) || *v != std::floor(*v)) return std::nullopt;
  return int64_t(*v);
}

// ---------------------------------------------------------------------------------------------
// Arrival times: seconds as a number, or a UTC date-time. Kept as whole seconds plus a fraction, so
// a 2023 timestamp (1.7e9 s) keeps its sub-microsecond digits until times are made relative.
struct Instant {
  int64_t whole = 0;
  double fraction = 0;   // [0, 1)
  auto operator<=>(const Instant&) const = default;
  double minus(const Instant& o) const { return double(whole - o.whole) + (fraction - o.fraction); }
};

// Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (Howard Hinnant's days_from_civil).
int64_t days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;                                   // [0, 399]
  const int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;  // [0, 365], from March 1
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;           // [0, 146096]
  return era * 146097 + doe - 719468;
}

// "2023-11-16 18:15:46.6805900" (Azure LLM inference traces), "2023-11-16T18:15:46.68Z",
// "2023-11-16T19:15:46+01:00": seconds since the Unix epoch, UTC.
std::optional<Instant> datetime_of(std::string_view s) {
  size_t at = 0;
  const auto digits = [&](size_t n, int lo, int hi) -> std::optional<int> {
    int v = 0;
    for (size_t i = 0; i < n; ++i, ++at) {
      if (at >= s.size() || s[at] < '0' || s[at] > '9') return std::nullopt;
      v = v * 10 + (s[at] - '0');
    }
    if (v < lo || v > hi) return std::nullopt;
    return v;
  };
  const auto skip = [&](std::string_view any) {   // one of `any` next: step over it
    if (at >= s.size() || any.find(s[at]) == std::string_view::npos) return false;
    return ++at, true;
  };
  const auto y = digits(4, 1, 9999);
  if (!y || !skip("-")) return std::nullopt;
  const auto mo = digits(2, 1, 12);
  if (!mo || !skip("-")) return std::nullopt;
  const bool leap = *y % 4 == 0 && (*y % 100 != 0 || *y % 400 == 0);
  const int month_days[] = {31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const auto d = digits(2, 1, month_days[*mo - 1]);
  if (!d || !skip(" T")) return std::nullopt;
  const auto h = digits(2, 0, 23);
  if (!h || !skip(":")) return std::nullopt;
  const auto mi = digits(2, 0, 59);
  if (!mi || !skip(":")) return std::nullopt;
  const auto sec = digits(2, 0, 60);   // 60: a leap second
  if (!sec) return std::nullopt;
  Instant t{days_from_civil(*y, *mo, *d) * 86400 + *h * 3600 + *mi * 60 + *sec, 0};
  if (skip(".")) {
    double scale = 0.1;
    const size_t first = at;
    for (; at < s.size() && s[at] >= '0' && s[at] <= '9'; ++at, scale /= 10) t.fraction += (s[at] - '0') * scale;
    if (at == first) return std::nullopt;
    t.fraction = std::min(t.fraction, std::nextafter(1.0, 0.0));
  }
  if (at < s.size() && (s[at] == '+' || s[at] == '-')) {   // an offset from UTC: local = UTC + offset
    const int sign = s[at++] == '+' ? 1 : -1;
    const auto oh = digits(2, 0, 23);
    skip(":");
    const auto om = digits(2, 0, 59);
    if (!oh || !om) return std::nullopt;
    t.whole -= sign * (*oh * 3600 + *om * 60);
  } else {
    skip("Z");
  }
  if (at != s.size()) return std::nullopt;
  return t;
}

std::optional<Instant> seconds_of(const std::string& t) {
  const std::optional<double> v = number_of(t);
  if (!v || !(*v >= 0 && *v <= 1e15)) return std::nullopt;
  const double whole = std::floor(*v);
  return Instant{int64_t(whole), *v - whole};
}

// ---------------------------------------------------------------------------------------------
std::vector<Request> read_trace(const ServingSpec& spec) {
  const std::string key = "serving.trace";
  if (spec.trace.empty())
    throw InputError("", 0, 0, key, "arrivals: trace needs serving.trace, a CSV of arrived_at, prompt_tokens, output_tokens");
  const std::string path = resolve(spec, spec.trace);
  struct Row {
    Instant at;
    int64_t prompt = 0, output = 0;
    int line = 0, column = 0;   // of the arrival cell
  };
  std::vector<Row> rows;
  const std::string* names[] = {&spec.arrived_at_column, &spec.prompt_column, &spec.output_column};
  size_t index[3] = {};   // of each named column in a row's cells
  bool dated = false;     // the first row's format: every row must use it
  bool header = true;     // the first line that is not blank
  const int64_t lines = for_each_line(path, key, "trace", [&](const std::string& text, int number) {
    const std::vector<Cell> cells = cells_of(text);
    if (std::exchange(header, false)) {   // the columns we read, by name; the rest are ignored
      for (int c = 0; c < 3; ++c) {
        const auto found = std::find_if(cells.begin(), cells.end(), [&](const Cell& h) { return h.text == *names[c]; });
        if (found == cells.end()) {
          std::string listed;
          for (const Cell& h : cells) listed += (listed.empty() ? "'" : ", '") + h.text + "'";
          throw InputError(path, number, 1, key,
                           fmt::format("no column '{}' in the header; its columns are {}", *names[c], listed));
        }
        index[c] = size_t(found - cells.begin());
      }
      return;
    }
    const auto cell = [&](int c) -> const Cell& {
      if (index[c] >= cells.size())
        throw InputError(path, number, int(std::min<size_t>(text.size() + 1, INT32_MAX)), key,
                         fmt::format("the row has {} cells, so no column '{}' (cell {} of the header)", cells.size(),
                                     *names[c], index[c] + 1));
      return cells[index[c]];
    };
    Row row{{}, 0, 0, number, cell(0).column};
    const std::string& at = cell(0).text;
    if (rows.empty()) dated = datetime_of(at).has_value();
    const std::optional<Instant> t = dated ? datetime_of(at) : seconds_of(at);
    if (!t)
      throw InputError(path, number, row.column, key,
                       dated ? fmt::format("expected a date-time like the first row's ('2023-11-16 18:15:46.68') in "
                                           "column '{}', got {}", *names[0], shown(at))
                             : fmt::format("expected seconds from 0 to 1e15, or a date-time like '2023-11-16 "
                                           "18:15:46.68', in column '{}', got {}", *names[0], shown(at)));
    row.at = *t;
    int64_t* tokens[] = {&row.prompt, &row.output};
    for (int c = 1; c < 3; ++c) {
      const Cell& k = cell(c);
      const std::optional<int64_t> n = tokens_of(k.text);
      if (!n && c == 2 && number_of(k.text) == 0.0)
        throw InputError(path, number, k.column, key,
                         fmt::format("column '{}' is 0: a request generates at least one token (its first, made by "
                                     "the prefill)", *names[c]));
      if (!n)
        throw InputError(path, number, k.column, key,
                         fmt::format("expected a whole number of tokens from 1 to {} in column '{}', got {}",
                                     kMaxTokens, *names[c], shown(k.text)));
      *tokens[c - 1] = *n;
    }
    rows.push_back(row);
  });
  if (lines == 0) throw InputError(path, 0, 0, key, "the trace is empty: expected a header row and a row per request");
  if (rows.empty()) throw InputError(path, 1, 1, key, "the trace has a header but no requests");

  // Arrival order, ties in file order; the first arrival is time 0.
  std::stable_sort(rows.begin(), rows.end(), [](const Row& x, const Row& y) { return x.at < y.at; });
  if (spec.requests > 0 && int64_t(rows.size()) > spec.requests) rows.resize(size_t(spec.requests));
  if (const double span = rows.back().at.minus(rows.front().at); span > kMaxSpan)
    throw InputError(path, rows.back().line, rows.back().column, key,
                     fmt::format("the trace spans {:.3g} s from its first arrival (line {}), more than the {} s a "
                                 "run may take", span, rows.front().line, kMaxSpan));
  std::vector<Request> out;
  out.reserve(rows.size());
  for (const Row& r : rows)
    out.push_back(Request{int64_t(out.size()), r.at.minus(rows.front().at), r.prompt, r.output});
  return out;
}

// ---------------------------------------------------------------------------------------------
// Synthetic lengths: the empirical kind's list of token counts (one column, an optional header).
std::vector<int64_t> read_lengths(const ServingSpec& spec, const LengthDistribution& d, const std::string& key) {
  const std::string path = resolve(spec, d.file);
  std::vector<int64_t> lengths;
  bool first = true;
  for_each_line(path, key, "length file", [&](const std::string& text, int number) {
    const std::vector<Cell> cells = cells_of(text);
    if (cells.size() > 1)
      throw InputError(path, number, cells[1].column, key, "expected one column of token counts, got a second");
    const std::string& t = cells[0].text;
    if (std::exchange(first, false) && !number_of(t)) return;   // a header
    const std::optional<int64_t> n = tokens_of(t);
    if (!n)
      throw InputError(path, number, cells[0].column, key,
                       fmt::format("expected a whole number of tokens from 1 to {}, got {}", kMaxTokens, shown(t)));
    lengths.push_back(*n);
  });
  if (lengths.empty()) throw InputError(path, 0, 0, key, "the length file lists no token counts");
  return lengths;
}

// One length distribution, checked once, then drawn from request by request.
class Lengths {
 public:
  Lengths(const ServingSpec& spec, const LengthDistribution& d, const std::string& key) : d_(d) {
    const auto bad = [&](const std::string& field, const std::string& problem) {
      throw InputError("", 0, 0, key + "." + field, problem);
    };
    const std::string tokens = fmt::format("tokens from 1 to {}", kMaxTokens);
    if (!(d.min >= 1 && d.min <= kMaxTokens)) bad("min", fmt::format("expected {}, got {}", tokens, d.min));
    if (!(d.max == 0 || (d.max >= d.min && d.max <= kMaxTokens)))
      bad("max", fmt::format("expected 0 (no upper clip) or {}, at least min ({}), got {}", tokens, d.min, d.max));
    if (d.kind == "fixed" || d.kind == "lognormal") {
      if (!(d.mean >= 1 && d.mean <= double(kMaxTokens))) bad("mean", fmt::format("expected {}, got {}", tokens, d.mean));
    } else if (d.kind == "uniform") {
      if (d.max == 0) bad("max", "distribution uniform needs max, the largest length it draws");
    } else if (d.kind == "empirical") {
      if (d.file.empty()) bad("file", "distribution empirical needs a file: a CSV with one column of token counts");
      table_ = read_lengths(spec, d, key + ".file");
    } else {
      bad("distribution", fmt::format("expected fixed | uniform | lognormal | empirical, got '{}'", d.kind));
    }
    if (d.kind == "lognormal" && !(d.sigma >= 0 && d.sigma <= 10))
      bad("sigma", fmt::format("expected a sigma of the underlying normal from 0 to 10, got {}", d.sigma));
  }

  int64_t draw(Rng& rng) const {
    if (d_.kind == "fixed") return std::llround(d_.mean);   // mean >= 1
    // n ~ U{min, ..., max}
    if (d_.kind == "uniform") return d_.min + int64_t(rng.below(uint64_t(d_.max - d_.min) + 1));
    if (d_.kind == "empirical") return clip(double(table_[rng.below(table_.size())]));
    // n = exp(mu + sigma z), mu = ln(mean) - sigma^2/2 so that E[n] = exp(mu + sigma^2/2) = mean
    const double mu = std::log(d_.mean) - d_.sigma * d_.sigma / 2;
    return clip(std::round(std::exp(mu + d_.sigma * rng.normal())));
  }

 private:
  // Clipped to [min, max] (max 0: to the token limit) in double, before any conversion.
  int64_t clip(double n) const {
    return int64_t(std::clamp(n, double(d_.min), double(d_.max > 0 ? d_.max : kMaxTokens)));
  }
  LengthDistribution d_;
  std::vector<int64_t> table_;
};

std::vector<Request> synthesize(const ServingSpec& spec) {
  const auto bad = [](const std::string& key, const std::string& problem) { throw InputError("", 0, 0, key, problem); };
  if (!(spec.rate > 0 && std::isfinite(spec.rate)))
    bad("serving.rate", fmt::format("expected a positive rate in requests/s, got {}", spec.rate));
  const bool gamma = spec.arrivals == "gamma";
  if (gamma && !(spec.cv >= 1e-3 && spec.cv <= 100))
    bad("serving.cv", fmt::format("expected a coefficient of variation of the gaps from 0.001 to 100, got {}", spec.cv));
  if (spec.requests > kMaxRequests)
    bad("serving.requests", fmt::format("{} requests, more than the {} a run may take", spec.requests, kMaxRequests));
  if (spec.requests <= 0) {
    if (!(spec.duration > 0 && std::isfinite(spec.duration)))
      bad("serving.duration", fmt::format("expected a positive duration in s, got {}", spec.duration));
    if (spec.rate * spec.duration > double(kMaxRequests))
      bad("serving.rate", fmt::format("{} requests/s for {} s would make {:.0f} requests, more than the {} a run may take",
                                      spec.rate, spec.duration, spec.rate * spec.duration, kMaxRequests));
  }
  const Lengths prompts(spec, spec.prompt, "serving.prompt"), outputs(spec, spec.output, "serving.output");

  Rng arrival_rng(spec.seed, 1), prompt_rng(spec.seed, 2), output_rng(spec.seed, 3);
  const double k = 1 / (spec.cv * spec.cv);   // gamma shape: CV^2 = 1/k
  std::vector<Request> out;
  for (double t = 0;;) {
    if (spec.requests > 0 && int64_t(out.size()) == spec.requests) break;
    // gap ~ Exp(rate) = -ln(u) / rate;  gamma: gap ~ Gamma(k, scale 1/(rate k)), mean 1/rate, CV 1/sqrt(k)
    t += gamma ? arrival_rng.gamma(k) / (spec.rate * k) : -std::log(arrival_rng.uniform()) / spec.rate;
    if (spec.requests <= 0 && t > spec.duration) break;
    if (int64_t(out.size()) == kMaxRequests)   // a Poisson count past the cap its mean was under
      bad("serving.rate", fmt::format("{} requests/s for {} s made more than the {} requests a run may take",
                                      spec.rate, spec.duration, kMaxRequests));
    out.push_back(Request{int64_t(out.size()), t, prompts.draw(prompt_rng), outputs.draw(output_rng)});
  }
  if (out.empty())
    bad("serving.duration", fmt::format("no request arrived in {} s at {} requests/s (seed {}); lengthen "
                                        "serving.duration or set serving.requests", spec.duration, spec.rate, spec.seed));
  return out;
}

}  // namespace

std::vector<Request> make_requests(const ServingSpec& spec) {
  if (spec.arrivals == "trace") return read_trace(spec);
  if (spec.arrivals == "poisson" || spec.arrivals == "gamma") return synthesize(spec);
  throw InputError("", 0, 0, "serving.arrivals", fmt::format("expected poisson | gamma | trace, got '{}'", spec.arrivals));
}

}  // namespace tpsim
