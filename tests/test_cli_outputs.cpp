// The files `tpsim run` writes (--json, --csv, --trace, --html), read back as a script would read
// them: each parses, has the documented keys / columns with the right types, its numbers are
// finite and in range, and the files agree with each other (the step time of the JSON is the last
// span end of spans.csv and of the trace, gpus.csv has the JSON's GPUs with the same numbers, the
// per-GPU split adds up to the step, stall sites name spans that exist, ...). Two runs: the default
// scenario (tensor parallel on one node, numerics at proxy scale) and examples/tp-vs-pp-70b.yaml
// (two pipeline stages across two nodes: sends, receives, bubbles, NIC links, numerics off).
#include <doctest/doctest.h>

#include "cli_runner.hpp"
#include "relative.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

using nlohmann::json;

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  REQUIRE_MESSAGE(in.good(), "cannot read " << path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// An RFC 4180 reader: comma-separated, fields quoted when they hold a comma, quote or newline
// ("" for a quote inside). Returns the records, the header first.
using Row = std::vector<std::string>;
std::vector<Row> parse_csv(const std::string& text) {
  std::vector<Row> rows;
  Row row;
  std::string field;
  bool quoted = false, any = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') field += '"', ++i;
      else if (c == '"') quoted = false;
      else field += c;
    } else if (c == '"') {
      quoted = true;
      any = true;
    } else if (c == ',') {
      row.push_back(field), field.clear(), any = true;
    } else if (c == '\n') {
      row.push_back(field), field.clear();
      rows.push_back(row), row.clear(), any = false;
    } else {
      field += c, any = true;
    }
  }
  REQUIRE_FALSE(quoted);   // no unterminated quote
  if (any) row.push_back(field), rows.push_back(row);
  return rows;
}

// A CSV file as header + rows, each row checked to have the header's column count.
struct Csv {
  Row header;
  std::vector<std::map<std::string, std::string>> rows;
};
Csv read_csv(const std::string& path, const Row& expected_header) {
  const std::vector<Row> records = parse_csv(read_file(path));
  REQUIRE(!records.empty());
  Csv csv;
  csv.header = records[0];
  INFO(path);
  CHECK(csv.header == expected_header);
  for (size_t r = 1; r < records.size(); ++r) {
    INFO("row " << r);
    REQUIRE(records[r].size() == csv.header.size());
    std::map<std::string, std::string> m;
    for (size_t c = 0; c < csv.header.size(); ++c) m[csv.header[c]] = records[r][c];
    csv.rows.push_back(std::move(m));
  }
  return csv;
}

// A number field: the whole field parses, and the value is finite.
double number(const std::string& field) {
  INFO("field '" << field << "'");
  REQUIRE(!field.empty());
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(field, &used);
  } catch (const std::exception&) {
    FAIL("not a number");
  }
  CHECK(used == field.size());
  CHECK(std::isfinite(v));
  return v;
}
int integer(const std::string& field) {
  const double v = number(field);
  CHECK(v == std::floor(v));
  return int(v);
}

// JSON: key present with the type, number finite (and >= 0 where asked).
const json& key(const json& j, const std::string& k) {
  INFO("key " << k);
  REQUIRE(j.is_object());
  REQUIRE(j.contains(k));
  return j.at(k);
}
double num(const json& j, const std::string& k, bool non_negative = true) {
  const json& v = key(j, k);
  INFO("key " << k << " = " << v.dump());
  REQUIRE(v.is_number());
  const double d = v.get<double>();
  CHECK(std::isfinite(d));
  if (non_negative) CHECK(d >= 0);
  return d;
}
int64_t whole(const json& j, const std::string& k) {
  const json& v = key(j, k);
  INFO("key " << k << " = " << v.dump());
  REQUIRE(v.is_number_integer());
  return v.get<int64_t>();
}
std::string text(const json& j, const std::string& k) {
  const json& v = key(j, k);
  INFO("key " << k << " = " << v.dump());
  REQUIRE(v.is_string());
  return v.get<std::string>();
}
bool flag(const json& j, const std::string& k) {
  const json& v = key(j, k);
  INFO("key " << k << " = " << v.dump());
  REQUIRE(v.is_boolean());
  return v.get<bool>();
}

const Row kGpusHeader{"rank", "node", "compute_s", "communication_s", "exposed_communication_s", "pipeline_bubble_s",
                      "idle_s"};
const Row kStallsHeader{"op", "layer", "waited_for", "total_s", "count", "gpus"};
const Row kLinksHeader{"link",        "label",          "bytes",
                       "busy_s",      "bandwidth_Bps",  "utilisation",
                       "busy_fraction", "saturated_fraction", "during_stalls",
                       "saturated"};
