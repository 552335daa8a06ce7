// Result files of a sweep: CSV rows with fixed columns and fixed number formatting (so the same sweep
// gives the same bytes, and sharded-then-merged equals unsharded), the ranked JSON, and merging parts.
#include <cstdio>
#include <fmt/format.h>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "tpsim/planner.hpp"

namespace tpsim {

namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

const char* const kColumns[] = {"rank", "layout", "verdict", "reason", "nodes", "gpus", "tp", "pp", "dp",
                                "micro_batch", "sp", "recompute", "virtual_stages", "batch", "step_time_s",
                                "compute_s", "tp_comm_s", "exposed_comm_s", "bubble_s", "memory_gib", "ttft_s", "tpot_s",
                                "tokens_per_s", "tflops_per_gpu", "time_to_train_s", "gpu_hours", "cost",
                                "rank_by", "sweep"};
constexpr std::size_t kColumnCount = sizeof(kColumns) / sizeof(kColumns[0]);

// Six significant digits: enough to rank, and stable under parse -> format (the file is the truth:
// a value read back prints as the very same text).
std::string number(double v) { return fmt::format("{:.6g}", v); }

std::string csv_field(const std::string& field) {
  if (field.find_first_of(",\"\n\r") == std::string::npos) return field;
  std::string out = "\"";
  for (char c : field) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

std::vector<std::string> split_csv(const std::string& line) {
  std::vector<std::string> fields(1);
  bool in_quotes = false;
  for (std::size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (in_quotes) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        fields.back() += '"';
        ++i;
      } else if (c == '"') {
        in_quotes = false;
      } else {
        fields.back() += c;
      }
    } else if (c == '"') {
      in_quotes = true;
    } else if (c == ',') {
      fields.emplace_back();
    } else {
      fields.back() += c;
    }
  }
  if (in_quotes) throw std::invalid_argument("unterminated quoted field");
  return fields;
}

double parse_number(const std::string& text, const char* column) {
  const LeadingNumber n = leading_number(text);
  if (!n.ok || !n.rest.empty())
    throw std::invalid_argument(fmt::format("column {}: expected a number, got '{}'", column, text));
  return n.value;
}

Verdict parse_verdict(const std::string& text) {
  for (Verdict v : {Verdict::ok, Verdict::invalid, Verdict::oom, Verdict::deadline, Verdict::latency, Verdict::error})
    if (text == to_string(v)) return v;
  throw std::invalid_argument("column verdict: unknown verdict '" + text + "'");
}

}  // namespace

LeadingNumber leading_number(const std::string& text) {
  LeadingNumber n;
  std::size_t used = 0;
  try {
    n.value = std::stod(text, &used);
  } catch (const std::logic_error&) {
    return n;   // no number at the start (invalid_argument) or out of range
  }
  n.ok = used > 0;
  n.rest = text.substr(used);
  return n;
}

std::string csv_header() {
  std::string out;
  for (std::size_t i = 0; i < kColumnCount; ++i) out += (i ? "," : "") + std::string(kColumns[i]);
  return out;
}

std::string csv_row(const LayoutResult& r, int rank, Objective objective, const std::string& context) {
  const Layout& l = r.layout;
  const bool training = l.batch == 0;
  std::vector<std::string> f = {
      rank > 0 ? std::to_string(rank) : "",
      layout_id(l),
      to_string(r.verdict),
      r.reason,
      std::to_string(l.nodes),
      std::to_string(l.gpus()),
      std::to_string(l.tp),
      std::to_string(l.pp),
      std::to_string(l.dp),
      training ? std::to_string(l.micro_batch) : "",
      training ? (l.sp ? "yes" : "no") : "",
      training ? recompute_name(l.recompute) : "",
      training ? std::to_string(l.virtual_stages) : "",
      training ? "" : std::to_string(l.batch),
      number(r.step_time_s),
      number(r.compute_s),
      number(r.tp_comm_s),
      number(r.exposed_comm_s),
      number(r.bubble_s),
      number(r.memory_bytes / kGiB),
      number(r.ttft_s),
      number(r.tpot_s),
      number(r.tokens_per_s),
      number(r.tflops_per_gpu),
      number(r.time_to_train_s),
      number(r.gpu_hours),
      number(r.cost),
      to_string(objective),
      context,
  };
  std::string out;
  for (std::size_t i = 0; i < f.size(); ++i) out += (i ? "," : "") + csv_field(f[i]);
  return out;
}

