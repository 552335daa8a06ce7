// Result files of a sweep: CSV rows with fixed columns and fixed number formatting (so the same sweep
// gives the same bytes, and sharded-then-merged equals unsharded), the ranked JSON, and merging parts.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fmt/format.h>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "report/atomic_file.hpp"
#include "tpsim/planner.hpp"

namespace tpsim {

namespace {

const char* const kColumns[] = {"rank", "layout", "verdict", "reason", "nodes", "gpus", "tp", "pp", "dp",
                                "micro_batch", "sp", "recompute", "virtual_stages", "batch", "step_time_s",
                                "compute_s", "tp_comm_s", "exposed_comm_s", "bubble_s", "memory_gib", "ttft_s", "tpot_s",
                                "tokens_per_s", "tflops_per_gpu", "time_to_train_s", "gpu_hours", "cost",
                                "rank_by", "sweep", "sweep_id", "shard", "sweep_layouts"};
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

// tpsim writes finite numbers only (finish_result turns a non-finite measurement into an error
// verdict), so nan or inf in a file means it was edited or damaged: refused, never ranked.
double parse_number(const std::string& text, const char* column) {
  const LeadingNumber n = leading_number(text);
  if (!n.ok || !n.rest.empty())
    throw std::invalid_argument(fmt::format("column {}: expected a number, got '{}'", column, text));
  if (!std::isfinite(n.value))
    throw std::invalid_argument(fmt::format("column {}: '{}' is not a finite number (tpsim never writes one)",
                                            column, text));
  return n.value;
}

std::string shard_text(Shard s) { return fmt::format("{}/{}", s.index, s.parts); }

Shard parse_shard_column(const std::string& text) {
  try {
    return parse_shard(text);
  } catch (const std::invalid_argument&) {
    throw std::invalid_argument("column shard: expected i/N (0 <= i < N), got '" + text + "'");
  }
}

std::string parse_sweep_id(const std::string& text) {
  if (text.size() != 16 || text.find_first_not_of("0123456789abcdef") != std::string::npos)
    throw std::invalid_argument("column sweep_id: expected 16 hex digits, got '" + text + "'");
  return text;
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

std::string csv_row(const LayoutResult& r, int rank, const SweepTag& tag) {
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
      to_string(tag.objective),
      tag.context,
      tag.id,
      shard_text(tag.shard),
      std::to_string(tag.layouts),
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
  rec.tag.objective = parse_objective(col("rank_by"));
  rec.tag.context = col("sweep");
  rec.tag.id = parse_sweep_id(col("sweep_id"));
  rec.tag.shard = parse_shard_column(col("shard"));
  const double layouts = parse_number(col("sweep_layouts"), "sweep_layouts");
  if (!(layouts >= 1 && layouts <= 1e9) || layouts != static_cast<int>(layouts))
    throw std::invalid_argument("column sweep_layouts: expected a count of layouts, got '" + col("sweep_layouts") + "'");
  rec.tag.layouts = static_cast<int>(layouts);
  return rec;
}

CsvFile read_csv(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  CsvFile file;
  if (!in) return file;
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  std::size_t pos = 0;
  int line_no = 0;
  while (pos < text.size()) {
    const std::size_t end = text.find('\n', pos);
    ++line_no;
    // A line without its newline was cut by a killed sweep: it never finished, so it is not a result.
    if (end == std::string::npos) {
      file.torn_line = line_no;
      break;
    }
    const std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line_no == 1) {
      if (line != csv_header())
        throw InputError(path, 1, 1, "",
                         "not a result file of this tpsim's `plan` (its header differs: another file, or another "
                         "tpsim version); write to a new file");
      file.has_header = true;
      continue;
    }
    if (line.empty()) continue;
    try {
      file.records.push_back(parse_csv_row(line));
      file.lines.push_back(line_no);
    } catch (const std::invalid_argument& e) {
      throw InputError(path, line_no, 1, "", e.what());
    }
  }
  return file;
}

void write_ranked_csv(const std::string& path, const std::vector<LayoutResult>& ranked, const SweepTag& tag) {
  std::string text = csv_header() + "\n";
  int rank = 0;
  for (const auto& r : ranked) text += csv_row(r, r.verdict == Verdict::ok ? ++rank : 0, tag) + "\n";
  write_file_atomically("--csv", path, text);
}

std::string results_json(const std::vector<LayoutResult>& ranked, const SweepTag& tag) {
  nlohmann::ordered_json doc;
  doc["sweep"] = tag.context;
  doc["sweep_id"] = tag.id;
  doc["shard"] = shard_text(tag.shard);
  doc["sweep_layouts"] = tag.layouts;
  doc["rank_by"] = to_string(tag.objective);
  doc["layouts"] = nlohmann::ordered_json::array();
  int rank = 0;
  for (const auto& r : ranked) {
    // Same six-digit values as the CSV, so the two files never disagree.
    const CsvRecord rec = parse_csv_row(csv_row(r, 0, tag));
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

namespace {

// One part of a merge, read strictly: a resume may drop a torn last row and redo it, a merge has
// no way to redo anything, so a part must be whole.
struct Part {
  std::string path;
  CsvFile file;
  SweepTag tag;
};

bool same_part(const SweepTag& a, const SweepTag& b) {
  return a.id == b.id && a.context == b.context && a.objective == b.objective && a.layouts == b.layouts &&
         a.shard.index == b.shard.index && a.shard.parts == b.shard.parts;
}

std::string rerun(const Part& p) {
  return fmt::format("re-run `tpsim plan` with that sweep's inputs and --shard {} --csv {} to finish it",
                     shard_text(p.tag.shard), p.path);
}

// The tag every row of the part shares (a file of mixed sweeps or shards is refused).
SweepTag part_tag(const std::string& path, const CsvFile& file) {
  const SweepTag& tag = file.records.front().tag;
  for (std::size_t i = 1; i < file.records.size(); ++i) {
    const SweepTag& t = file.records[i].tag;
    if (!same_part(t, tag))
      throw InputError(path, file.lines[i], 1, "",
                       fmt::format("this row is of sweep {} shard {}, line {} of sweep {} shard {}: one file holds "
                                   "one part of one sweep",
                                   t.id, shard_text(t.shard), file.lines.front(), tag.id, shard_text(tag.shard)));
  }
  return tag;
}

Part read_part(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw InputError(path, 0, 0, "", "this is a folder, not a part file");
  std::ifstream probe(path);
  if (!probe) throw InputError(path, 0, 0, "", "cannot read this part file (missing, or no permission)");
  Part p{path, read_csv(path), {}};
  if (p.file.torn_line > 0)
    throw InputError(path, p.file.torn_line, 1, "",
                     "this last line is cut off (no newline): the sweep writing this part was interrupted; re-run it "
                     "with the same --shard and --csv to finish it");
  if (!p.file.has_header)
    throw InputError(path, 0, 0, "", "this part is empty: its sweep never started; re-run it with the same --shard and --csv");
  if (p.file.records.empty())
    throw InputError(path, 0, 0, "",
                     "this part holds only the header, no rows: its sweep was interrupted before a layout finished; "
                     "re-run it with the same --shard and --csv");
  p.tag = part_tag(path, p.file);
  const std::size_t share = static_cast<std::size_t>(shard_size(p.tag.layouts, p.tag.shard));
  if (p.file.records.size() < share)
    throw InputError(path, 0, 0, "",
                     fmt::format("this part holds {} of the {} layouts of shard {}: its sweep was interrupted; {}",
                                 p.file.records.size(), share, shard_text(p.tag.shard), rerun(p)));
  if (p.file.records.size() > share)
    throw InputError(path, 0, 0, "",
                     fmt::format("this part holds {} rows, but shard {} of a sweep of {} layouts has {}",
                                 p.file.records.size(), shard_text(p.tag.shard), p.tag.layouts, share));
  return p;
}

// `p` belongs with `first` (same sweep, same sharding) and holds a shard not seen yet.
void check_fits(const Part& p, const Part& first, std::map<int, std::string>& shards) {
  const bool same = p.tag.context == first.tag.context;   // a --set changes the id, not the context
  if (p.tag.id != first.tag.id)
    throw InputError(p.path, 0, 0, "sweep_id",
                     fmt::format("this part is of sweep {}{}, {} of sweep {}{}: parts of sweeps with different inputs "
                                 "(scenario, --set, flags or tpsim version) cannot be merged",
                                 p.tag.id, same ? "" : " ('" + p.tag.context + "')", first.path, first.tag.id,
                                 same ? "" : " ('" + first.tag.context + "')"));
  if (p.tag.shard.parts != first.tag.shard.parts)
    throw InputError(p.path, 0, 0, "shard",
                     fmt::format("this part is shard {}, {} is shard {}: parts of one sharding have the same N",
                                 shard_text(p.tag.shard), first.path, shard_text(first.tag.shard)));
  auto [it, inserted] = shards.emplace(p.tag.shard.index, p.path);
  if (!inserted)
    throw InputError(p.path, 0, 0, "shard",
                     fmt::format("this part and {} both hold shard {}: pass each part once", it->second,
                                 shard_text(p.tag.shard)));
}

// Every shard 0..N-1 came: else the merge would rank a subset as if it were the sweep.
void check_complete(const Part& first, const std::map<int, std::string>& shards) {
  const int parts = first.tag.shard.parts;
  for (int i = 0; i < parts; ++i) {
    if (shards.count(i)) continue;
    std::string have;
    for (const auto& [index, path] : shards) have += fmt::format("{}{}/{} ({})", have.empty() ? "" : ", ", index, parts, path);
    throw InputError("", 0, 0, "merge",
                     fmt::format("shard {}/{} of sweep {} is missing (got {}): pass every part", i, parts, first.tag.id,
                                 have));
  }
}

}  // namespace

Merged merge_csv_files(const std::vector<std::string>& paths) {
  if (paths.empty()) throw InputError("", 0, 0, "merge", "expected at least one part file");
  std::vector<Part> parts;
  std::map<int, std::string> shards;                       // shard index -> its part file
  std::map<std::string, std::pair<std::string, int>> seen;   // layout id -> (part file, line)
  Merged merged;
  for (const auto& path : paths) {
    parts.push_back(read_part(path));
    const Part& p = parts.back();
    check_fits(p, parts.front(), shards);
    for (std::size_t i = 0; i < p.file.records.size(); ++i) {
      const std::string id = layout_id(p.file.records[i].result.layout);
      auto [it, inserted] = seen.emplace(id, std::make_pair(path, p.file.lines[i]));
      if (!inserted)
        throw InputError(path, p.file.lines[i], 1, "layout",
                         fmt::format("layout {} is also on line {} of {}: a layout belongs to one shard, once", id,
                                     it->second.second, it->second.first));
      merged.ranked.push_back(p.file.records[i].result);
    }
  }
  check_complete(parts.front(), shards);
  // Every shard whole and no layout twice: these are all of the sweep's layouts, as one run has them.
  merged.tag = parts.front().tag;
  merged.tag.shard = Shard{};
  rank_results(merged.ranked, merged.tag.objective);
  return merged;
}

}  // namespace tpsim
