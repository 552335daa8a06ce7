// The request stream (sim/serve/requests.cpp): traces read cell by cell against hand-computed times,
// synthetic arrivals and lengths against their distributions' moments (each tolerance a stated
// multiple of the estimator's standard error at the sample size), determinism, and bad inputs.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <unistd.h>

#include "relative.hpp"
#include "tpsim/serving.hpp"

using namespace tpsim;

namespace {

const std::string kServeData = std::string(TPSIM_TEST_DATA) + "/serve";

ServingSpec trace_spec(const std::string& file) {
  ServingSpec spec;
  spec.arrivals = "trace";
  spec.trace = file;
  spec.base_dir = kServeData;
  return spec;
}

ServingSpec synthetic_spec(const std::string& arrivals, double rate, int64_t requests) {
  ServingSpec spec;
  spec.arrivals = arrivals;
  spec.rate = rate;
  spec.requests = requests;
  spec.base_dir = kServeData;
  return spec;
}

// The InputError make_requests throws for `spec` (fails the test when it throws none).
InputError error_of(const ServingSpec& spec) {
  try {
    make_requests(spec);
  } catch (const InputError& e) {
    return e;
  }
  FAIL("no InputError for arrivals " << spec.arrivals << " trace '" << spec.trace << "'");
  return InputError("", 0, 0, "", "");
}

// A trace file written for one test, removed when it goes out of scope.
struct TempTrace {
  std::filesystem::path path;
  explicit TempTrace(const std::string& text, const std::string& name = "trace.csv") {
    path = std::filesystem::temp_directory_path() / ("tpsim_serve_requests_" + std::to_string(::getpid()) + "_" + name);
    std::ofstream(path, std::ios::binary) << text;
  }
  ~TempTrace() { std::filesystem::remove(path); }
};

struct Moments {
  double mean = 0, cv = 0;
};
Moments moments(const std::vector<double>& x) {
  double sum = 0, squares = 0;
  for (double v : x) sum += v;
  const double mean = sum / double(x.size());
  for (double v : x) squares += (v - mean) * (v - mean);
  return {mean, std::sqrt(squares / double(x.size() - 1)) / mean};
}

std::vector<double> gaps_of(const std::vector<Request>& r) {
  std::vector<double> gaps;
  double last = 0;
  for (const Request& q : r) gaps.push_back(q.arrival - std::exchange(last, q.arrival));
  return gaps;
}

}  // namespace

TEST_CASE("a trace is sorted by arrival, ties in file order, times relative to the first") {
  // tiny_trace.csv: arrivals 2.5, 1.0, 4.0, 2.5 with an extra 'note' column, one cell "hello, world".
  const std::vector<Request> r = make_requests(trace_spec("tiny_trace.csv"));
  REQUIRE(r.size() == 4);
  const Request want[] = {{0, 0.0, 50, 10}, {1, 1.5, 100, 20}, {2, 1.5, 7, 1}, {3, 3.0, 200, 30}};
  for (size_t i = 0; i < 4; ++i) {
    CAPTURE(i);
    CHECK(r[i].id == want[i].id);
    CHECK(r[i].arrival == want[i].arrival);   // differences of short decimals: exact
    CHECK(r[i].prompt == want[i].prompt);
    CHECK(r[i].output == want[i].output);
  }
  ServingSpec first_two = trace_spec("tiny_trace.csv");
  first_two.requests = 2;   // the first two after sorting, not the file's first two
  const std::vector<Request> cut = make_requests(first_two);
  REQUIRE(cut.size() == 2);
  CHECK(cut[1].prompt == 100);
}

TEST_CASE("a BurstGPT-style trace is read through its column names") {
  ServingSpec spec = trace_spec("burstgpt_style.csv");
  spec.arrived_at_column = "Timestamp";
  spec.prompt_column = "Request tokens";
  spec.output_column = "Response tokens";
  const std::vector<Request> r = make_requests(spec);
  REQUIRE(r.size() == 3);
  CHECK(r[0].arrival == 0);
  CHECK(r[1].arrival == 40);    // 45 - 5
  CHECK(r[2].arrival == 113);   // 118 - 5
  CHECK(r[1].prompt == 1087);
  CHECK(r[2].output == 276);
}