const Row kSpansHeader{"rank", "stream", "op", "name", "kind", "start_s", "end_s", "waited_for", "algorithm"};

// Every output of one `tpsim run`, in a fresh temporary folder.
struct Outputs {
  Output run;
  json result, trace;
  std::string html;
  Csv gpus, stalls, links, spans;
  int gpus_per_node = 0;
};

Outputs run_with_outputs(const std::string& args) {
  char dir[] = "/tmp/tpsim-outputs-XXXXXX";
  REQUIRE(mkdtemp(dir) != nullptr);
  const std::string d = dir;
  Outputs o;
  o.run = run_shell(std::string(TPSIM_BINARY) + " run " + args + " --json " + d + "/run.json --csv " + d +
                    "/csv --trace " + d + "/trace.json --html " + d + "/report.html");
  INFO(o.run.out);
  REQUIRE(o.run.status == 0);
  o.result = json::parse(read_file(d + "/run.json"));      // throws (fails the test) if not JSON
  o.trace = json::parse(read_file(d + "/trace.json"));
  o.html = read_file(d + "/report.html");
  o.gpus = read_csv(d + "/csv/gpus.csv", kGpusHeader);
  o.stalls = read_csv(d + "/csv/stall_sites.csv", kStallsHeader);
  o.links = read_csv(d + "/csv/links.csv", kLinksHeader);
  o.spans = read_csv(d + "/csv/spans.csv", kSpansHeader);
  // GPUs per node from the summary's "cluster  NAME (N nodes x G GPU-NAME, ...)" line.
  std::smatch m;
  REQUIRE(std::regex_search(o.run.out, m, std::regex(R"(\((\d+) nodes? x (\d+) )")));
  o.gpus_per_node = std::stoi(m[2].str());
  std::filesystem::remove_all(d);
  return o;
}