CsvRecord parse_csv_row(const std::string& line) {
  const std::vector<std::string> f = split_csv(line);
  if (f.size() != kColumnCount)
    throw std::invalid_argument(fmt::format("expected {} columns, got {}", kColumnCount, f.size()));
  auto col = [&](const char* name) -> const std::string& {
    for (std::size_t i = 0; i < kColumnCount; ++i)
      if (std::string(kColumns[i]) == name) return f[i];
    throw std::logic_error("no column " + std::string(name));
  };
  CsvRecord rec;
  LayoutResult& r = rec.result;
  rec.rank = col("rank").empty() ? 0 : static_cast<int>(parse_number(col("rank"), "rank"));
  r.layout = parse_layout_id(col("layout"));
  r.verdict = parse_verdict(col("verdict"));
  r.reason = col("reason");
  r.step_time_s = parse_number(col("step_time_s"), "step_time_s");
  r.compute_s = parse_number(col("compute_s"), "compute_s");
  r.tp_comm_s = parse_number(col("tp_comm_s"), "tp_comm_s");
  r.exposed_comm_s = parse_number(col("exposed_comm_s"), "exposed_comm_s");
  r.bubble_s = parse_number(col("bubble_s"), "bubble_s");
  r.memory_bytes = parse_number(col("memory_gib"), "memory_gib") * kGiB;
  r.ttft_s = parse_number(col("ttft_s"), "ttft_s");
  r.tpot_s = parse_number(col("tpot_s"), "tpot_s");
  r.tokens_per_s = parse_number(col("tokens_per_s"), "tokens_per_s");
  r.tflops_per_gpu = parse_number(col("tflops_per_gpu"), "tflops_per_gpu");
  r.time_to_train_s = parse_number(col("time_to_train_s"), "time_to_train_s");
  r.gpu_hours = parse_number(col("gpu_hours"), "gpu_hours");
  r.cost = parse_number(col("cost"), "cost");
  rec.objective = parse_objective(col("rank_by"));
  rec.context = col("sweep");
  return rec;
}

std::vector<CsvRecord> read_csv(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  std::vector<CsvRecord> out;
  std::size_t pos = 0;
  int line_no = 0;
  while (pos < text.size()) {
    const std::size_t end = text.find('\n', pos);
    // A line without its newline was cut by a killed sweep: it never finished, so it is not a result.
    if (end == std::string::npos) break;
    const std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (line_no == 1) {
      if (line != csv_header())
        throw InputError(path, 1, 1, "", "not a tpsim plan result file (its header differs from tpsim's)");
      continue;
    }
    if (line.empty()) continue;
    try {
      out.push_back(parse_csv_row(line));
    } catch (const std::invalid_argument& e) {
      throw InputError(path, line_no, 1, "", e.what());
    }
  }
  return out;
}

void write_ranked_csv(const std::string& path, const std::vector<LayoutResult>& ranked, Objective objective,
                      const std::string& context) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw InputError("", 0, 0, "--csv", "cannot write '" + tmp + "'");
    out << csv_header() << "\n";
    int rank = 0;
    for (const auto& r : ranked) out << csv_row(r, r.verdict == Verdict::ok ? ++rank : 0, objective, context) << "\n";
    if (!out.flush()) throw InputError("", 0, 0, "--csv", "cannot write '" + tmp + "'");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw InputError("", 0, 0, "--csv", "cannot replace '" + path + "'");
}