TEST_CASE("Azure-style date-times become seconds (UTC, across midnight, a leap day and an offset)") {
  ServingSpec azure = trace_spec("azure_style.csv");   // CRLF line endings, 7 fractional digits
  azure.arrived_at_column = "TIMESTAMP";
  azure.prompt_column = "ContextTokens";
  azure.output_column = "GeneratedTokens";
  const std::vector<Request> r = make_requests(azure);
  REQUIRE(r.size() == 3);
  CHECK(r[1].arrival == rel(1.5, 1e-12));   // 18:15:48.18059 - 18:15:46.68059
  CHECK(r[2].arrival == rel(4.0, 1e-12));
  CHECK(r[1].prompt == 396);

  // calendar.csv; the expected values from Python's datetime (differences from 2023-12-31 23:59:59.25).
  ServingSpec cal = trace_spec("calendar.csv");
  cal.arrived_at_column = "at";
  cal.prompt_column = "p";
  cal.output_column = "o";
  const std::vector<Request> c = make_requests(cal);
  REQUIRE(c.size() == 5);
  CHECK(c[1].arrival == rel(1.5, 1e-12));          // 2024-01-01 00:00:00.75, over the year boundary
  CHECK(c[2].arrival == rel(5054400.75, 1e-15));   // 2024-02-28 12:00
  CHECK(c[3].arrival == rel(5227200.75, 1e-15));   // 2024-03-01 13:00+01:00, two days later (29 Feb 2024)
  CHECK(c[4].arrival == c[3].arrival);             // 2024-03-01 12:00Z: the same instant, after it in the file
  CHECK(c[3].prompt == 3);
  CHECK(c[4].prompt == 2);
}

TEST_CASE("Poisson arrivals: count, mean gap and gap CV of an exponential") {
  // rate 5/s for 20000 s: N ~ Poisson(1e5), sd sqrt(1e5) = 316; allow 5 sd.
  ServingSpec spec = synthetic_spec("poisson", 5, 0);
  spec.duration = 20000;
  const std::vector<Request> r = make_requests(spec);
  const double expected = spec.rate * spec.duration;
  CHECK(std::abs(double(r.size()) - expected) <= 5 * std::sqrt(expected));
  CHECK(r.front().arrival > 0);   // the first request arrives after the first gap
  CHECK(r.back().arrival <= spec.duration);
  for (size_t i = 0; i < r.size(); ++i) {
    if (r[i].id != int64_t(i) || (i > 0 && r[i].arrival < r[i - 1].arrival)) FAIL("request " << i << " out of order");
  }
  // Exponential gaps, n = 1e5: the mean's relative sd is 1/sqrt(n) = 0.32% (5 sd = 1.6%); the sample
  // sd's is sqrt(2/n) = 0.45% (kurtosis 9), so the CV's is under 0.6% (5 sd = 3%).
  const Moments m = moments(gaps_of(r));
  CHECK(m.mean == rel(1 / spec.rate, 0.016));
  CHECK(m.cv == rel(1.0, 0.03));
}

TEST_CASE("gamma arrivals have the gap CV asked for, both sides of shape 1") {
  // cv 2: shape k = 1/4 (the u^(1/k) boost). n = 2e5 gaps; the sample sd's relative sd is
  // sqrt((kurtosis - 1)/n)/2 = sqrt(26/n)/2 = 0.57%, the mean's cv/sqrt(n) = 0.45%: the CV's is
  // under 0.73%, 5 sd = 3.7%.
  ServingSpec bursty = synthetic_spec("gamma", 5, 200000);
  bursty.cv = 2;
  const Moments b = moments(gaps_of(make_requests(bursty)));
  CHECK(b.cv == rel(2.0, 0.037));
  CHECK(b.mean == rel(0.2, 0.023));   // 5 x 0.45%
  // cv 0.5: k = 4. n = 1e5; sample sd's relative sd sqrt(3.5/n)/2 = 0.3%, mean's 0.16%: 5 sd of the CV ~1.7%.
  ServingSpec smooth = synthetic_spec("gamma", 5, 100000);
  smooth.cv = 0.5;
  const Moments s = moments(gaps_of(make_requests(smooth)));
  CHECK(s.cv == rel(0.5, 0.017));
  CHECK(s.mean == rel(0.2, 0.008));   // 5 x 0.16%
}