// The JSON result: keys, types, ranges, and the identities between its own numbers.
void check_result_json(const json& j, int64_t tokens_per_step) {
  text(j, "scenario"), text(j, "topology"), text(j, "model"), text(j, "scope");
  const json& plan = key(j, "plan");
  text(plan, "name");
  const int64_t tp = whole(plan, "tp"), pp = whole(plan, "pp"), dp = whole(plan, "dp");
  flag(plan, "sp");
  CHECK(tp >= 1);
  CHECK(pp >= 1);
  CHECK(dp >= 1);
  CHECK(text(j, "workload") == "training");
  const double step = num(j, "step_time_s");
  CHECK(step > 0);
  for (const char* k : {"compute_s", "communication_s", "exposed_communication_s", "pipeline_bubble_s"})
    CHECK(num(j, k) <= step * (1 + 1e-12));
  const std::string tpc = text(j, "tp_collectives");
  CHECK((tpc == "exact" || tpc == "folded"));
  num(j, "tp_comm_folded_s");
  const std::string replicas = text(j, "dp_replicas");
  CHECK((replicas == "all" || replicas == "one"));
  CHECK_FALSE(flag(j, "partial"));
  CHECK(whole(j, "micro_batches_simulated") == whole(j, "micro_batches_per_step"));
  CHECK(whole(j, "micro_batches_per_step") >= 1);

  // One entry per GPU, in rank order; each GPU's compute stream is compute, stalls, bubbles and
  // idle time one after another, so the four add up to the step (engine: idle = step - the rest).
  const json& ranks = key(j, "ranks");
  REQUIRE(ranks.is_array());
  CHECK(int64_t(ranks.size()) == tp * pp * dp);
  double max_compute = 0;
  for (size_t i = 0; i < ranks.size(); ++i) {
    const json& r = ranks[i];
    CAPTURE(i);
    CHECK(whole(r, "rank") == int64_t(i));
    const double c = num(r, "compute_s"), e = num(r, "exposed_communication_s"), b = num(r, "pipeline_bubble_s"),
                 idle = num(r, "idle_s");
    num(r, "communication_s");
    CHECK(c + e + b + idle == rel(step, 1e-12));   // four doubles added: a few ulp
    max_compute = std::max(max_compute, c);
  }
  CHECK(num(j, "compute_s") == max_compute);   // the slowest GPU's, as the summary prints it

  // Throughput from its definition: tokens per step / step time; FLOP/s per GPU likewise.
  CHECK(num(j, "tokens_per_s") == rel(double(tokens_per_step) / step, 1e-12));
  CHECK(num(j, "tflops_per_gpu") == rel(num(j, "model_flops") / step / double(ranks.size()) / 1e12, 1e-12));
  const double mfu = num(j, "mfu");
  CHECK(mfu > 0);
  CHECK(mfu <= 1);

  // Memory: the parts add up to the total, which fits or does not.
  const json& mem = key(j, "memory");
  const double parts = num(mem, "weights_bytes") + num(mem, "gradients_bytes") + num(mem, "optimizer_bytes") +
                       num(mem, "activations_bytes") + num(mem, "runtime_reserve_bytes") + num(mem, "kv_cache_bytes");
  CHECK(num(mem, "total_bytes") == rel(parts, 1e-12));
  CHECK(num(mem, "capacity_bytes") > 0);
  CHECK(flag(mem, "fits") == (num(mem, "total_bytes") <= num(mem, "capacity_bytes")));
  CHECK(whole(mem, "in_flight_micro_batches") >= 1);
  num(mem, "parameters");
  text(mem, "verdict");
  const json& stages = key(j, "memory_per_stage");
  REQUIRE(stages.is_array());
  CHECK(int64_t(stages.size()) == pp);
  double fullest = 0;
  for (size_t s = 0; s < stages.size(); ++s) {
    CHECK(whole(stages[s], "stage") == int64_t(s));
    fullest = std::max(fullest, num(stages[s], "total_bytes"));
  }
  CHECK(num(mem, "total_bytes") == fullest);   // "memory" is the fullest stage

  // Collectives by kind: a call count, the fastest no slower than the mean, both within the step.
  const json& colls = key(j, "collectives");
  REQUIRE(colls.is_array());
  for (const json& c : colls) {
    text(c, "operation"), text(c, "tp_mapping"), text(c, "pass"), text(c, "instance");
    CHECK(whole(c, "bytes") > 0);
    CHECK(whole(c, "calls") >= 1);
    CHECK(num(c, "fastest_s") > 0);
    CHECK(num(c, "fastest_s") <= num(c, "mean_s") * (1 + 1e-12));
    CHECK(num(c, "mean_s") <= step);
  }

  // Attribution: same GPUs as "ranks" with the same numbers, the same step.
  const json& att = key(j, "attribution");
  CHECK(num(att, "makespan_s") == step);
  const double stall_time = num(att, "stall_time_s");
  CHECK(stall_time <= step);
  const json& gpus = key(att, "gpus");
  REQUIRE(gpus.size() == ranks.size());
  for (size_t i = 0; i < gpus.size(); ++i)
    for (const char* k : {"compute_s", "communication_s", "exposed_communication_s", "pipeline_bubble_s", "idle_s"})
      CHECK(num(gpus[i], k) == num(ranks[i], k));
  REQUIRE(key(att, "links").is_array());
  REQUIRE(key(att, "stall_sites").is_array());

  // Numerics: null when off; else every check's verdict follows its own numbers, and the summary
  // maxima are the largest of the checks'.
  const json& n = key(j, "numerics");
  if (n.is_null()) return;
  CHECK(flag(n, "ok"));
  text(n, "scale"), text(n, "scope"), text(n, "shape"), text(n, "dtype");
  REQUIRE(key(n, "instances_executed").is_array());
  REQUIRE(key(n, "instances_not_executed").is_array());
  const json& checks = key(n, "checks");
  REQUIRE(checks.is_array());
  CHECK(!checks.empty());
  double max_abs = 0, max_rel = 0;
  for (const json& c : checks) {
    text(c, "op"), text(c, "tensor"), text(c, "rule");
    CHECK(whole(c, "rank") >= 0);
    const double a = num(c, "max_abs_error"), r = num(c, "max_rel_error"), tol = num(c, "tolerance");
    CHECK(flag(c, "ok") == (tol == 0 ? a == 0 : r <= tol));
    max_abs = std::max(max_abs, a), max_rel = std::max(max_rel, r);
  }
  CHECK(num(n, "max_abs_error") == max_abs);
  CHECK(num(n, "max_rel_error") == max_rel);
}

