// fuzz_spec: feeds mutated YAML to the spec loader (validate_file: YAML -> validated topology,
// model, plan or scenario) and reports every input it does not refuse cleanly. A clean refusal is
// an InputError (the CLI's one-line error and exit 2); anything else is a finding: another
// exception (the CLI would call it an internal error), a crash or an abort (the process dies; built
// with -DTPSIM_SANITIZE=ON, ASan and UBSan say where), or an input that takes more than
// --per-input-seconds (a hang).
//
// Deterministic: the mutations come from a seeded generator over a sorted seed corpus, so a
// finding reproduces with the same --seed and --iterations, and its input is written to
// --findings. A finding worth keeping becomes a case of tests/data/bad (test_spec_bad_inputs).
//
//   fuzz_spec --seed 1 --iterations 3000 topologies models examples tests/data
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <chrono>
#include <iomanip>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

#include <CLI/CLI.hpp>

#include "machine.hpp"   // bench/: what the run ran on
#include "tpsim/spec.hpp"

namespace fs = std::filesystem;

namespace {

struct Seed {
  std::string kind;   // the folder validate_file infers a kind from when the keys do not say
  std::string text;
};

std::vector<Seed> load_corpus(const std::vector<std::string>& roots) {
  std::vector<fs::path> files;
  for (const std::string& root : roots)
    for (const auto& entry : fs::recursive_directory_iterator(root))
      if (entry.is_regular_file() && entry.path().extension() == ".yaml") files.push_back(entry.path());
  std::sort(files.begin(), files.end());   // directory order is not deterministic
  std::vector<Seed> corpus;
  for (const fs::path& f : files) {
    std::ifstream in(f, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    const std::string folder = f.parent_path().filename().string();
    const bool known = folder == "topologies" || folder == "models" || folder == "plans";
    corpus.push_back({known ? folder : "scenarios", text.str()});
  }
  return corpus;
}

// Values that have broken parsers and range checks before: overflow, non-finite, denormal,
// unitless, negative, empty, null, wrong YAML type, absurd sizes, invalid UTF-8.
const char* const kNasty[] = {
    "0", "-1", "1e308", "1e309", "-1e309", "nan", ".nan", ".inf", "1e-300", "4.9e-324", "2147483647",
    "2147483648", "4294967297", "9223372036854775807", "9223372036854775808", "1e30", "450", "~", "",
    "\"\"", "[]", "{}", "[1, 2]", "{a: 1}", "0x10", "1_000", "true", "450 GB/s", "450 GB", "1e308 GB/s",
    "1e-300 GB/s", "-450 GB/s", "nan us", "1 us", "80 GiB", "1e30 TFLOP/s", "\xff\xfe", "&a 1", "*a",
    "!!binary AAAA", "/etc/passwd", "/dev/zero", "../../../../etc/hostname", "megatron", "dgx-h100"};

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::string line;
  std::istringstream in(text);
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

std::string join_lines(const std::vector<std::string>& lines) {
  std::string out;
  for (const std::string& l : lines) out += l + "\n";
  return out;
}

// One mutation of `text`; `other` is another corpus file for splicing.
std::string mutate(std::string text, const std::string& other, std::mt19937_64& rng) {
  auto pick = [&](size_t n) { return n == 0 ? size_t(0) : size_t(rng() % n); };
  std::vector<std::string> lines = split_lines(text);
  switch (rng() % 9) {
    case 0:   // a value replaced by a nasty one
      if (!lines.empty()) {
        std::string& l = lines[pick(lines.size())];
        const size_t colon = l.find(':');
        if (colon != std::string::npos) l = l.substr(0, colon + 1) + " " + kNasty[pick(std::size(kNasty))];
      }
      return join_lines(lines);
    case 1:   // a number inside a line replaced by a nasty one
      if (!lines.empty()) {
        std::string& l = lines[pick(lines.size())];
        const size_t at = l.find_first_of("0123456789");
        if (at != std::string::npos) {
          size_t end = l.find_first_not_of("0123456789.eE+-", at);
          l.replace(at, (end == std::string::npos ? l.size() : end) - at, kNasty[pick(std::size(kNasty))]);
        }
      }
      return join_lines(lines);
    case 2:   // a line deleted
      if (!lines.empty()) lines.erase(lines.begin() + pick(lines.size()));
      return join_lines(lines);
    case 3:   // a line duplicated (a key given twice)
      if (!lines.empty()) {
        const size_t i = pick(lines.size());
        lines.insert(lines.begin() + i, lines[i]);
      }
      return join_lines(lines);
    case 4: {   // a line from another file spliced in
      const std::vector<std::string> theirs = split_lines(other);
      if (!theirs.empty()) lines.insert(lines.begin() + pick(lines.size() + 1), theirs[pick(theirs.size())]);
      return join_lines(lines);
    }
    case 5:   // a line's indentation changed
      if (!lines.empty()) {
        std::string& l = lines[pick(lines.size())];
        if (rng() % 2 && !l.empty() && l[0] == ' ') l.erase(0, 1 + pick(l.find_first_not_of(' ')));
        else l.insert(0, std::string(1 + pick(4), ' '));
      }
      return join_lines(lines);
    case 6:   // truncated
      text.resize(pick(text.size() + 1));
      return text;
    case 7:   // a byte flipped
      if (!text.empty()) text[pick(text.size())] ^= static_cast<char>(1u << pick(8));
      return text;
    default: {   // junk bytes inserted (NUL, high bytes, YAML punctuation)
      static const char junk[] = {'\0', '\xff', '\x80', '{', '[', '&', '*', '!', '|', '>', '%', '@', '\t', '"', '\''};
      text.insert(pick(text.size() + 1), 1 + pick(3), junk[pick(sizeof junk)]);
      return text;
    }
  }
}

const char* g_current = "";   // the input being checked, for the hang report (a signal handler)

extern "C" void on_hang(int) {
  const char msg[] = "fuzz_spec: FINDING (hang): an input took longer than --per-input-seconds; it is ";
  [[maybe_unused]] ssize_t n = write(2, msg, sizeof msg - 1);
  n = write(2, g_current, std::strlen(g_current));
  n = write(2, "\n", 1);
  _exit(3);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Feed mutated YAML to tpsim's spec loader; report every input it does not refuse with an InputError"};
  uint64_t seed = 1;
  long iterations = 1000;
  int per_input_seconds = 20;
  double seconds = 0;
  std::string findings = "fuzz-findings";
  std::vector<std::string> roots;
  app.add_option("--seed", seed, "Generator seed (same seed, same inputs)");
  app.add_option("--iterations", iterations, "Mutated inputs to try")->check(CLI::PositiveNumber);
  app.add_option("--seconds", seconds, "Stop after this long even if --iterations are not done (0: no limit)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--per-input-seconds", per_input_seconds, "Longer than this is a hang")->check(CLI::PositiveNumber);
  app.add_option("--findings", findings, "Folder the inputs of findings are written to");
  app.add_option("corpus", roots, "Folders of seed YAML files")->required()->check(CLI::ExistingDirectory);
  CLI11_PARSE(app, argc, argv);

  const std::vector<Seed> corpus = load_corpus(roots);
  if (corpus.empty()) {
    std::cerr << "fuzz_spec: no .yaml files under the corpus folders\n";
    return 2;
  }
  // Each input is written where its kind's folder name tells validate_file what it is.
  const fs::path scratch = fs::temp_directory_path() / ("tpsim-fuzz-" + std::to_string(getpid()));
  for (const char* kind : {"topologies", "models", "plans", "scenarios"}) fs::create_directories(scratch / kind);
  std::signal(SIGALRM, on_hang);

  std::mt19937_64 rng(seed);
  long refused = 0, accepted = 0, found = 0, tried = 0;
  std::string current_path;
  const auto started = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(); };
  // Input i is the same for a seed whatever the budget: a time-bounded run is a prefix of the full one.
  for (long i = 0; i < iterations && (seconds <= 0 || elapsed() < seconds); ++i, ++tried) {
    const Seed& base = corpus[rng() % corpus.size()];
    std::string text = base.text;
    const int mutations = 1 + static_cast<int>(rng() % 3);
    for (int m = 0; m < mutations; ++m) text = mutate(std::move(text), corpus[rng() % corpus.size()].text, rng);
    current_path = (scratch / base.kind / ("input-" + std::to_string(i) + ".yaml")).string();
    {
      std::ofstream out(current_path, std::ios::binary);
      out << text;
    }
    g_current = current_path.c_str();
    std::string failure;
    alarm(static_cast<unsigned>(per_input_seconds));
    try {
      tpsim::validate_file(current_path);
      ++accepted;
    } catch (const tpsim::InputError&) {
      ++refused;
    } catch (const std::exception& e) {
      failure = std::string("exception that is not an InputError: ") + e.what();
    } catch (...) {
      failure = "unknown exception";
    }
    alarm(0);
    if (!failure.empty()) {
      ++found;
      fs::create_directories(findings);
      const fs::path keep = fs::path(findings) / ("seed" + std::to_string(seed) + "-" + std::to_string(i) + "-" + base.kind + ".yaml");
      fs::copy_file(current_path, keep, fs::copy_options::overwrite_existing);
      std::cerr << "fuzz_spec: FINDING " << keep.string() << ": " << failure << "\n";
    }
    fs::remove(current_path);
  }
  fs::remove_all(scratch);
  std::cout << tpsim::bench::machine_line() << "\n";
  std::cout << "fuzz_spec: seed " << seed << ", " << tried << " inputs in " << std::fixed << std::setprecision(0)
            << elapsed() << " s from " << corpus.size() << " seed files: " << refused << " refused (InputError), "
            << accepted << " accepted, " << found << " findings\n";
  return found == 0 ? 0 : 1;
}