TEST_CASE("length distributions: lognormal mean and median, uniform range and mean, fixed, empirical") {
  ServingSpec spec = synthetic_spec("poisson", 1, 100000);
  spec.prompt = LengthDistribution{"lognormal", 512, 1.0, 1, 0, ""};   // no upper clip
  spec.output = LengthDistribution{"uniform", 0, 0, 10, 20, ""};
  const std::vector<Request> r = make_requests(spec);
  REQUIRE(r.size() == 100000);
  std::vector<double> prompts, outputs;
  for (const Request& q : r) prompts.push_back(double(q.prompt)), outputs.push_back(double(q.output));
  // Lognormal sigma 1: CV sqrt(e - 1) = 1.31, so the sample mean's relative sd is 1.31/sqrt(1e5) =
  // 0.41% (5 sd = 2.1%). The median is exp(mu) = 512 exp(-1/2) = 310.5; its relative sd is
  // sigma sqrt(2 pi) / (2 sqrt(n)) = 0.40% (5 sd = 2%): it pins mu = ln(mean) - sigma^2/2.
  CHECK(moments(prompts).mean == rel(512, 0.021));
  std::nth_element(prompts.begin(), prompts.begin() + 50000, prompts.end());
  CHECK(prompts[50000] == rel(512 * std::exp(-0.5), 0.02));
  // Uniform {10..20}: sd sqrt((11^2 - 1)/12) = 3.16, the mean's 0.01 = 0.07% of 15; allow 0.5%.
  CHECK(*std::min_element(outputs.begin(), outputs.end()) == 10);
  CHECK(*std::max_element(outputs.begin(), outputs.end()) == 20);
  CHECK(moments(outputs).mean == rel(15, 0.005));

  spec.requests = 2000;
  spec.prompt = LengthDistribution{"fixed", 100.4, 0, 1, 0, ""};
  spec.output = LengthDistribution{"empirical", 0, 0, 1, 1000, "lengths.csv"};   // 5, 17, 230, 4096
  std::set<int64_t> fixed, empirical;
  for (const Request& q : make_requests(spec)) fixed.insert(q.prompt), empirical.insert(q.output);
  CHECK(fixed == std::set<int64_t>{100});
  CHECK(empirical == std::set<int64_t>{5, 17, 230, 1000});   // 4096 clipped to max; each seen in 2000 draws
}

TEST_CASE("the same seed gives the same stream; lengths never move arrivals") {
  ServingSpec spec = synthetic_spec("gamma", 3, 0);
  spec.cv = 1.7;
  spec.duration = 200;
  const std::vector<Request> a = make_requests(spec), b = make_requests(spec);
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].arrival != b[i].arrival || a[i].prompt != b[i].prompt || a[i].output != b[i].output)
      FAIL("request " << i << " differs between two runs of one spec");
  }
  ServingSpec other_seed = spec;
  other_seed.seed = 2;
  const std::vector<Request> c = make_requests(other_seed);
  CHECK((c.size() != a.size() || c[0].arrival != a[0].arrival));

  ServingSpec other_prompts = spec;
  other_prompts.prompt = LengthDistribution{"uniform", 0, 0, 1, 8, ""};
  const std::vector<Request> d = make_requests(other_prompts);
  REQUIRE(d.size() == a.size());
  int prompts_differ = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (d[i].arrival != a[i].arrival || d[i].output != a[i].output) FAIL("request " << i << " moved");
    prompts_differ += d[i].prompt != a[i].prompt;
  }
  CHECK(prompts_differ > 0);
}

TEST_CASE("bad traces: InputError at the line and column of the cell") {
  const InputError missing = error_of(trace_spec("bad_missing_column.csv"));
  CHECK(missing.key == "serving.trace");
  CHECK(missing.line == 1);
  CHECK(missing.problem.find("'output_tokens'") != std::string::npos);
  CHECK(missing.problem.find("'arrived_at', 'prompt_tokens', 'output'") != std::string::npos);

  const InputError cell = error_of(trace_spec("bad_cell.csv"));   // line 3 "1.5,  abc,10"
  CHECK(cell.key == "serving.trace");
  CHECK(cell.file == kServeData + "/bad_cell.csv");
  CHECK(cell.line == 3);
  CHECK(cell.column == 5);
  CHECK(cell.problem == "expected a whole number of tokens from 1 to 16777216 in column 'prompt_tokens', got 'abc'");

  const InputError zero = error_of(trace_spec("bad_zero_output.csv"));   // line 3 "1,12,0"
  CHECK(zero.line == 3);
  CHECK(zero.column == 6);
  CHECK(zero.problem.find("is 0: a request generates at least one token") != std::string::npos);

  CHECK(error_of(trace_spec("bad_header_only.csv")).problem.find("no requests") != std::string::npos);
  const InputError absent = error_of(trace_spec("no_such_trace.csv"));
  CHECK(absent.key == "serving.trace");
  CHECK(absent.problem.find(kServeData + "/no_such_trace.csv") != std::string::npos);
  CHECK(error_of(trace_spec(".")).problem.find("is a folder") != std::string::npos);
  CHECK(error_of(trace_spec("")).key == "serving.trace");
}