// The CSV files: ranges, and agreement with the JSON.
void check_csvs(const Outputs& o) {
  const json& j = o.result;
  const double step = j["step_time_s"].get<double>();
  const json& ranks = j["ranks"];
  const int gpus = int(ranks.size());

  // gpus.csv: one row per GPU, in rank order, node = rank / GPUs per node, the JSON's numbers.
  REQUIRE(int(o.gpus.rows.size()) == gpus);
  for (int r = 0; r < gpus; ++r) {
    const auto& row = o.gpus.rows[size_t(r)];
    CAPTURE(r);
    CHECK(integer(row.at("rank")) == r);
    CHECK(integer(row.at("node")) == r / o.gpus_per_node);
    for (const char* k : {"compute_s", "communication_s", "exposed_communication_s", "pipeline_bubble_s", "idle_s"})
      CHECK(number(row.at(k)) == rel(ranks[size_t(r)][k].get<double>()));   // both shortest round-trip: equal
  }

  // spans.csv: the timeline. Every span within [0, step], the last one ending at the step time;
  // per GPU the spans of each kind add up to the JSON's split (compute: gemm and kernel spans;
  // communication: collectives, sends and receives; exposed communication: stalls; bubbles).
  const std::set<std::string> streams{"compute", "tp_comm", "dp_comm", "pp_comm"};
  const std::set<std::string> kinds{"gemm", "kernel", "collective", "send", "recv", "stall", "bubble"};
  REQUIRE(!o.spans.rows.empty());
  double last_end = 0;
  std::vector<std::map<std::string, double>> per_rank(static_cast<size_t>(gpus));
  std::set<std::string> span_names;
  int sends = 0;
  for (const auto& row : o.spans.rows) {
    const int rank = integer(row.at("rank"));
    const std::string kind = row.at("kind"), stream = row.at("stream");
    const double start = number(row.at("start_s")), end = number(row.at("end_s"));
    INFO(row.at("name") << " on GPU " << rank);
    REQUIRE(rank >= 0);
    REQUIRE(rank < gpus);
    CHECK(streams.count(stream) == 1);
    CHECK(kinds.count(kind) == 1);
    CHECK(!row.at("name").empty());
    CHECK(start >= 0);
    CHECK(start <= end);
    last_end = std::max(last_end, end);
    const bool wait = kind == "stall" || kind == "bubble";
    CHECK(integer(row.at("op")) >= (wait ? -1 : 0));
    if (wait) {
      CHECK(integer(row.at("op")) == -1);   // a wait is no op of the program
      CHECK(!row.at("waited_for").empty());
      CHECK(stream == "compute");
    }
    const char* bucket = kind == "gemm" || kind == "kernel" ? "compute_s"
                         : kind == "stall"                  ? "exposed_communication_s"
                         : kind == "bubble"                 ? "pipeline_bubble_s"
                                                            : "communication_s";
    per_rank[size_t(rank)][bucket] += end - start;
    span_names.insert(row.at("name"));
    sends += kind == "send";
  }
  CHECK(last_end == rel(step, 1e-12));   // the step ends with the last span (the same double printed twice)
  for (int r = 0; r < gpus; ++r)
    for (const char* k : {"compute_s", "communication_s", "exposed_communication_s", "pipeline_bubble_s"}) {
      CAPTURE(r);
      CAPTURE(k);
      // The engine sums the same spans in the same order; 1e-9 allows for a reordering of a few
      // thousand additions (n u ~ 1e-12).
      CHECK(per_rank[size_t(r)][k] == rel(ranks[size_t(r)][k].get<double>(), 1e-9));
    }

  // links.csv: the JSON's links, with loads in range and consistent with their definitions.
  const json& jl = j["attribution"]["links"];
  REQUIRE(o.links.rows.size() == jl.size());
  std::set<std::string> names;
  for (size_t i = 0; i < o.links.rows.size(); ++i) {
    const auto& row = o.links.rows[i];
    INFO(row.at("link"));
    CHECK(names.insert(row.at("link")).second);   // one row per link
    CHECK(row.at("link") == jl[i]["link"].get<std::string>());
    CHECK(row.at("label") == jl[i]["label"].get<std::string>());
    const double bytes = number(row.at("bytes")), busy = number(row.at("busy_s")), bw = number(row.at("bandwidth_Bps"));
    const double util = number(row.at("utilisation")), busy_fraction = number(row.at("busy_fraction"));
    const double saturated_fraction = number(row.at("saturated_fraction"));
    const int saturated = integer(row.at("saturated"));
    CHECK(bytes == rel(jl[i]["bytes"].get<double>()));
    CHECK(bytes > 0);
    CHECK(bw > 0);
    CHECK(busy > 0);
    CHECK(busy <= step);
    CHECK(busy_fraction == rel(busy / step, 1e-12));
    CHECK(util >= 0);
    CHECK(util <= 1);
    CHECK(saturated_fraction >= 0);
    CHECK(saturated_fraction <= 1);
    CHECK((saturated == 0 || saturated == 1));
    if (row.at("during_stalls").empty()) {
      // Totals only (no utilisation over time): the mean rate while busy, capped at 1, and
      // saturated for all its busy time or not at all.
      CHECK(jl[i]["during_stalls"].is_null());
      CHECK(util == rel(std::min(1.0, bytes / (busy * bw)), 1e-12));
      CHECK(saturated_fraction == (saturated ? rel(busy_fraction, 1e-12) : rel(0)));
    } else {
      const double during = number(row.at("during_stalls"));
      CHECK(during >= 0);
      CHECK(during <= 1);
      CHECK(saturated_fraction <= busy_fraction * (1 + 1e-12));
    }
  }

  // stall_sites.csv: the JSON's sites; each a stall that happened (waited_for names a span of
  // spans.csv), on 1..gpus GPUs, no longer than the time some GPU stalled.
  const json& js = j["attribution"]["stall_sites"];
  REQUIRE(o.stalls.rows.size() == js.size());
  const double stall_time = j["attribution"]["stall_time_s"].get<double>();
  for (size_t i = 0; i < o.stalls.rows.size(); ++i) {
    const auto& row = o.stalls.rows[i];
    INFO(row.at("op") << " waiting for " << row.at("waited_for"));
    CHECK(row.at("op") == js[i]["op"].get<std::string>());
    CHECK(span_names.count(row.at("op")) == 1);
    CHECK(span_names.count(row.at("waited_for")) == 1);
    CHECK(integer(row.at("layer")) >= -1);
    const double total = number(row.at("total_s"));
    CHECK(total > 0);
    CHECK(total <= stall_time * (1 + 1e-12));
    CHECK(integer(row.at("count")) >= 1);
    CHECK(integer(row.at("gpus")) >= 1);
    CHECK(integer(row.at("gpus")) <= gpus);
  }

  // Trace: one slice per span, the same last end; flow arrows pair each send with a receive.
  const json& events = key(o.trace, "traceEvents");
  REQUIRE(events.is_array());
  text(o.trace, "displayTimeUnit");
  CHECK(text(o.trace["otherData"], "generator") == "tpsim");
  CHECK(num(o.trace["otherData"], "makespan_us") == rel(step * 1e6, 1e-12));
  std::set<std::pair<int64_t, int64_t>> named_threads, used_threads;
  std::map<int64_t, int> flow_starts, flow_ends;
  size_t slices = 0;
  double trace_end = 0;
  for (const json& e : events) {
    const std::string ph = text(e, "ph");
    INFO(e.dump());
    text(e, "name");
    const int64_t pid = whole(e, "pid");
    CHECK(pid >= 0);
    if (ph == "X") {
      ++slices;
      const double ts = num(e, "ts"), dur = num(e, "dur");
      trace_end = std::max(trace_end, ts + dur);
      used_threads.insert({pid, whole(e, "tid")});
      text(e, "cat");
      REQUIRE(key(e, "args").is_object());
    } else if (ph == "M") {
      const std::string name = text(e, "name");
      CHECK((name == "process_name" || name == "process_sort_index" || name == "thread_name" ||
             name == "thread_sort_index"));
      if (name == "thread_name") named_threads.insert({pid, whole(e, "tid")});
      REQUIRE(key(e, "args").is_object());
    } else if (ph == "C") {
      num(e, "ts");
      const double u = num(key(e, "args"), "utilisation");
      CHECK(u <= 100 * (1 + 1e-12));
    } else if (ph == "s" || ph == "f") {
      num(e, "ts");
      whole(e, "tid");
      (ph == "s" ? flow_starts : flow_ends)[whole(e, "id")]++;
    } else {
      FAIL("unexpected phase " << ph);
    }
  }
  CHECK(slices == o.spans.rows.size());
  CHECK(trace_end / 1e6 == rel(step, 1e-12));   // us and back: a few ulp
  for (const auto& t : used_threads) CHECK(named_threads.count(t) == 1);   // every track is labelled
  CHECK(flow_starts.size() == size_t(sends));                              // one arrow per send
  for (const auto& [id, k] : flow_starts) {
    CHECK(k == 1);
    CHECK(flow_ends[id] == 1);
  }
  CHECK(flow_ends.size() == flow_starts.size());
}

