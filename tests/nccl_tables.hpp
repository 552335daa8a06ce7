// The measured nccl-tests tables in data/reference/ (rows "tag,size_B,time_us,algbw_GBps,busbw_GBps",
// '#' comments), for the tests that check the collective model against them.
#pragma once

#include <doctest/doctest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

struct NcclRow {
  double bytes = 0, time_us = 0, busbw = 0;
};

// The rows of `file` whose first column is `tag`, in file order.
inline std::vector<NcclRow> nccl_rows(const std::string& file, const std::string& tag) {
  std::ifstream in(std::string(TPSIM_REFERENCE_DIR) + "/" + file);
  REQUIRE_MESSAGE(in.good(), "cannot read " << file);
  std::vector<NcclRow> rows;
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::stringstream ss(line);
    std::vector<std::string> cell;
    for (std::string c; std::getline(ss, c, ',');) cell.push_back(c);
    if (cell.size() >= 5 && cell[0] == tag) rows.push_back({std::stod(cell[1]), std::stod(cell[2]), std::stod(cell[4])});
  }
  REQUIRE_MESSAGE(!rows.empty(), "no '" << tag << "' rows in " << file);
  return rows;
}