TEST_CASE("hostile trace cells are refused, never crash") {
  const std::string header = "arrived_at,prompt_tokens,output_tokens\n";
  struct Case {
    std::string rows;
    int line, column;
  };
  const Case cases[] = {
      {"nan,1,1\n", 2, 1},
      {"inf,1,1\n", 2, 1},
      {"-1,1,1\n", 2, 1},
      {"0,1e30,1\n", 2, 3},
      {"0,16777217,1\n", 2, 3},
      {"0,1.5,1\n", 2, 3},
      {"0,1,-2\n", 2, 5},
      {",,\n", 2, 1},
      {"0,1\n", 2, 4},                                   // too few cells
      {"0,\"unterminated,1,1\n", 2, 3},                  // the quote swallows the rest of the row
      {"2023-02-29 00:00:00,1,1\n", 2, 1},               // no 29 February in 2023
      {"2023-11-16 18:15:46,1,1\n5,1,1\n", 3, 1},        // seconds after a date-time
      {"2023-11-16 25:00:00,1,1\n", 2, 1},
      {"0,1,1\n2e9,1,1\n", 3, 1},                        // spans more than 1e9 s
      {"\xff\xfe\x01,1,1\n", 2, 1},
  };
  for (const Case& c : cases) {
    CAPTURE(c.rows);
    const TempTrace file(header + c.rows);
    const InputError e = error_of(trace_spec(file.path.string()));   // absolute: base_dir not used
    CHECK(e.key == "serving.trace");
    CHECK(e.file == file.path.string());
    CHECK(e.line == c.line);
    CHECK(e.column == c.column);
  }
  const TempTrace empty("");
  CHECK(error_of(trace_spec(empty.path.string())).problem.find("empty") != std::string::npos);
  const TempTrace binary(std::string("\0\0\0,\n\0", 7));
  CHECK(error_of(trace_spec(binary.path.string())).line == 1);
}

TEST_CASE("a trace of more than 2^22 rows is refused at its first row past the cap") {
  std::string text = "arrived_at,prompt_tokens,output_tokens\n";
  const int64_t rows = (int64_t(1) << 22) + 1;
  text.reserve(text.size() + size_t(rows) * 6);
  for (int64_t i = 0; i < rows; ++i) text += "0,1,1\n";
  const TempTrace file(text, "big.csv");
  const InputError e = error_of(trace_spec(file.path.string()));
  CHECK(e.line == rows + 1);
  CHECK(e.problem == "the trace has more than 4194304 rows, the most a run may take");
}

TEST_CASE("bad synthetic specs name their key") {
  ServingSpec flood = synthetic_spec("poisson", 1e6, 0);
  flood.duration = 100;
  const InputError e = error_of(flood);
  CHECK(e.key == "serving.rate");
  CHECK(e.problem.find("would make 100000000 requests, more than the 4194304 a run may take") != std::string::npos);
  CHECK(error_of(synthetic_spec("poisson", 1, (int64_t(1) << 22) + 1)).key == "serving.requests");
  CHECK(error_of(synthetic_spec("weibull", 1, 10)).key == "serving.arrivals");
  CHECK(error_of(synthetic_spec("poisson", std::nan(""), 10)).key == "serving.rate");
  ServingSpec flat = synthetic_spec("gamma", 1, 10);
  flat.cv = 0;
  CHECK(error_of(flat).key == "serving.cv");

  ServingSpec lengths = synthetic_spec("poisson", 1, 10);
  lengths.prompt = LengthDistribution{"empirical", 0, 0, 1, 0, "missing_lengths.csv"};
  CHECK(error_of(lengths).key == "serving.prompt.file");
  lengths.prompt.file = "bad_lengths.csv";   // line 3: -3
  const InputError bad = error_of(lengths);
  CHECK(bad.key == "serving.prompt.file");
  CHECK(bad.line == 3);
  CHECK(bad.column == 1);
  lengths.prompt = LengthDistribution{"uniform", 0, 0, 1, 0, ""};   // no max
  CHECK(error_of(lengths).key == "serving.prompt.max");
  lengths.prompt = LengthDistribution{"lognormal", 0, 1, 1, 0, ""};   // mean 0
  CHECK(error_of(lengths).key == "serving.prompt.mean");
  lengths.prompt = LengthDistribution{};
  lengths.prompt.mean = 10;
  lengths.output.kind = "zipf";
  CHECK(error_of(lengths).key == "serving.output.distribution");
}
