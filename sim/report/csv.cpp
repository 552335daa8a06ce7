// CSV files of the attribution and the raw spans, for spreadsheets and scripts. Units in headers.
#include <filesystem>
#include <fmt/format.h>

#include "report/atomic_file.hpp"
#include "tpsim/attribution.hpp"
#include "tpsim/spec.hpp"

namespace tpsim {

namespace {

// RFC 4180 field: quoted when it holds a comma, a quote or a newline.
std::string field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

// Each file is written whole and renamed into place (atomic_file.hpp): a crash or a full disk
// leaves the last complete file, never a torn one.
void save(const std::filesystem::path& dir, const char* name, const std::string& text) {
  write_file_atomically("--csv", (dir / name).string(), text);
}

const char* stream_name(Stream s) {
  switch (s) {
    case Stream::compute: return "compute";
    case Stream::tp_comm: return "tp_comm";
    case Stream::dp_comm: return "dp_comm";
    case Stream::pp_comm: return "pp_comm";
  }
  return "?";
}

}  // namespace

void write_csv(const std::string& dir_name, const Timeline& t, const Attribution& a) {
  const std::filesystem::path dir(dir_name);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw InputError("", 0, 0, "--csv", "cannot create folder '" + dir_name + "': " + ec.message());

  std::string gpus = "rank,node,compute_s,communication_s,exposed_communication_s,pipeline_bubble_s,idle_s\n";
  for (const auto& g : a.gpus)
    gpus += fmt::format("{},{},{},{},{},{},{}\n", g.rank, g.node, g.compute, g.communication, g.exposed_communication,
                        g.bubble, g.idle);

  save(dir, "gpus.csv", gpus);

  std::string stalls = "op,layer,waited_for,total_s,count,gpus\n";
  for (const auto& s : a.stalls)
    stalls += fmt::format("{},{},{},{},{},{}\n", field(s.op), s.layer, field(s.waited_for), s.total, s.count, s.gpus);

  save(dir, "stall_sites.csv", stalls);

  std::string links = "link,label,bytes,busy_s,bandwidth_Bps,utilisation,busy_fraction,saturated_fraction,during_stalls,saturated\n";
  for (const auto& l : a.links)
    links += fmt::format("{},{},{},{},{},{},{},{},{},{}\n", field(l.link), field(l.label), l.bytes, l.busy, l.bandwidth,
                         l.utilisation, l.busy_fraction, l.saturated_fraction,
                         l.during_stalls < 0 ? std::string() : fmt::format("{}", l.during_stalls), l.saturated ? 1 : 0);

  save(dir, "links.csv", links);

  std::string spans = "rank,stream,op,name,kind,start_s,end_s,waited_for,algorithm\n";
  for (const auto& s : t.spans)
    spans += fmt::format("{},{},{},{},{},{},{},{},{}\n", s.rank, stream_name(s.stream), s.op, field(s.name), s.kind,
                         s.start, s.end, field(s.waited_for), field(s.algorithm));
  save(dir, "spans.csv", spans);
}

}  // namespace tpsim