std::string results_json(const std::vector<LayoutResult>& ranked, Objective objective, const std::string& context) {
  nlohmann::ordered_json doc;
  doc["sweep"] = context;
  doc["rank_by"] = to_string(objective);
  doc["layouts"] = nlohmann::ordered_json::array();
  int rank = 0;
  for (const auto& r : ranked) {
    // Same six-digit values as the CSV, so the two files never disagree.
    const CsvRecord rec = parse_csv_row(csv_row(r, 0, objective, context));
    const LayoutResult& v = rec.result;
    const Layout& l = v.layout;
    nlohmann::ordered_json row;
    row["rank"] = v.verdict == Verdict::ok ? ++rank : 0;
    row["layout"] = layout_id(l);
    row["verdict"] = to_string(v.verdict);
    if (!v.reason.empty()) row["reason"] = v.reason;
    row["nodes"] = l.nodes;
    row["gpus"] = l.gpus();
    row["tp"] = l.tp;
    row["pp"] = l.pp;
    row["dp"] = l.dp;
    if (l.batch == 0) {
      row["micro_batch"] = l.micro_batch;
      row["sp"] = l.sp;
      row["recompute"] = recompute_name(l.recompute);
      row["virtual_stages"] = l.virtual_stages;
    } else {
      row["batch"] = l.batch;
    }
    if (v.verdict == Verdict::ok) {
      row["step_time_s"] = v.step_time_s;
      row["compute_s"] = v.compute_s;
      row["tp_comm_s"] = v.tp_comm_s;
      row["exposed_comm_s"] = v.exposed_comm_s;
      row["bubble_s"] = v.bubble_s;
      if (l.batch > 0) {
        row["ttft_s"] = v.ttft_s;
        row["tpot_s"] = v.tpot_s;
      }
      row["tokens_per_s"] = v.tokens_per_s;
      row["tflops_per_gpu"] = v.tflops_per_gpu;
      row["time_to_train_s"] = v.time_to_train_s;
      row["gpu_hours"] = v.gpu_hours;
      row["cost"] = v.cost;
    }
    if (v.memory_bytes > 0) row["memory_gib"] = v.memory_bytes / kGiB;
    doc["layouts"].push_back(row);
  }
  return doc.dump(2) + "\n";
}

std::string sweep_context(const SweepSpec& spec) {
  std::string out = fmt::format("{} on {} ({} GPUs/node); ", spec.model.name, spec.topology.name,
                                spec.topology.gpus_per_node);
  if (spec.kind == WorkloadKind::inference) {
    const auto& t = spec.inference;
    return out + fmt::format("inference batch {} prompt {} generate {} bound {}", t.batch, t.prompt, t.generate,
                             number(t.latency_bound_s));
  }
  const auto& t = spec.training;
  return out + fmt::format("training gb {} seq {} tokens {} deadline {}", t.global_batch,
                           t.seq > 0 ? t.seq : spec.model.max_seq, number(t.tokens), number(t.deadline_s));
}

Merged merge_csv_files(const std::vector<std::string>& paths) {
  if (paths.empty()) throw InputError("", 0, 0, "merge", "expected at least one part file");
  Merged merged;
  std::map<std::string, std::pair<LayoutResult, std::string>> by_id;   // id -> (result, its row text)
  bool first = true;
  for (const auto& path : paths) {
    std::ifstream probe(path);
    if (!probe) throw InputError(path, 0, 0, "", "cannot read this part file");
    for (const CsvRecord& rec : read_csv(path)) {
      if (first) {
        merged.context = rec.context;
        merged.objective = rec.objective;
        first = false;
      }
      if (rec.context != merged.context)
        throw InputError(path, 0, 0, "sweep",
                         "this part belongs to another sweep ('" + rec.context + "' vs '" + merged.context + "')");
      if (rec.objective != merged.objective)
        throw InputError(path, 0, 0, "rank_by", "parts rank by different objectives");
      const std::string id = layout_id(rec.result.layout);
      const std::string text = csv_row(rec.result, 0, rec.objective, rec.context);
      auto [it, inserted] = by_id.emplace(id, std::make_pair(rec.result, text));
      if (!inserted && it->second.second != text)
        throw InputError(path, 0, 0, "layout", "layout " + id + " has different results in two parts");
    }
  }
  for (auto& [id, entry] : by_id) merged.ranked.push_back(entry.first);
  rank_results(merged.ranked, merged.objective);
  return merged;
}

}  // namespace tpsim
