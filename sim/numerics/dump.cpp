#include "numerics/dump.hpp"
#include "tpsim/numerics.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <stdexcept>
#include <utility>
#include <vector>

#include "numerics/executor.hpp"

namespace tpsim::numerics {

void write_npy(const std::string& path, const Mat& m) {
  // NPY v1.0: magic, version 1.0, little-endian uint16 header length, a Python dict literal padded
  // with spaces and ended by '\n' so that the data starts at a multiple of 64 bytes.
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + std::to_string(m.rows()) + ", " +
                       std::to_string(m.cols()) + "), }";
  const size_t prefix = 10;   // magic (6) + version (2) + length (2)
  const size_t total = (prefix + header.size() + 1 + 63) / 64 * 64;
  header.append(total - prefix - header.size() - 1, ' ');
  header += '\n';
  std::ofstream out(path, std::ios::binary);
  if (!out) throw std::runtime_error("cannot write " + path);
  const uint16_t len = uint16_t(header.size());
  const char magic[8] = {'\x93', 'N', 'U', 'M', 'P', 'Y', 1, 0};
  out.write(magic, 8);
  const char len_le[2] = {char(len & 0xff), char(len >> 8)};
  out.write(len_le, 2);
  out.write(header.data(), std::streamsize(header.size()));
  // Mat is row-major: its buffer is already C order (the host is little-endian like '<f4').
  out.write(reinterpret_cast<const char*>(m.data()), std::streamsize(m.size() * sizeof(float)));
  if (!out) throw std::runtime_error("short write to " + path);
}

namespace {

std::string file_name(const std::string& global) {
  std::string f = global;
  for (char& c : f)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) c = '_';
  return f + ".npy";
}

}  // namespace

}  // namespace tpsim::numerics

namespace tpsim {

int dump_reference(const ProgramSet& reference, unsigned seed, nlohmann::json model, const std::string& dir) {
  using namespace numerics;
  std::filesystem::create_directories(dir);
  struct Entry {
    Mat value;
    std::string kind, op, fn;
    int step = 0;   // index of the op that wrote it (or first read it): the manifest lists tensors in program order
  };
  std::map<std::string, Entry> entries;
  nlohmann::json kernels = nlohmann::json::object();

  for (const Program& p : reference.ranks) {
    std::set<std::string> written;
    for (const Op& op : p.ops) {
      const std::string fn = op.kind == OpKind::gemm ? "gemm" : op.kind == OpKind::kernel ? op.kernel.fn : to_string(op.kind);
      if (op.kind == OpKind::kernel && !kernels.contains(fn)) kernels[fn] = op.kernel.attrs;
      // Inputs and weights: read before any op writes them, filled as the executor fills them.
      for (const std::string& t : op.inputs) {
        if (written.count(t)) continue;
        const TensorDesc& d = p.tensors.at(t);
        if (d.parts != 1 || (d.global_name.empty() && !d.is_weight)) continue;
        const std::string name = d.global_name.empty() ? d.name : d.global_name;
        if (entries.count(name)) continue;
        entries[name] = Entry{fill(d, seed), d.is_weight ? "weight" : "input", op.name, fn, op.id};
      }
      for (const std::string& t : op.outputs) written.insert(t);
    }
  }

  ExecOptions options;
  options.dtype = DType::fp32;
  options.seed = seed;
  options.on_final = [&](int, const Op& op, const TensorDesc& d, const Mat& m) {
    if (d.parts != 1) return;
    const std::string fn = op.kind == OpKind::gemm ? "gemm" : op.kind == OpKind::kernel ? op.kernel.fn : to_string(op.kind);
    entries[d.global_name] = Entry{m, op.pass == Pass::forward ? "output" : "gradient", op.name, fn, op.id};
  };
  execute(reference, options);

  std::vector<std::pair<int, std::string>> order;
  for (const auto& [name, e] : entries) order.emplace_back(e.step, name);
  std::sort(order.begin(), order.end());
  nlohmann::json tensors = nlohmann::json::array();
  for (const auto& [step, name] : order) {
    const Entry& e = entries.at(name);
    const std::string file = file_name(name);
    write_npy((std::filesystem::path(dir) / file).string(), e.value);
    tensors.push_back({{"name", name},
                       {"file", file},
                       {"shape", {e.value.rows(), e.value.cols()}},
                       {"kind", e.kind},
                       {"op", e.op},
                       {"fn", e.fn},
                       {"step", e.step}});
  }
  // The constants the kernels were lowered with, beside the dimensions: the norm's eps and the
  // loss gradient seed (cross_entropy_backward's scale, 1/T for the mean over T tokens).
  for (const char* norm : {"layernorm", "rmsnorm"})
    if (kernels.contains(norm) && kernels[norm].contains("eps")) model["eps"] = kernels[norm]["eps"];
  if (kernels.contains("cross_entropy_backward") && kernels["cross_entropy_backward"].contains("scale"))
    model["loss_scale"] = kernels["cross_entropy_backward"]["scale"];
  model["seed"] = seed;
  nlohmann::json manifest{{"format", "tpsim reference dump 1"}, {"dtype", "fp32"}, {"model", model},
                          {"kernels", kernels}, {"tensors", tensors}};
  std::ofstream out((std::filesystem::path(dir) / "manifest.json").string());
  out << manifest.dump(1) << '\n';
  if (!out) throw std::runtime_error("cannot write " + dir + "/manifest.json");
  return int(tensors.size());
}

}  // namespace tpsim