// The first reference to something outside the page ("" if none): a src or href to another
// host or protocol-relative (//...), a url(...) likewise, an @import, a <link> element or a
// <script src>. Namespace URIs (xmlns="http://www.w3.org/2000/svg") fetch nothing and pass.
std::string external_reference(const std::string& html) {
  static const std::regex external(
      R"((src|href)\s*=\s*["']?\s*(https?:)?//|url\(\s*["']?\s*(https?:)?//|@import|<link\b|<script[^>]*\bsrc\s*=)",
      std::regex::icase);
  std::smatch m;
  return std::regex_search(html, m, external) ? m.str() : std::string();
}

// The HTML report: one self-contained document that draws (SVG), nothing fetched from elsewhere.
void check_html(const std::string& html, const std::string& scenario) {
  CHECK(html.rfind("<!DOCTYPE html>", 0) == 0);
  std::string tail = html;
  while (!tail.empty() && std::isspace(static_cast<unsigned char>(tail.back()))) tail.pop_back();
  CHECK(tail.size() >= 7);
  CHECK(tail.substr(tail.size() - 7) == "</html>");
  const auto count = [&](const std::string& what) {
    int n = 0;
    for (size_t p = html.find(what); p != std::string::npos; p = html.find(what, p + 1)) ++n;
    return n;
  };
  CHECK(count("<html") == 1);
  CHECK(count("</html>") == 1);
  CHECK(count("<svg") >= 1);
  CHECK(count("<svg") == count("</svg>"));
  CHECK(html.find("<title>tpsim: " + scenario + "</title>") != std::string::npos);
  const std::string external = external_reference(html);
  INFO("external reference: " << external);
  CHECK(external.empty());
}

}  // namespace

TEST_CASE("the CSV reader splits quoted fields as RFC 4180 writes them") {
  // The reader the checks below rely on: quotes around commas, doubled quotes, a missing newline.
  const std::vector<Row> rows = parse_csv("a,b,c\n\"x,1\",\"say \"\"hi\"\"\",\n1,2,3");
  REQUIRE(rows.size() == 3);
  CHECK(rows[1] == Row{"x,1", "say \"hi\"", ""});
  CHECK(rows[2] == Row{"1", "2", "3"});
}

TEST_CASE("the HTML check finds references to outside the page, and only those") {
  for (const char* bad : {R"(<img src="https://example.org/a.png">)", R"(<script src="app.js"></script>)",
                          R"(<link rel="stylesheet" href="style.css">)", R"html(<div style="background:url(//cdn.example/x.png)">)html",
                          R"(<style>@import "x.css";</style>)", R"(<a HREF='http://example.org'>)"}) {
    INFO(bad);
    CHECK(!external_reference(std::string("<p>") + bad + "</p>").empty());
  }
  CHECK(external_reference(R"(<svg xmlns="http://www.w3.org/2000/svg"><a href="#gpus">x</a></svg><script>var a = 1;</script>)")
            .empty());
}

TEST_CASE("tpsim run, default scenario: JSON, CSV, trace and HTML follow their schema and agree") {
  // examples/default.yaml: Llama-2-7B, TP 8 on one DGX H100, one micro-batch of 1 x 2048 tokens.
  const Outputs o = run_with_outputs("--numerics proxy");
  CHECK(o.gpus_per_node == 8);
  check_result_json(o.result, 2048);
  CHECK(o.result["numerics"].is_object());   // proxy ran: its section is checked above
  check_csvs(o);
  check_html(o.html, o.result["scenario"].get<std::string>());
  CHECK(!o.stalls.rows.empty());             // TP all-reduces stall compute here: the stall checks ran
  CHECK(o.result["collectives"].size() >= 1);
}

TEST_CASE("tpsim run, two pipeline stages over two nodes: the same schema with sends, receives and bubbles") {
  // examples/tp-vs-pp-70b.yaml: Llama-2-70B, TP 8 x PP 2, 8 micro-batches of 1 x 4096 tokens.
  const std::string example = std::string(TPSIM_SOURCE_DIR) + "/examples/tp-vs-pp-70b.yaml";
  const Outputs o = run_with_outputs(example + " --numerics off");
  check_result_json(o.result, 8 * 4096);
  CHECK(o.result["numerics"].is_null());
  CHECK(o.result["plan"]["pp"] == 2);
  check_csvs(o);
  check_html(o.html, o.result["scenario"].get<std::string>());
  int bubbles = 0, sends = 0, recvs = 0;
  for (const auto& row : o.spans.rows) {
    bubbles += row.at("kind") == "bubble";
    sends += row.at("kind") == "send";
    recvs += row.at("kind") == "recv";
  }
  CHECK(bubbles > 0);       // the bubble and flow-arrow checks above ran on something
  CHECK(sends > 0);
  CHECK(sends == recvs);    // every activation / gradient sent is received
}

TEST_CASE("an output that cannot be written is refused before the run, and a failed write is an error") {
  const std::string tpsim = TPSIM_BINARY;
  // Before: nothing simulated, so no summary line.
  for (const char* args : {"--json /nonexistent-folder/r.json", "--trace /tmp", "--csv /etc/hostname"}) {
    CAPTURE(args);
    const Output o = run_shell(tpsim + " run --numerics off " + args);
    CHECK(o.status == 2);
    CHECK(o.out.find("tpsim: error: --") != std::string::npos);
    CHECK(o.out.find("step time") == std::string::npos);
  }
  // After: the disk is full (Linux's /dev/full fails every write); /dev/null is a fine place.
  if (std::filesystem::exists("/dev/full")) {
    const Output full = run_shell(tpsim + " run --numerics off --json /dev/full");
    CHECK(full.status == 2);
    CHECK(full.out.find("--json: writing '/dev/full' failed") != std::string::npos);
  }
  CHECK(run_shell(tpsim + " run --numerics off --json /dev/null").status == 0);
}

TEST_CASE("a whole-file output is replaced atomically: a failed write leaves the old file as it was") {
  const std::string tpsim = TPSIM_BINARY;
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "tpsim-atomic-test";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  const std::string result = (dir / "r.json").string();
  REQUIRE(run_shell(tpsim + " run --numerics off --json " + result).status == 0);
  const auto size = std::filesystem::file_size(result);
  CHECK(size > 1000);
  // The folder made read-only (not for root, who writes anyway): the run is refused up front and
  // the old file stays whole; no temporary file is left behind either way.
  std::filesystem::permissions(dir, std::filesystem::perms::owner_write, std::filesystem::perm_options::remove);
  if (access(dir.c_str(), W_OK) != 0) {
    const Output o = run_shell(tpsim + " run --numerics off --json " + result);
    CHECK(o.status == 2);
    CHECK(std::filesystem::file_size(result) == size);
  }
  std::filesystem::permissions(dir, std::filesystem::perms::owner_write, std::filesystem::perm_options::add);
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) files += entry.is_regular_file();
  CHECK(files == 1);
  std::filesystem::remove_all(dir);
}

TEST_CASE("an output given through a symlink replaces the file it names, and the link stays") {
  const std::string tpsim = TPSIM_BINARY;
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / "tpsim-symlink-output-test";
  fs::remove_all(dir);
  fs::create_directories(dir / "real");
  std::ofstream(dir / "real" / "r.json") << "old\n";
  fs::create_symlink(dir / "real" / "r.json", dir / "link.json");
  REQUIRE(run_shell(tpsim + " run --numerics off --json " + (dir / "link.json").string()).status == 0);
  CHECK(fs::is_symlink(dir / "link.json"));
  CHECK(fs::file_size(dir / "real" / "r.json") > 1000);
  // tpsim plan's ranked CSV, through a relative link to a file not there yet, the same way.
  const std::string csv = (dir / "plan.csv").string(), target = (dir / "real" / "plan.csv").string();
  fs::create_symlink("real/plan.csv", csv);
  REQUIRE(run_shell(tpsim + " plan --nodes 1 --micro-batches 1 --csv " + csv + " > /dev/null").status == 0);
  CHECK(fs::is_symlink(csv));
  CHECK(fs::file_size(target) > 100);
  fs::remove_all(dir);
}

// ---------------------------------------------------------------------------------------------
// `tpsim collective` in nccl-tests' format: a parser written for nccl-tests logs
// (tests/oracle/nccl_tests_parse.py, checked here on a real all_reduce_perf log first) reads
// tpsim's output unchanged, and finds the numbers tpsim's CSV gives.

namespace {

json parse_nccl_tests(const std::string& command_or_file, bool file) {
  const std::string parser = "python3 tests/oracle/nccl_tests_parse.py";
  const Output o = run_shell(file ? parser + " " + command_or_file : command_or_file + " | " + parser + " -");
  REQUIRE_MESSAGE(o.status == 0, o.out);
  return json::parse(o.out);
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream ss(text);
  for (std::string line; std::getline(ss, line);) out.push_back(line);
  return out;
}

}  // namespace

TEST_CASE("the nccl-tests parser reads a real all_reduce_perf log") {
  const json log = parse_nccl_tests("tests/data/nccl-tests/a3mega-2x8-h100-all-reduce.log", true);
  REQUIRE(log["rows"].size() == 31);
  CHECK(log["avg_busbw"].get<double>() == 70.742);
  CHECK(log["rows"][0]["time_us"].get<double>() == 135.8);
  CHECK(log["rows"][30]["size"].get<int64_t>() == 8589934592);
  CHECK(log["rows"][30]["busbw"].get<double>() == 338.82);
  CHECK(log["rows"][30]["in_place"]["time_us"].get<double>() == 47743.0);
}

TEST_CASE("tpsim collective prints what an nccl-tests parser reads, with tpsim's CSV numbers") {
  const std::string tpsim = std::string(TPSIM_BINARY) + " collective -t dgx-h100 --op all_reduce -b 8 -e 8G -f 2";
  const json parsed = parse_nccl_tests(tpsim, false);
  const Output csv = run_shell(tpsim + " --csv");
  REQUIRE(csv.status == 0);
  const std::vector<std::string> rows = lines_of(csv.out);
  REQUIRE(parsed["rows"].size() == rows.size() - 1);
  double busbw_sum = 0;
  for (size_t i = 1; i < rows.size(); ++i) {
    CAPTURE(rows[i]);
    std::vector<std::string> f;
    std::stringstream ss(rows[i]);
    for (std::string x; std::getline(ss, x, ',');) f.push_back(x);
    const json& r = parsed["rows"][i - 1];
    CHECK(r["size"].get<double>() == std::stod(f[0]));
    CHECK(r["count"].get<double>() == std::stod(f[1]));
    CHECK(r["redop"] == "sum");
    CHECK(r["root"] == -1);
    // nccl-tests prints time with 2 decimals under 100 us (as the CSV: equal), 1 under 10 ms
    // (0.05 / 100 = 5e-4 relative at most), none above (0.5 / 10000 = 5e-5).
    CHECK(r["time_us"].get<double>() == rel(std::stod(f[3]), 5e-4));
    CHECK(r["in_place"]["time_us"] == r["time_us"]);
    CHECK(r["busbw"].get<double>() == std::stod(f[5]));
    CHECK(r["wrong"].is_null());   // N/A: a simulation validates no data
    busbw_sum += std::stod(f[5]);
  }
  CHECK(parsed["avg_busbw"].get<double>() == rel(busbw_sum / double(rows.size() - 1), 1e-5));
}

TEST_CASE("tpsim collective's column headers are nccl-tests' own, byte for byte") {
  const std::vector<std::string> real = lines_of(read_file("tests/data/nccl-tests/a3mega-2x8-h100-all-reduce.log"));
  const Output o = run_shell(std::string(TPSIM_BINARY) + " collective -t dgx-h100 -b 8 -e 64 -f 2");
  REQUIRE(o.status == 0);
  const std::vector<std::string> ours = lines_of(o.out);
  auto headers = [](const std::vector<std::string>& lines) {
    std::vector<std::string> h;
    for (size_t i = 0; i + 2 < lines.size(); ++i)
      if (lines[i].find("out-of-place") != std::string::npos) h = {lines[i], lines[i + 1], lines[i + 2]};
    return h;
  };
  REQUIRE(headers(real).size() == 3);
  CHECK(headers(ours) == headers(real));
  CHECK(ours.back() == "#");
  CHECK(ours[ours.size() - 2].rfind("# Avg bus bandwidth    : ", 0) == 0);
  CHECK(ours[ours.size() - 3] == "# Out of bounds values : 0 OK");
}

// ---------------------------------------------------------------------------------------------
// Shell completion and the man page, generated from the CLI: every subcommand is in both, and the
// completion completes what a user types.

TEST_CASE("tpsim completion bash completes subcommands, their flags and preset names") {
  const std::string bin = std::filesystem::path(TPSIM_BINARY).parent_path().string();
  auto complete = [&](const std::string& words, int cword) {
    const Output o = run_shell("PATH='" + bin + "':$PATH bash -c 'source <(tpsim completion bash); COMP_WORDS=(" + words +
                               "); COMP_CWORD=" + std::to_string(cword) + "; _tpsim; echo \"${COMPREPLY[*]}\"'");
    REQUIRE(o.status == 0);
    return o.out;
  };
  CHECK(complete("tpsim se", 1) == "serve\n");
  CHECK(complete("tpsim serve --pre", 2) == "--preemption --prefill-replicas\n");
  CHECK(complete("tpsim run -m llama2-7", 3) == "llama2-70b llama2-7b\n");
  CHECK(complete("tpsim collective -t dgx-h1", 3) == "dgx-h100 dgx-h100-12hca\n");
}

TEST_CASE("tpsim man documents every subcommand and renders without roff warnings") {
  const Output page = run_shell(std::string(TPSIM_BINARY) + " man");
  REQUIRE(page.status == 0);
  for (const char* sub : {"run", "validate", "collective", "verify", "explain", "plan", "merge", "serve", "presets",
                          "completion", "man"})
    CHECK_MESSAGE(page.out.find(std::string(".SS tpsim ") + sub + "\n") != std::string::npos, sub);
  CHECK(page.out.find("TPSIM_DATA_DIR") != std::string::npos);
  if (run_shell("command -v groff").status != 0) {
    MESSAGE("groff is not installed: the page's rendering is not checked");
    return;
  }
  const Output render = run_shell(std::string(TPSIM_BINARY) + " man | groff -man -Tutf8 -ww >/dev/null");
  CHECK(render.status == 0);
  CHECK(render.out.empty());   // -ww: every warning on stderr
}
